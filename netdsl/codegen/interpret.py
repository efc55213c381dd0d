"""One interpreter of the generated forward, a layer at a time, for whatever must see inside it.

    steps = layer_steps(net, "torch")              # each layer after data: its input, its computation
    run = Interpreter(vars(module))                # the generated module's namespace (helpers, kernels)
    values = {net.data.name: x}
    for step in steps:
        values[step.layer.name] = run(step, values, model)   # exactly forward()'s line for the layer

A step is the code render.py writes into forward() for one layer, compiled in two parts: `reads`,
the layer's input from the outputs of its inputs by name, and `computes`, its output from `x` with
`self` the module holding its weights. Evaluated in the generated module's namespace they run the
ops forward() runs (torch.fx's Interpreter does the same for a traced graph). The split placement
(netdsl/devices/placement.py) runs each step once a group with `self` that group's slices; `netdsl
time` (netdsl/runner/timing.py) times each step; netdsl/runner/activations.py reads layer outputs.
"""
from __future__ import annotations

import dataclasses
from types import CodeType

from ..language.ir import Layer, Net
from .render import layer_code


@dataclasses.dataclass(frozen=True)
class Step:
    layer: Layer
    reads: CodeType       # the layer's input, from its inputs' outputs by name
    computes: CodeType    # its output, from `x`, with `self` holding its weights


def layer_steps(net: Net, backend: str) -> list[Step]:
    """Each layer after data as a Step, in network order."""
    steps = []
    for layer, reads, computes in layer_code(net, backend, x="x"):
        where = f"<{net.name}: {layer.name}>"
        steps.append(Step(layer, compile(reads, where, "eval"), compile(computes, where, "eval")))
    return steps


class Interpreter:
    """Evaluates steps in one namespace: that of the generated module the model came from."""

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def read(self, step: Step, values: dict):
        """The step's input from `values`, the outputs so far by layer name."""
        return eval(step.reads, self.namespace, {name: values[name] for name in step.layer.inputs})

    def compute(self, step: Step, x, module):
        """The step's output from its input `x`, with `self` bound to `module`."""
        return eval(step.computes, self.namespace, {"self": module, "x": x})

    def __call__(self, step: Step, values: dict, module):
        return self.compute(step, self.read(step, values), module)
