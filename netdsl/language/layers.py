"""Every layer type, in one place each: its keys, its output shape, its parameters and FLOPs.

A layer type is a class registered under its name; its code lives in the template
`codegen_templates/layers/<name>.py.j2`. Adding a layer type means adding a class here
and that template, nothing else.

Shapes are C x H x W for one image, all groups together. `split` says whether the input
is split by channels over the groups (everything after `data`) or whole in every group.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from . import values as v
from .ir import Shape
from .values import Key

FLOAT_BYTES = 4
REGISTRY: dict[str, "LayerType"] = {}


class ShapeError(Exception):
    """A shape or count that does not fit; `key` names the entry to point at, if one is to blame."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def chunk_bytes(shape: Shape, groups: int) -> int:
    """Float32 bytes of one group's chunk of a tensor split over the groups, for one image: what
    one group sends another for each `connect = all` layer reading it (netdsl draw labels these)."""
    return shape.numel // groups * FLOAT_BYTES


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


def within_limit(kind: "LayerType", params: int, out: Shape) -> None:
    """A layer holds at most SIZE_LIMIT parameters and outputs at most SIZE_LIMIT values an image."""
    for what, count in (("parameters", params), ("output values per image", out.numel)):
        if count > v.SIZE_LIMIT:
            raise ShapeError(f"has {count:,} {what}, which exceeds the limit of {v.SIZE_LIMIT:,} "
                             "(2**31 - 1) per layer", kind.size_key)


def _div(count: int, groups: int, what: str, key: str) -> int:
    if count % groups:
        raise ShapeError(f"{what} {count} is not divisible by the {groups} groups", key)
    return count // groups


def _window(size: int, extent: int, stride: int, pad: int, key: str, what: str) -> int:
    out = (extent + 2 * pad - size) // stride + 1
    if size > extent + 2 * pad:
        raise ShapeError(f"a {what} of size {size} does not fit an input of {extent} "
                         f"(padded by {pad} on each side)", key)
    return out


class LayerType:
    name = ""
    keys: dict[str, Key] = {}
    weighted = False
    reads = "any"               # "maps": wants N x C x H x W; "flat": wants N x C; "any": either
    flat_output = None          # True: the output is N x C; None: flat exactly when its inputs are
    kernels: tuple[str, ...] = ()  # Triton kernel templates, codegen_templates/triton/<name>.py.j2
    size_key: str | None = None    # the key that sets how large the layer is, blamed past SIZE_LIMIT

    def input_form(self, layer) -> str:
        """How this layer wants its input held: "maps", "flat" or "any"."""
        return self.reads

    def helpers(self, layer, net, backend: str) -> tuple[str, ...]:
        """Helper templates the generated module needs for this layer, rendered once per network."""
        if backend == "triton":
            return tuple(f"triton/{name}.py.j2" for name in self.kernels)
        return ()

    def output(self, o: Mapping[str, Any], inp: Shape, groups: int, split: bool) -> Shape:
        return inp

    def params(self, o, inp: Shape, out: Shape, groups: int, split: bool) -> int:
        return 0

    def flops(self, o, inp: Shape, out: Shape, groups: int, split: bool) -> int:
        return out.numel

    def derived(self, o, inp: Shape, out: Shape, groups: int, split: bool) -> dict[str, Any]:
        """Facts the templates need beyond the options."""
        if self.weighted:  # grouped: each group reads only its own chunk of a split input
            return {"grouped": o["connect"] == "group" and split and groups > 1}
        return {}

    def cross_bytes(self, o, inp: Shape, groups: int, split: bool) -> int:
        """Bytes one image's forward sends between groups: each group fetches the others' chunks."""
        if self.weighted and o["connect"] == "all" and split and groups > 1:
            return groups * (groups - 1) * chunk_bytes(inp, groups)
        return 0


@register
class Data(LayerType):
    name = "data"
    flat_output = False
    size_key = "shape"
    keys = {"shape": Key(v.shape, help="C x H x W of one input image")}

    def output(self, o, inp, groups, split):
        return Shape(*o["shape"])

    def flops(self, o, inp, out, groups, split):
        return 0


WEIGHT_KEYS = {
    "connect": Key(v.choice("all", "group"), "all", "`group`: each group reads only its own chunk"),
    "neuron": Key(v.neuron, "none", "applied to the output"),
    "bias": Key(v.float32(v.number(), "a weight"), 0.0, "the initial bias"),
    "init": Key(v.init, ("normal", 0.0, 0.01), "initial weights: normal(mean, std) or uniform(low, high)"),
    "lr_mult": Key(v.multipliers, (1.0, 1.0), "multipliers of the learning rate for the weights and the bias"),
    "decay_mult": Key(v.multipliers, (1.0, 0.0), "multipliers of the weight decay for the weights and the bias"),
}
# Keys of the training recipe rather than of the network: they change how the weights are
# trained, not what the network computes (`netdsl diff` lists them with the [train] recipe).
RECIPE_KEYS = ("lr_mult", "decay_mult")


def _in_per_group(o, channels: int, groups: int, split: bool) -> int:
    if o["connect"] == "group" and split:
        return _div(channels, groups, "the input's channel count", "connect")
    return channels


@register
class Conv(LayerType):
    name = "conv"
    weighted = True
    reads = "maps"
    flat_output = False
    size_key = "filters"
    keys = {
        "filters": Key(v.integer(1), help="output channels, all groups together"),
        "size": Key(v.integer(1), help="square kernel side"),
        "stride": Key(v.integer(1), 1),
        "pad": Key(v.integer(0), 0, "zeros added on each side"),
        **WEIGHT_KEYS,
    }

    def output(self, o, inp, groups, split):
        _div(o["filters"], groups, "`filters`", "filters")
        _in_per_group(o, inp.c, groups, split)
        return self._conv_output(o, inp.h, inp.w)

    def _conv_output(self, o, h: int, w: int, what: str = "kernel") -> Shape:
        return Shape(o["filters"],
                     _window(o["size"], h, o["stride"], o["pad"], "size", what),
                     _window(o["size"], w, o["stride"], o["pad"], "size", what))

    def params(self, o, inp, out, groups, split):
        return o["filters"] * _in_per_group(o, inp.c, groups, split) * o["size"] ** 2 + o["filters"]

    def flops(self, o, inp, out, groups, split):
        per_output = 2 * _in_per_group(o, inp.c, groups, split) * o["size"] ** 2
        return per_output * out.numel


@register
class SIConv(Conv):
    """The SI paper's scale-invariant conv: the same weights at every scale, the max taken."""
    name = "siconv"
    kernels = ("si_warp_max",)

    def helpers(self, layer, net, backend):
        return super().helpers(layer, net, backend) if backend == "triton" else ("torch/si_conv.py.j2",)
    keys = {**Conv.keys, "scales": Key(v.scales, help="the factors the input is resized by")}

    def scale_maps(self, o, inp: Shape) -> list[tuple[float, int, int, int, int]]:
        """(scale, resized input H, W, conv output H, W) for each scale, as F.interpolate sizes them."""
        maps = []
        for s in o["scales"]:
            if inp.c * (inp.h * s) * (inp.w * s) > v.SIZE_LIMIT:  # a float: inf past 1.8e308
                raise ShapeError(f"scale {s} enlarges the {inp} input past the limit of "
                                 f"{v.SIZE_LIMIT:,} (2**31 - 1) values per image", "scales")
            h, w = math.floor(inp.h * s), math.floor(inp.w * s)
            if min(h, w) < 1:
                raise ShapeError(f"scale {s} shrinks the {inp.h}x{inp.w} input to nothing", "scales")
            try:
                conv = self._conv_output(o, h, w)
            except ShapeError as err:
                raise ShapeError(f"at scale {s} the input is {h}x{w}: {err}", "scales") from None
            if conv.numel > v.SIZE_LIMIT:
                raise ShapeError(f"at scale {s} the conv outputs {conv}, {conv.numel:,} values, which exceeds "
                                 f"the limit of {v.SIZE_LIMIT:,} (2**31 - 1) per image", "scales")
            maps.append((s, h, w, conv.h, conv.w))
        return maps

    def output(self, o, inp, groups, split):
        self.scale_maps(o, inp)
        return super().output(o, inp, groups, split)

    def flops(self, o, inp, out, groups, split):
        per_output = 2 * _in_per_group(o, inp.c, groups, split) * o["size"] ** 2
        conv = sum(per_output * o["filters"] * ch * cw for _, _, _, ch, cw in self.scale_maps(o, inp))
        return conv + len(o["scales"]) * out.numel  # plus the max over scales

    def derived(self, o, inp, out, groups, split):
        return {**super().derived(o, inp, out, groups, split), "scale_maps": tuple(self.scale_maps(o, inp))}


@register
class LRN(LayerType):
    name = "lrn"
    reads = "maps"
    flat_output = False
    kernels = ("lrn",)

    def helpers(self, layer, net, backend):
        return super().helpers(layer, net, backend) if backend == "triton" else ("torch/lrn.py.j2",)
    keys = {
        "size": Key(v.integer(1), 5, "n: channels in the window, odd, centred on each channel"),
        "k": Key(v.float32(v.number(), "a constant of float32 arithmetic"), 2.0),
        "alpha": Key(v.float32(v.number(0), "a constant of float32 arithmetic"), 1e-4, "not divided by size"),
        "beta": Key(v.float32(v.number(0), "a constant of float32 arithmetic"), 0.75),
    }

    def output(self, o, inp, groups, split):
        if o["size"] % 2 == 0:
            raise ShapeError("`size` must be odd: the window i-n/2..i+n/2 is centred on channel i", "size")
        if o["k"] <= 0 and o["beta"] > 0:
            raise ShapeError("`k` must be above 0, or an all-zero input divides by zero", "k")
        return inp

    def flops(self, o, inp, out, groups, split):
        return out.numel * (2 * o["size"] + 3)


class Pool(LayerType):
    reads = "maps"
    flat_output = False
    keys = {
        "size": Key(v.integer(1)),
        "stride": Key(v.integer(1)),
        "pad": Key(v.integer(0), 0),
        "round": Key(v.choice("floor", "ceil"), "floor", "`ceil` rounds the output size up"),
    }

    def output(self, o, inp, groups, split):
        size, stride, pad = o["size"], o["stride"], o["pad"]
        if 2 * pad > size:
            raise ShapeError(f"`pad` {pad} is more than half the window size {size}", "pad")
        return Shape(inp.c, self._extent(o, inp.h), self._extent(o, inp.w))

    def _extent(self, o, extent: int) -> int:
        size, stride, pad = o["size"], o["stride"], o["pad"]
        out = _window(size, extent, stride, pad, "size", "pooling window")
        if o["round"] == "ceil":
            out = -(-(extent + 2 * pad - size) // stride) + 1
            if (out - 1) * stride >= extent + pad:  # the last window would start in the padding
                out -= 1
        return out

    def flops(self, o, inp, out, groups, split):
        return out.numel * o["size"] ** 2


@register
class MaxPool(Pool):
    name = "maxpool"
    kernels = ("maxpool",)


@register
class AvgPool(Pool):
    name = "avgpool"


@register
class FC(LayerType):
    name = "fc"
    weighted = True
    flat_output = True
    size_key = "outputs"

    def input_form(self, layer) -> str:
        return "maps" if layer.derived["grouped"] else "flat"
    keys = {"outputs": Key(v.integer(1), help="output units, all groups together"), **WEIGHT_KEYS}

    def output(self, o, inp, groups, split):
        _div(o["outputs"], groups, "`outputs`", "outputs")
        _in_per_group(o, inp.numel, groups, split)
        return Shape(o["outputs"], 1, 1)

    def params(self, o, inp, out, groups, split):
        return o["outputs"] * _in_per_group(o, inp.numel, groups, split) + o["outputs"]

    def flops(self, o, inp, out, groups, split):
        return 2 * o["outputs"] * _in_per_group(o, inp.numel, groups, split)


@register
class Dropout(LayerType):
    name = "dropout"
    keys = {"p": Key(v.number(0, 1, below=True), 0.5, "the probability of zeroing a unit"),
            # test: the paper's, kept units as they are in training, every unit times 1 - p at
            # test; train: inverted, kept units divided by 1 - p in training (TensorFlow, Caffe,
            # PyTorch). The same function at test, but not the same training: what follows an
            # inverted dropout sees inputs 1 / (1 - p) larger, so its weights start larger
            # relative to them and its updates are (1 / (1 - p))^2 larger, for the same lr.
            "rescale": Key(v.choice("test", "train"), "test", "when kept units are rescaled")}


@register
class Neuron(LayerType):
    name = "neuron"
    keys = {"neuron": Key(v.neuron)}


class Output(LayerType):
    """The network's output: logits, one per class; the loss decides how they are read."""
    flat_output = True
    reads = "flat"

    def output(self, o, inp, groups, split):
        return Shape(inp.numel, 1, 1)

    def flops(self, o, inp, out, groups, split):
        return 0


@register
class Softmax(Output):
    name = "softmax"


@register
class Sigmoid(Output):
    name = "sigmoid"
