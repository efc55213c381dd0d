"""`dropout`: each unit zeroed with probability p in training (the AlexNet paper, section 4.2).

    [drop6]
    type = dropout
    p = 0.5
    rescale = test     # the paper's: every unit times 1 - p at test; `train`: inverted dropout

test: the paper's (and cuda-convnet's dropout2), kept units as they are in training, every unit
times 1 - p at test; train: inverted (Caffe's, PyTorch's, cuda-convnet's dropout), kept units
divided by 1 - p in training. The same function at test, but not the same training: what follows
an inverted dropout sees inputs 1 / (1 - p) larger, so its weights start larger relative to them
and its updates are (1 / (1 - p))^2 larger, for the same lr.
"""
from __future__ import annotations

import numpy as np

from ..language import values as v
from ..language.values import Key
from .base import LayerType, register


@register
class Dropout(LayerType):
    name = "dropout"
    keys = {"p": Key(v.number(0, 1, below=True), 0.5, "the probability of zeroing a unit"),
            "rescale": Key(v.choice("test", "train"), "test", "when kept units are rescaled")}

    def onnx(self, g, layer, x):
        """At test time: every unit times 1 - p (`rescale = test`, the paper's), or as it is (inverted)."""
        p = layer.options["p"]
        if layer.options["rescale"] == "test" and p:
            return g.node("Mul", [x, g.constant("keep", 1 - p, np.float32)], "scaled")
        return x
