"""`sum` and `max`: the elementwise sum or maximum of several inputs of one shape.

    [res2a]
    type = sum
    input = res2a_branch1, res2a_branch2c
    coeffs = 1, 1      # sum only: each input's factor (Caffe's Eltwise `coeff`), 1 unless written
    neuron = relu

`sum` is cuda-convnet's eltsum and Caffe's Eltwise SUM (ResNet's shortcut); `max` is
cuda-convnet's eltmax and Caffe's Eltwise MAX. Inputs split over GPU groups combine chunk by
chunk, inside each group.
"""
from __future__ import annotations

from ..language import values as v
from ..language.values import Key
from .base import LayerType, ShapeError, python_number, register
from .neuron import NEURON_KEY, onnx_nodes


def read_coeffs(value) -> tuple[float, ...]:
    items = value.data if value.kind == "list" else (value,)
    return tuple(v.float32(v.number(), "a factor")(item) for item in items)


class Elementwise(LayerType):
    colour = "#bcbddc"
    combines = ""   # how the template and the ONNX graph combine them

    def combine(self, o, inputs, groups):
        if len(inputs) < 2:
            raise ShapeError(f"a `{self.name}` layer reads two or more inputs (`input = a, b`)", "input")
        name, first, split = inputs[0]
        for other, shape, other_split in inputs[1:]:
            if shape != first:
                raise ShapeError(f"inputs `{name}` ({first}) and `{other}` ({shape}) differ in shape; "
                                 f"a `{self.name}` needs one shape", "input")
            if other_split != split and groups > 1:
                raise ShapeError(f"cannot combine the data layer, whole in every group, with `{other}`, "
                                 "split over the groups", "input")
        return first, split

    def flops(self, o, inp, out, groups, split):
        return out.numel   # one operation an output, as the neurons count

    def combine_code(self, layer, net, names):
        return self.code(layer, names)


@register
class Sum(Elementwise):
    name = "sum"
    keys = {"coeffs": Key(read_coeffs, None, "each input's factor, 1 unless written"), "neuron": NEURON_KEY}

    def combine(self, o, inputs, groups):
        if o["coeffs"] is not None and len(o["coeffs"]) != len(inputs):
            raise ShapeError(f"`coeffs` has {len(o['coeffs'])} factors for {len(inputs)} inputs", "coeffs")
        return super().combine(o, inputs, groups)

    def code(self, layer, names):
        coeffs = layer.options["coeffs"] or (1.0,) * len(names)
        return " + ".join(name if c == 1 else f"{python_number(c)} * {name}" for c, name in zip(coeffs, names))

    def combine_onnx(self, g, layer, names):
        import numpy as np
        coeffs = layer.options["coeffs"] or (1.0,) * len(names)
        terms = [n if c == 1 else g.node("Mul", [n, g.constant("coeff", c, np.float32)], "scaled")
                 for c, n in zip(coeffs, names)]
        return g.node("Sum", terms, "sum")

    def onnx(self, g, layer, x):
        return onnx_nodes(g, layer.options["neuron"], x)


@register
class Max(Elementwise):
    name = "max"
    keys = {"neuron": NEURON_KEY}

    def code(self, layer, names):
        expression = names[0]
        for name in names[1:]:
            expression = f"torch.maximum({expression}, {name})"
        return expression

    def combine_onnx(self, g, layer, names):
        return g.node("Max", names, "max")

    def onnx(self, g, layer, x):
        return onnx_nodes(g, layer.options["neuron"], x)
