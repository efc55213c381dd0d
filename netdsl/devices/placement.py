"""Device placement: group g's share of every layer on devices[g], as AlexNet spreads over two GPUs.

    model = netdsl.compile_net("nets/alexnet.net", devices=["cuda:0", "cuda:1"])
    logits = model(images)                   # on devices[0]
    model.transfers                          # the copies between groups in that forward
    model.state_dict()                       # the fused module's keys and shapes, on the CPU

compile_net calls place(): one device moves the fused module there; one device per group
builds a SplitNet. Group g holds the g-th slice of each layer module's filters, outputs or
channels (a module of its own on devices[g], which the layer's type makes: LayerType.shard) and
the g-th channel chunk of every
activation. `data` goes to every device once; a layer reading several inputs concatenates
them inside each group, as group_cat does in the fused module; a `connect = all` conv,
siconv or fc reading a split input copies the other groups' chunks to its device; nothing
else leaves its device. The logits are gathered on devices[0].

How the split forward runs: netdsl/codegen/interpret.py's interpreter, not a second generated
file. For each layer and group it evaluates the layer's own template code (the `forward` macro
of netdsl/layers/<type>.py.j2, rendered for one group) in the generated module's namespace, with
`self.<layer>` bound to that group's slice. So the split path runs exactly the ops of the fused
path and of the chosen backend (local_response_norm, si_conv2d, or the Triton lrn_<name>,
maxpool_<name>, si_warp_max_<name>), a new layer type needs nothing here, and what this file
adds is only where each chunk lives and when it moves. (A generated split module would be readable, but
it would repeat every layer line G times and need its own renderer for the same result.)

Copies between groups: `model.transfers` lists, for the last forward, one Transfer per chunk
sent from one group to another: for each `connect = all` layer reading a split input, each
group receives every other group's chunk (G * (G - 1) transfers per such layer, whose bytes
per image add up to that layer's `cross_bytes` in the compile report), and the output layer
gathers the other groups' logits onto group 0 (G - 1 transfers). A copy counts when it
crosses groups even if the two groups share a device, so devices=["cpu", "cpu"] counts
what two GPUs would send.

State and optimizer: model.state_dict() gathers the slices (dim 0 of every parameter and
buffer; a 0-dimensional buffer, batch norm's count, from group 0) into the fused layout on the CPU, and load_state_dict() scatters a fused state dict
back, so one checkpoint serves every placement. torch.optim sees the per-group slices as
parameters, so its state_dict() depends on the placement; a runner saves
`optimizer_state(model, optimizer)` (per-parameter state keyed by fused names, fused layout,
on the CPU) and restores with `load_optimizer_state(model, optimizer, saved)`, which works
for any placement and for the fused module alike. Pass the model itself, not a
DistributedDataParallel wrapper, so the names carry no `module.` prefix.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from ..codegen.interpret import Interpreter, Step, layer_steps
from ..errors import NetError
from ..language.ir import Layer, Net
from ..layers.registry import REGISTRY


class Transfer(NamedTuple):
    """One chunk copied between groups: read by `layer`, from group `source` to group `target`."""
    layer: str
    source: int
    target: int
    bytes: int


def place(net: Net, model: nn.Module, module, devices: list, backend: str) -> nn.Module:
    """The fused `model` on one device, or split over one device per group."""
    devices = [_device(d) for d in devices]
    if len(devices) == 1:
        return model.to(devices[0])
    if len(devices) != net.groups:
        raise NetError(f"{len(devices)} devices given for a network of {net.groups} "
                       f"group{'s' if net.groups > 1 else ''}: give one device for the whole network "
                       f"or one per group ({net.groups})")
    return SplitNet(net, model, module, devices, backend)


def _device(name) -> torch.device:
    try:
        return torch.device(name)
    except (RuntimeError, TypeError):
        raise NetError(f"unknown device `{name}`; expected e.g. cpu, cuda:0") from None


class Shards(nn.Module):
    """One layer's module split over the groups: parts[g] holds rows g*R..(g+1)*R-1 on devices[g].

    Its state dict entries are those of the fused layer (`weight`, `bias`, batch norm's running
    statistics), the parts concatenated along dim 0 on the CPU; loading chunks them back onto
    each part's device.
    """

    def __init__(self, fused: nn.Module, devices: list[torch.device], layer: Layer):
        super().__init__()
        kind = REGISTRY[layer.type]
        self.parts = nn.ModuleList(kind.shard(fused, g, len(devices), device) for g, device in enumerate(devices))
        self.register_state_dict_post_hook(_gather_state)
        self.register_load_state_dict_pre_hook(_scatter_state)
        self.register_load_state_dict_post_hook(_fused_key_names)

    def kinds(self) -> list[str]:
        """The names of its parameters and buffers."""
        return [name for name, _ in [*self.parts[0].named_parameters(), *self.parts[0].named_buffers()]]


def _gather_state(shards: Shards, state: dict, prefix: str, local_metadata) -> None:
    """State-dict post-hook: the parts' entries replaced by the fused layer's, on the CPU."""
    for kind in shards.kinds():
        pieces = [state.pop(f"{prefix}parts.{g}.{kind}") for g in range(len(shards.parts))]
        whole = torch.cat([p.detach().cpu() for p in pieces]) if pieces[0].dim() else pieces[0].detach().cpu()
        state[prefix + kind] = whole
    metadata = getattr(state, "_metadata", {})
    for name in [prefix + "parts"] + [f"{prefix}parts.{g}" for g in range(len(shards.parts))]:
        metadata.pop(name, None)  # so the saved dict matches the fused module's exactly


def _scatter_state(shards: Shards, state: dict, prefix: str, local_metadata, strict,
                   missing_keys, unexpected_keys, error_msgs) -> None:
    """Load pre-hook: each fused entry chunked into the parts' entries (they copy to their devices)."""
    groups = len(shards.parts)
    for kind in shards.kinds():
        if prefix + kind not in state:
            continue  # the parts report it missing; _fused_key_names renames it
        value = state.pop(prefix + kind)
        if value.dim() == 0:   # a count, the same in every group
            for g in range(groups):
                state[f"{prefix}parts.{g}.{kind}"] = value
            continue
        shapes = [getattr(part, kind).shape for part in shards.parts]
        fused = torch.Size([sum(s[0] for s in shapes), *shapes[0][1:]])
        if value.shape != fused:
            error_msgs.append(f"size mismatch for {prefix}{kind}: copying a param with shape "
                              f"{value.shape} from checkpoint, the shape in current model is {fused}.")
            continue
        for g, piece in enumerate(value.chunk(groups)):
            state[f"{prefix}parts.{g}.{kind}"] = piece


def _fused_key_names(shards: Shards, incompatible) -> None:
    """Load post-hook: missing part entries reported under the fused layer's names, once each."""
    missing = incompatible.missing_keys
    fused = []
    for key in list(missing):
        head, _, tail = key.rpartition(".parts.")
        if head and tail.split(".", 1)[0].isdigit():
            missing.remove(key)
            name = f"{head}.{tail.split('.', 1)[1]}"
            if name not in fused:
                fused.append(name)
    missing.extend(fused)


class GroupView:
    """What `self` means to a layer's template code while it runs for one group."""

    def __init__(self, training: bool, parts: dict[str, nn.Module]):
        self.training = training
        self.__dict__.update(parts)


class SplitNet(nn.Module):
    """A network with group g on devices[g]; see the module docstring."""

    def __init__(self, net: Net, fused: nn.Module, module, devices: list[torch.device], backend: str):
        super().__init__()
        self.net, self.devices = net, devices
        self.interpreter = Interpreter(vars(module))   # the generated module's helpers, kernels and imports
        for layer in net.layers:
            if REGISTRY[layer.type].holds_module:
                self.add_module(layer.name, Shards(getattr(fused, layer.name), devices, layer))
        # the templates rendered for a single group's share
        self.steps = layer_steps(dataclasses.replace(net, groups=1), backend)
        self.transfers: list[Transfer] = []

    def forward(self, data):
        self.transfers = []
        chunks = {self.net.data.name: self.scatter(data)}
        views = self.group_views()
        extra = () if self.training else self.net.training_only
        for step in self.steps:
            if step.layer.name not in extra:
                chunks[step.layer.name] = self.run_step(step, chunks, views)
        main = self.logits(chunks[self.net.output.name], self.net.output)
        if self.training and self.net.aux_outputs:   # as the generated forward returns them
            return (main, *(self.logits(chunks[head.name], head) for head in self.net.aux_outputs))
        return main

    # The forward's parts, public so that `netdsl time` (netdsl/runner/timing.py) can run and time
    # the split network one layer at a time with exactly the forward's code.

    def scatter(self, data) -> list[torch.Tensor]:
        """`data` whole on every group's device."""
        return [data.to(device) for device in self.devices]

    def group_views(self) -> list[GroupView]:
        return [GroupView(self.training, {name: shards.parts[g] for name, shards in self.named_children()})
                for g in range(len(self.devices))]

    def run_step(self, step: Step, chunks: dict[str, list[torch.Tensor]],
                 views: list[GroupView]) -> list[torch.Tensor]:
        """One layer's output chunks, one a group, from its inputs' chunks (`chunks[name][g]`)."""
        groups = range(len(self.devices))
        inputs = [self.interpreter.read(step, {name: chunks[name][g] for name in step.layer.inputs}) for g in groups]
        if _reads_every_group(self.net, step.layer):
            inputs = [self._gather(step.layer.name, inputs, g) for g in groups]
        return [self.interpreter.compute(step, x, view) for view, x in zip(views, inputs)]

    def logits(self, output_chunks: list[torch.Tensor], output: Layer | None = None) -> torch.Tensor:
        """An output layer's chunks (the main output's unless named) as its logits, on devices[0]."""
        output = output or self.net.output
        return self._gather(output.name, output_chunks, 0) if output.split else output_chunks[0]

    def _gather(self, layer: str, chunks: list[torch.Tensor], target: int) -> torch.Tensor:
        """Every group's chunk on group `target`'s device, concatenated along channels in group order."""
        device = self.devices[target]
        for source, chunk in enumerate(chunks):
            if source != target:
                self.transfers.append(Transfer(layer, source, target, chunk.numel() * chunk.element_size()))
        return torch.cat([chunk.to(device) for chunk in chunks], 1)


def _reads_every_group(net: Net, layer: Layer) -> bool:
    """A connect = all edge: a weighted layer reading an input split over several groups."""
    return REGISTRY[layer.type].reads_every_group(layer.options, net.groups, net.layer(layer.inputs[0]).split)


def _fused_names(model: nn.Module) -> dict[nn.Parameter, tuple[str, int, int]]:
    """Each parameter's (fused state-dict name, group, groups); a whole parameter is group 0 of 1."""
    parts = {}
    for prefix, shards in model.named_modules():
        if isinstance(shards, Shards):
            for g, part in enumerate(shards.parts):
                for kind, param in part.named_parameters():
                    parts[param] = (f"{prefix}.{kind}", g, len(shards.parts))
    return {param: parts.get(param, (name, 0, 1)) for name, param in model.named_parameters()}


def fused_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Each fused state-dict name (`conv1.weight`) and its parameters, in the model's order: the
    parameter itself, or one slice a group, in group order."""
    found: dict[str, list[tuple[int, nn.Parameter]]] = {}
    for param, (name, g, _) in _fused_names(model).items():
        found.setdefault(name, []).append((g, param))
    return {name: [param for _, param in sorted(parts, key=lambda part: part[0])]
            for name, parts in found.items()}


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.state_dict() in the fused layout, keyed by state-dict names, on the CPU.

    A state tensor shaped like its parameter (a momentum buffer) is gathered along dim 0;
    a scalar (a step count) is the same in every group and taken from group 0; any other
    shape of a split parameter cannot be gathered and raises ValueError.
    Restore with load_optimizer_state.
    """
    saved = optimizer.state_dict()
    names = _fused_names(model)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    per_group: dict[str, list[tuple[int, nn.Parameter, dict]]] = {}
    for index, param in enumerate(params):
        if index in saved["state"]:
            name, g, _ = names[param]
            per_group.setdefault(name, []).append((g, param, saved["state"][index]))
    state = {name: _gathered(name, sorted(parts, key=lambda part: part[0]))
             for name, parts in per_group.items()}
    param_groups = [{**_hyper(group), "params": list(dict.fromkeys(names[params[i]][0] for i in group["params"]))}
                    for group in saved["param_groups"]]
    return {"state": state, "param_groups": param_groups}


def _hyper(group: dict) -> dict:
    """A param group's settings; `param_names` dropped, since they name one placement's parameters."""
    return {key: value for key, value in group.items() if key not in ("params", "param_names")}


def _gathered(name: str, parts: list[tuple[int, nn.Parameter, dict]]) -> dict:
    """One parameter's optimizer state from its groups' (in group order), in the fused layout."""
    _, param, first = parts[0]
    state = {}
    for key, value in first.items():
        if torch.is_tensor(value) and value.shape == param.shape:
            state[key] = torch.cat([part_state[key].detach().cpu() for _, _, part_state in parts])
        elif not torch.is_tensor(value) or value.dim() == 0 or len(parts) == 1:
            state[key] = value.detach().cpu().clone() if torch.is_tensor(value) else value
        else:
            raise ValueError(f"cannot gather optimizer state `{key}` of {name}: its shape "
                             f"{tuple(value.shape)} is not the parameter's {tuple(param.shape)}")
    return state


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load what optimizer_state() saved, from any placement, into `optimizer` over `model`.

    The saved groups need not be this optimizer's: each of its groups takes the settings of the
    saved group that held its parameters (so a checkpoint written with every parameter in one
    group, before per-tensor multipliers, resumes into one group a tensor); a setting the saved
    group lacks keeps this optimizer's value. ValueError where the parameters differ, or where
    one of this optimizer's groups holds parameters that were saved in different groups."""
    names = _fused_names(model)
    owner = {name: index for index, group in enumerate(saved["param_groups"]) for name in group["params"]}
    mine = list(dict.fromkeys(names[p][0] for group in optimizer.param_groups for p in group["params"]))
    if set(mine) != set(owner):
        raise ValueError(f"the saved optimizer state holds {_listed(set(owner) - set(mine))} that this "
                         f"optimizer lacks and lacks {_listed(set(mine) - set(owner))} that it holds")
    state, param_groups, index = {}, [], 0
    for group in optimizer.param_groups:
        have = list(dict.fromkeys(names[p][0] for p in group["params"]))
        sources = {owner[name] for name in have}
        if len(sources) > 1:
            raise ValueError(f"{', '.join(have)} were saved in different parameter groups")
        saved_group = saved["param_groups"][sources.pop()] if sources else {}
        start = index
        for param in group["params"]:
            name, g, groups = names[param]
            if name in saved["state"]:
                state[index] = {key: _scattered(value, param, g, groups)
                                for key, value in saved["state"][name].items()}
            index += 1
        param_groups.append({**_hyper(group), **_hyper(saved_group), "params": list(range(start, index))})
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def _listed(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "nothing"


def _scattered(value, param: nn.Parameter, g: int, groups: int):
    """Group g's share of a fused state value; a copy, so the groups never share storage."""
    if torch.is_tensor(value) and value.shape == (groups * param.shape[0], *param.shape[1:]):
        return value.chunk(groups)[g].clone()
    return value.clone() if torch.is_tensor(value) else value   # Adam's `step`: one count a slice
