"""`batchnorm`: batch normalization (Ioffe and Szegedy 2015), PyTorch's BatchNorm2d on maps and
BatchNorm1d after an fc; Caffe's BatchNorm followed by its Scale layer.

    [bn1]
    type = batchnorm
    eps = 1e-5
    momentum = 0.1     # running = (1 - momentum) * running + momentum * batch statistic (PyTorch's)
    affine = yes       # a learnt scale and shift per channel (Caffe's Scale with bias_term)
    sync = no          # yes: the batch statistics over every process under torchrun (SyncBatchNorm)
    neuron = relu

In training each channel is normalized by its batch mean and (biased) variance; the running
mean and (unbiased) variance are buffers of the state dict and the checkpoints, and evaluation
uses them. Caffe's BatchNorm with moving_average_fraction f is momentum = 1 - f. With [net]
groups it stays inside each group, as lrn does: a channel's statistics are its own in any case.
Its scale and shift take `lr_mult` and `decay_mult` (default 1, 1: decayed, as torch.optim
decays every parameter it is given).
"""
from __future__ import annotations

from ..language import values as v
from ..language.values import Key
from .base import LayerType, ShapeError, register, slice_rows
from .neuron import NEURON_KEY, onnx_nodes


@register
class BatchNorm(LayerType):
    name = "batchnorm"
    holds_module = True
    colour = "#fcbba1"
    keys = {
        "eps": Key(v.number(0, above=True), 1e-5, "added to the variance"),
        "momentum": Key(v.number(0, 1), 0.1, "the weight of each batch in the running statistics"),
        "affine": Key(v.yes_no, True, "a learnt scale and shift per channel"),
        "sync": Key(v.yes_no, False, "statistics over every process under torchrun (SyncBatchNorm)"),
        "neuron": NEURON_KEY,
        "lr_mult": Key(v.multipliers, (1.0, 1.0), "multipliers of the learning rate for the scale and the shift"),
        "decay_mult": Key(v.multipliers, (1.0, 1.0), "multipliers of the weight decay for the scale and the shift"),
    }

    def output(self, o, inp, groups, split):
        if groups > 1 and not split:
            raise ShapeError("a batchnorm reading the data layer, whole in every group, cannot split over "
                             "the groups; put it after a layer that does")
        return inp

    def params(self, o, inp, out, groups, split):
        return 2 * inp.c if o["affine"] else 0

    def flops(self, o, inp, out, groups, split):
        return 2 * out.numel

    def onnx(self, g, layer, x):
        """BatchNormalization in inference mode, with the running statistics (and a scale of ones
        and a shift of zeros where the layer has none)."""
        import numpy as np
        c = layer.in_shape.c
        if layer.options["affine"]:
            scale, shift = g.weight(layer, "weight"), g.weight(layer, "bias")
        else:
            scale, shift = g.constant("scale", np.ones(c), np.float32), g.constant("shift", np.zeros(c), np.float32)
        y = g.node("BatchNormalization", [x, scale, shift, g.weight(layer, "running_mean"),
                                          g.weight(layer, "running_var")], "bn", epsilon=layer.options["eps"])
        return onnx_nodes(g, layer.options["neuron"], y)

    def cannot_run(self, layer, on_cuda, processes):
        if layer.options["sync"] and processes > 1 and not on_cuda:
            return ("`sync = yes` is torch.nn.SyncBatchNorm, which exchanges statistics between processes "
                    "on CUDA devices only; train on GPUs, or write `sync = no` (each process its own statistics)")
        return None

    def shard(self, fused, g, groups, device):
        from torch.nn.utils import skip_init

        part = skip_init(type(fused), fused.num_features // groups, eps=fused.eps, momentum=fused.momentum,
                         affine=fused.affine, device=device)
        slice_rows(part, fused, g, groups)
        return part
