"""`softmax` and `sigmoid`: the network's output, N x classes logits; the loss decides how they
are read (cross-entropy, or binary cross-entropy on one-hot targets).

    [prob]
    type = softmax

The last layer is the network's output. An output layer before it is an auxiliary head
(GoogLeNet's two, Szegedy et al. 2014, section 5), used in training only: the loss is the main
output's plus each head's times its `loss_weight`; evaluation, export and the generated forward
in eval mode read the main output alone.
"""
from __future__ import annotations

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key
from .base import LayerType, register


class Output(LayerType):
    role = "output"
    flat_output = True
    reads = "flat"
    colour = "#dadaeb"
    keys = {"loss_weight": Key(v.number(0), 1.0, "the weight of this output's loss in training")}

    def output(self, o, inp, groups, split):
        return Shape(inp.numel, 1, 1)

    def flops(self, o, inp, out, groups, split):
        return 0

    def onnx(self, g, layer, x):
        return x   # the logits: the module returns them before the softmax or sigmoid, and so does this


@register
class Softmax(Output):
    name = "softmax"

    def loss(self, logits, y, label_smoothing=0.0):
        import torch.nn.functional as F
        return F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=label_smoothing)

    def probabilities(self, logits):
        import torch.nn.functional as F
        return F.softmax(logits.float(), 1)

    def loss_of_probabilities(self, probs, y):
        """Summed over the batch: the cross-entropy of (averaged) probabilities."""
        return -probs.clamp(1e-12, 1.0).gather(1, y[:, None]).log().sum()


@register
class Sigmoid(Output):
    name = "sigmoid"

    def loss(self, logits, y, label_smoothing=0.0):
        import torch.nn.functional as F
        targets = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="sum")

    def probabilities(self, logits):
        import torch
        return torch.sigmoid(logits.float())

    def loss_of_probabilities(self, probs, y):
        """Summed over the batch and the classes: the binary cross-entropy of (averaged) probabilities."""
        import torch.nn.functional as F
        target = F.one_hot(y, probs.shape[1]).float()
        return F.binary_cross_entropy(probs.clamp(1e-12, 1 - 1e-7), target, reduction="sum")
