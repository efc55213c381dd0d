"""Any layer's output for a batch: the generated forward's own code, run one layer at a time.

    outputs = LayerOutputs(model, net, ["conv1", "fc7"])
    maps = outputs(x)              # {"conv1": N x 96 x 55 x 55, "fc7": N x 4096}, in eval mode

Each layer's step (netdsl/codegen/interpret.py) is evaluated in order, as the split placement
and `netdsl time` run them, on a torch-backend copy of the model with
its weights, so a model of any backend and placement can be read. The run stops at the last
layer asked for. The data layer's output is the input itself; the output layer's (softmax or
sigmoid) is the logits, as the generated forward returns them.

`netdsl features` and `neighbours` (netdsl/inspect/) and the SI paper's invariance score
(netdsl/scale_invariance/invariance.py) read layers through it.
"""
from __future__ import annotations

import torch

from ..codegen.interpret import Interpreter, layer_steps
from ..codegen.load import load_source
from ..codegen.render import render


class LayerOutputs:
    """The outputs of the layers `names` for a batch, from the generated code, in eval mode."""

    def __init__(self, model: torch.nn.Module, net, names):
        module = load_source(render(net, "torch"), net.name)
        self.interpreter = Interpreter(vars(module))    # the helpers (si_conv2d, ...) the layer code calls
        params = list(model.parameters())
        self.device = params[0].device if params else torch.device("cpu")
        self.model = module.build()
        self.model.load_state_dict(model.state_dict())  # fused layout for every placement
        self.model.to(self.device).eval()
        self.names = list(names)
        position = {layer.name: i for i, layer in enumerate(net.layers)}
        last = max(position[name] for name in self.names)
        # the steps start after the data layer: the first `last` reach net.layers[last]
        self.steps = layer_steps(net, "torch")[:last]
        self.data_name = net.data.name

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = {self.data_name: x.to(self.device)}
        for step in self.steps:
            outputs[step.layer.name] = self.interpreter(step, outputs, self.model)
        return {name: outputs[name] for name in self.names}
