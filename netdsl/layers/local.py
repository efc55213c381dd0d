"""`local`: cuda-convnet's locally-connected layer (layer.py's LocalUnsharedLayer): a conv whose
filters are not shared, a bank of its own at every output position, and a bias per output.

    [local3]
    type = local
    filters = 64
    size = 3
    pad = 1
    neuron = relu

Its keys and output size are conv's (`round = ceil` is cuda-convnet's rule); its parameters are
out_h * out_w * filters * (C * size^2 + 1). The generated module holds it as LocallyConnected
(codegen_templates/torch/local.py.in): weight filters x positions x C*size^2, bias filters x out_h
x out_w; each position's patch of the input (F.unfold) times that position's filters.
"""
from __future__ import annotations

import numpy as np

from .base import LayerType, divide, register
from .conv import Conv, in_per_group, overhang
from .neuron import onnx_nodes
from .weights import param_count


@register
class Local(LayerType):
    name = "local"
    weighted = True
    holds_module = True
    reads = "maps"
    flat_output = False
    size_key = "filters"
    colour = "#a6bddb"
    keys = {k: key for k, key in Conv.keys.items() if k != "channel_groups"}

    def output(self, o, inp, groups, split):
        divide(o["filters"], groups, "`filters`", "filters")
        in_per_group(o, inp.c, groups, split)
        return Conv.conv_output(self, o, inp.h, inp.w)

    def helpers(self, layer, net, backend):
        return super().helpers(layer, net, backend) + ("torch/local.py.in",)

    def params(self, o, inp, out, groups, split):
        positions = out.h * out.w
        return param_count(o["filters"] * positions * in_per_group(o, inp.c, groups, split) * o["size"] ** 2,
                           o["filters"] * positions, o)

    def flops(self, o, inp, out, groups, split):
        return 2 * in_per_group(o, inp.c, groups, split) * o["size"] ** 2 * out.numel

    def derived(self, o, inp, out, groups, split):
        area = o["size"] ** 2
        return {**super().derived(o, inp, out, groups, split), "overhang": overhang(o, inp, out),
                "fans": (in_per_group(o, inp.c, groups, split) * area, o["filters"] * area)}

    def onnx(self, g, layer, x):
        """The patches by a Conv whose kernels each pick one input value (an exact copy), then each
        position's filters by Einsum, then the bias."""
        o, inp, out = layer.options, layer.in_shape, layer.out_shape
        groups = g.net.groups if layer.derived["grouped"] else 1
        c, k = inp.c // groups, o["size"]
        eh, ew = layer.derived["overhang"]
        pick = np.zeros((groups * c * k * k, c, k, k), np.float32)   # patch row r = (channel, dy, dx)
        for r in range(c * k * k):
            pick[r::c * k * k][:, r // (k * k), (r // k) % k, r % k] = 1
        patches = g.node("Conv", [x, g.constant("pick", pick, np.float32)], "patches", kernel_shape=[k, k],
                         strides=[o["stride"]] * 2, pads=[o["pad"], o["pad"], o["pad"] + eh, o["pad"] + ew],
                         group=groups)
        f, positions = o["filters"], out.h * out.w
        cols = g.node("Reshape", [patches, g.constant("cols_shape", [-1, groups, c * k * k, positions], np.int64)], "cols")
        weight = g.node("Reshape", [g.weight(layer, "weight"),
                                    g.constant("w_shape", [groups, f // groups, positions, c * k * k], np.int64)], "w")
        y = g.node("Einsum", [cols, weight], "product", equation="ngcl,gflc->ngfl")
        y = g.node("Reshape", [y, g.constant("out_shape", [-1, f, out.h, out.w], np.int64)], "maps")
        if o["bias"] is not None:
            y = g.node("Add", [y, g.weight(layer, "bias")], "biased")
        return onnx_nodes(g, o["neuron"], y)

    def shard(self, fused, g, groups, device):
        import copy

        import torch

        part = copy.deepcopy(fused).to(device)
        with torch.no_grad():
            for name, param in list(part.named_parameters()):
                rows = param.shape[0] // groups
                setattr(part, name, torch.nn.Parameter(param[g * rows:(g + 1) * rows].clone()))
        part.groups = 1
        return part
