"""The neurons (activation functions), and the `neuron` layer that applies one on its own.

    neuron = relu             # every weighted layer, batchnorm, sum and max take `neuron` too

A neuron is a tuple (name, *arguments): ("relu",), ("leaky", 0.01), ("linear", 2.0, 1.0).
Their sources: cuda-convnet's neurons (layer.py's NeuronParser: relu, tanh, logistic as
`sigmoid`, abs, square, softrelu log(1 + e^x), brelu[a] min(max(x, 0), a), linear[a,b] a x + b)
and the common modern ones (PyTorch's F.leaky_relu(x, a), F.elu (alpha 1), F.gelu (exact, with
erf), F.silu). Each has its Python (TORCH) and its ONNX nodes (onnx_nodes), side by side.
"""
from __future__ import annotations

import math

from ..language import values as v
from ..language.parse import Value
from ..language.values import Key
from .base import LayerType, python_number, register

# name: (its arguments, the expression of x in the generated code)
TORCH = {
    "none": ((), "{x}"),
    "relu": ((), "F.relu({x})"),
    "tanh": ((), "torch.tanh({x})"),
    "sigmoid": ((), "torch.sigmoid({x})"),
    "leaky": (("a",), "F.leaky_relu({x}, {a})"),
    "elu": ((), "F.elu({x})"),
    "gelu": ((), "F.gelu({x})"),
    "silu": ((), "F.silu({x})"),
    "abs": ((), "torch.abs({x})"),
    "square": ((), "torch.square({x})"),
    "softrelu": ((), "F.softplus({x})"),
    "brelu": (("a",), "torch.clamp({x}, 0.0, {a})"),
    "linear": (("a", "b"), "{x} * {a} + {b}"),
}
NEURONS = tuple(TORCH)


def _written_form(name: str) -> str:
    args = TORCH[name][0]
    return f"{name}({', '.join(args)})" if args else name


def read_neuron(value: Value) -> tuple:
    """`relu`, `leaky(0.01)`, `linear(2, 1)`, ...: (name, *arguments), every argument a float32 number."""
    name = value.data if value.kind == "name" else value.data[0] if value.kind == "call" else None
    if name not in TORCH:
        forms = ", ".join(f"`{_written_form(n)}`" for n in NEURONS)
        hint = v.did_you_mean(name, NEURONS) if isinstance(name, str) else ""
        v.fail(value, f"expected a neuron, one of {forms}; got `{value}`{hint}")
    wanted = TORCH[name][0]
    given = value.data[1] if value.kind == "call" else ()
    if len(given) != len(wanted):
        v.fail(value, f"`{name}` takes {len(wanted) or 'no'} number{'s' if len(wanted) != 1 else ''}: "
                      f"`{_written_form(name)}`")
    args = tuple(v.float32(v.number(), f"an argument of `{name}`")(arg) for arg in given)
    if name == "brelu" and args[0] <= 0:
        v.fail(value, "`brelu(a)` bounds the output to 0..a, so a must be above 0")
    return (name, *args)


def torch_code(neuron: tuple, x: str) -> str:
    """The neuron applied to the expression `x`, as generated Python."""
    name, *args = neuron
    names, form = TORCH[name]
    if form.startswith("{x} ") and " " in x:   # `a + b` as an operand: bracketed
        x = f"({x})"
    return form.format(x=x, **{n: python_number(a) for n, a in zip(names, args)})


def onnx_nodes(g, neuron: tuple, x: str) -> str:
    """The neuron applied to tensor `x` as ONNX nodes (opset 18, which has no Gelu: erf's form)."""
    name, *args = neuron
    f32 = "float32"
    if name == "none":
        return x
    simple = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "abs": "Abs", "softrelu": "Softplus"}
    if name in simple:
        return g.node(simple[name], [x])
    if name == "leaky":
        return g.node("LeakyRelu", [x], alpha=args[0])
    if name == "elu":
        return g.node("Elu", [x], alpha=1.0)
    if name == "silu":
        return g.node("Mul", [x, g.node("Sigmoid", [x])], "silu")
    if name == "square":
        return g.node("Mul", [x, x], "square")
    if name == "brelu":
        return g.node("Clip", [x, g.constant("low", 0.0, f32), g.constant("high", args[0], f32)], "brelu")
    if name == "linear":
        scaled = g.node("Mul", [x, g.constant("a", args[0], f32)], "scaled")
        return g.node("Add", [scaled, g.constant("b", args[1], f32)], "linear")
    if name == "gelu":   # x * (1 + erf(x / sqrt 2)) / 2, as F.gelu computes it
        erf = g.node("Erf", [g.node("Mul", [x, g.constant("rsqrt2", 1 / math.sqrt(2), f32)], "scaled")])
        one = g.node("Add", [erf, g.constant("one", 1.0, f32)], "plus_one")
        return g.node("Mul", [g.node("Mul", [x, one], "product"), g.constant("half", 0.5, f32)], "gelu")
    raise AssertionError(name)


NEURON_KEY = Key(read_neuron, ("none",), "applied to the output")


@register
class Neuron(LayerType):
    name = "neuron"
    keys = {"neuron": Key(read_neuron, help="the function applied to every value")}

    def onnx(self, g, layer, x):
        return onnx_nodes(g, layer.options["neuron"], x)
