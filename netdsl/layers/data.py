"""`data`: the input, the first layer of every network: images of `shape` = C x H x W.

    [data]
    type = data
    shape = 3x224x224
"""
from __future__ import annotations

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key
from .base import LayerType, register


@register
class Data(LayerType):
    name = "data"
    role = "input"
    flat_output = False
    size_key = "shape"
    colour = "#e0e0e0"
    keys = {"shape": Key(v.shape, help="C x H x W of one input image")}

    def output(self, o, inp, groups, split):
        return Shape(*o["shape"])

    def flops(self, o, inp, out, groups, split):
        return 0
