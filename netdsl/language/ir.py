"""The checked network: a small immutable IR that every later stage reads.

    net = netdsl.parse_file("nets/alexnet.net")
    net.layer("conv1").out_shape          # Shape(c=96, h=55, w=55)
    net.lint()                            # re-checks the invariants; raises AssertionError if broken

Shapes count all groups together: conv1 of AlexNet is 96 x 55 x 55, 48 channels per group.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

from .values import written


class Shape(NamedTuple):
    c: int
    h: int
    w: int

    def __str__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}"

    @property
    def numel(self) -> int:
        return self.c * self.h * self.w


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    inputs: tuple[str, ...]           # the layers read (concatenated along channels unless the type combines them otherwise); () for data
    options: Mapping[str, Any]        # every key of the type, defaults filled in
    in_shape: Shape | None            # what the layer reads (its inputs combined); None for data
    out_shape: Shape
    split: bool                       # output split by channels over the groups (data: whole in each)
    params: int
    flops: int                        # forward FLOPs for one image, a multiply-add counting 2
    cross_bytes: int                  # float32 bytes one image sends between groups in the forward
    line: int
    col: int
    derived: Mapping[str, Any] = field(default_factory=lambda: frozen({}))  # facts templates need
    flat: bool = False                # held as N x C (fc and after) rather than N x C x H x W

    @property
    def neurons(self) -> int:
        return self.out_shape.numel


@dataclass(frozen=True)
class TrainConfig:
    """The [train] section with defaults filled in (docs/language.md, 'The `[train]` section')."""
    batch: int = 128
    epochs: int = 90
    optimizer: str = "sgd"            # sgd | nesterov (PaperSGD) | adam | adamw (torch.optim's)
    lr: float = 0.01
    momentum: float = 0.9             # sgd and nesterov's
    weight_decay: float = 0.0005
    betas: tuple[float, float] = (0.9, 0.999)  # adam and adamw's
    eps: float = 1e-8                 # adam and adamw's
    label_smoothing: float = 0.0      # of the softmax cross-entropy, in training
    schedule: str = "plateau"         # plateau | step | multistep | cosine | none
    milestones: tuple[int, ...] = ()  # multistep's epochs, after each of which lr is cut
    gamma: float = 0.1                # the factor of each cut: multistep's `gamma`, g of step(g), 0.1 on a plateau
    patience: int = 2
    warmup: int = 0                   # epochs of linear warm-up from lr * 0.01, before the schedule
    resize: int = 256
    flip: bool = True
    lighting: float = 0.1
    mean: str | tuple[float, ...] = "image"  # image | channel | none | fixed values, one a channel (0..255)
    scale: float = 1.0                # multiplies pixels after the mean is subtracted (Caffe's scale)
    test: str = "center"              # center | tencrop
    precision: str = "fp32"           # fp32 | bf16 | fp16: the forward under autocast, the weights fp32

    @property
    def adam(self) -> bool:
        """Whether the optimizer is torch's Adam or AdamW (else the paper's SGD or its Nesterov form)."""
        return self.optimizer in ("adam", "adamw")

    @property
    def schedule_text(self) -> str:
        """The schedule as a .net file writes it: `step(0.9)`, `multistep(700, 900)`, `plateau`, `cosine`."""
        if self.schedule == "step":
            return f"step({written(self.gamma)})"
        if self.schedule == "multistep":
            return f"multistep({', '.join(map(str, self.milestones))})"
        return self.schedule

    def written(self) -> dict[str, Any]:
        """The recipe as [train] keys in field order, each value in the file's terms: the
        schedule as written (milestones inside it), `gamma` only for multistep and `patience`
        only for plateau, the schedules they belong to; `momentum` only for sgd and nesterov,
        `betas` and `eps` only for adam and adamw; `warmup` and `label_smoothing` only where
        they are set (not 0), so a recipe that uses neither reads as it always has."""
        unused = {"milestones"}  # written inside the schedule
        if self.schedule != "multistep":
            unused.add("gamma")
        if self.schedule != "plateau":
            unused.add("patience")
        unused.update(("momentum",) if self.adam else ("betas", "eps"))
        unused.update(key for key in ("warmup", "label_smoothing") if not getattr(self, key))
        return {f.name: self.schedule_text if f.name == "schedule" else getattr(self, f.name)
                for f in fields(self) if f.name not in unused}


@dataclass(frozen=True)
class Net:
    name: str
    path: str
    text: str                         # the .net source, kept so runs and checkpoints carry it
    groups: int
    layers: tuple[Layer, ...]
    train: TrainConfig

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def data(self) -> Layer:
        return self.layers[0]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def input_shape(self) -> Shape:
        return self.data.out_shape

    @property
    def classes(self) -> int:
        return self.output.out_shape.c

    @property
    def class_name(self) -> str:
        """The generated module's class: `si_alexnet` becomes `SiAlexnet`."""
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("_") if part) or "Net"

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def neurons(self) -> int:
        """Units of the weighted layers, as the AlexNet paper counts its 650,000 neurons."""
        from ..layers.registry import REGISTRY
        return sum(layer.neurons for layer in self.layers if REGISTRY[layer.type].counts_neurons(layer))

    @property
    def aux_outputs(self) -> tuple[Layer, ...]:
        """The auxiliary heads: output layers before the last, read in training only."""
        from ..layers.registry import REGISTRY
        return tuple(layer for layer in self.layers[:-1] if REGISTRY[layer.type].role == "output")

    @property
    def training_only(self) -> frozenset[str]:
        """The layers only the auxiliary heads need: the heads and the layers that feed nothing else."""
        needed = {self.output.name}
        for layer in reversed(self.layers):
            if layer.name in needed:
                needed.update(layer.inputs)
        return frozenset(layer.name for layer in self.layers if layer.name not in needed)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def cross_bytes(self) -> int:
        return sum(layer.cross_bytes for layer in self.layers)

    def lint(self) -> None:
        """Re-check the invariants every stage after `check` relies on."""
        from ..layers.registry import REGISTRY
        role = {layer.name: REGISTRY[layer.type].role for layer in self.layers}
        assert self.groups >= 1
        assert self.layers and role[self.data.name] == "input" and role[self.output.name] == "output"
        seen: dict[str, Layer] = {}
        for index, layer in enumerate(self.layers):
            assert layer.name.isidentifier() and layer.name not in seen, layer.name
            assert (role[layer.name] == "input") == (index == 0), layer.name
            for name in layer.inputs:
                assert name in seen, f"{layer.name} reads {name}, not defined above it"
                assert role[name] != "output", f"{layer.name} reads the output {name}"
            if layer.inputs:
                kind = REGISTRY[layer.type]
                reads = [(name, seen[name].out_shape, seen[name].split) for name in layer.inputs]
                assert layer.in_shape == kind.combine(layer.options, reads, self.groups)[0], layer.name
            if layer.split:
                assert layer.out_shape.c % self.groups == 0, layer.name
            assert min(layer.out_shape) >= 1 and layer.params >= 0, layer.name
            seen[layer.name] = layer
