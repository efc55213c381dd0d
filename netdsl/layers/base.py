"""What every layer type answers, and the registry the rest of netdsl asks.

A layer type is a subclass of LayerType in a module of its own in netdsl/layers/, with its
template beside it (netdsl/layers/<name>.py.j2: the macros `init`, `forward` and `weights`).
Everything about the type is there: its keys, how several inputs combine, its output shape,
parameters, neurons and FLOPs, its ONNX nodes, how its module splits over GPU groups, its
learning-rate and decay multipliers, its colour in `netdsl draw`, whether `netdsl filters` can
show it. check, render, placement, optim, timing, export and draw ask the type; none of them
tests a type's name. registry.py imports every module of the package, which registers its types.

Shapes are C x H x W for one image, all groups together. `split` says whether the input is split
by channels over the groups (everything after `data`) or whole in every group.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key

FLOAT_BYTES = 4
REGISTRY: dict[str, "LayerType"] = {}


class ShapeError(Exception):
    """A shape or count that does not fit; `key` names the entry to point at, if one is to blame."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def python_number(x) -> str:
    """A checked int or float as Python source."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"not a number: {x!r}")
    return repr(x) if isinstance(x, int) else repr(float(x))


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


def chunk_bytes(shape: Shape, groups: int) -> int:
    """Float32 bytes of one group's chunk of a tensor split over the groups, for one image: what
    one group sends another for each `connect = all` layer reading it (netdsl draw labels these)."""
    return shape.numel // groups * FLOAT_BYTES


def within_limit(kind: "LayerType", params: int, out: Shape) -> None:
    """A layer holds at most SIZE_LIMIT parameters and outputs at most SIZE_LIMIT values an image."""
    for what, count in (("parameters", params), ("output values per image", out.numel)):
        if count > v.SIZE_LIMIT:
            raise ShapeError(f"has {count:,} {what}, which exceeds the limit of {v.SIZE_LIMIT:,} "
                             "(2**31 - 1) per layer", kind.size_key)


def divide(count: int, groups: int, what: str, key: str) -> int:
    if count % groups:
        raise ShapeError(f"{what} {count} is not divisible by the {groups} groups", key)
    return count // groups


def window(size: int, extent: int, stride: int, pad: int, key: str, what: str, ceil: bool = False) -> int:
    """How many windows of `size` fit `extent` padded by `pad` each side, `stride` apart; `ceil`
    counts a last window that overhangs the padding (cuda-convnet's and Caffe's rule)."""
    if size > extent + 2 * pad:
        raise ShapeError(f"a {what} of size {size} does not fit an input of {extent} "
                         f"(padded by {pad} on each side)", key)
    if ceil:
        return -(-(extent + 2 * pad - size) // stride) + 1
    return (extent + 2 * pad - size) // stride + 1


class LayerType:
    name = ""
    keys: dict[str, Key] = {}
    role = "hidden"             # "input": the data layer; "output": logits the loss reads
    weighted = False            # takes `connect`; its outputs spread over the groups (conv, fc, ...)
    holds_module = False        # forward uses self.<name>, a module with parameters or buffers
    reads = "any"               # "maps": wants N x C x H x W; "flat": wants N x C; "any": either
    flat_output = None          # True: the output is N x C; None: flat exactly when its inputs are
    kernels: tuple[str, ...] = ()  # Triton kernels, codegen_templates/triton/<name>.py.in
    size_key: str | None = None    # the key that sets how large the layer is, blamed past SIZE_LIMIT
    colour = "#f2f2f2"          # its boxes' fill in `netdsl draw`
    has_kernels = False         # `netdsl filters` can draw its weights as filters x C x kh x kw kernels

    # ------------------------------------------------------------ shapes and counts

    def input_form(self, layer) -> str:
        """How this layer wants its input held: "maps", "flat" or "any"."""
        return self.reads

    def combine(self, o: Mapping[str, Any], inputs: Sequence[tuple[str, Shape, bool]],
                groups: int) -> tuple[Shape, bool]:
        """What several inputs (name, shape, split) make: concatenated along channels, inside
        each group when split; (the shape read, whether it is split)."""
        name, first, split = inputs[0]
        for other, shape, _ in inputs[1:]:
            if (shape.h, shape.w) != (first.h, first.w):
                raise ShapeError(f"inputs `{name}` ({first}) and `{other}` ({shape}) differ in height "
                                 "or width, so they cannot be concatenated", "input")
        if len({s for _, _, s in inputs}) > 1 and groups > 1:
            raise ShapeError("cannot concatenate the data layer, whole in every group, with layers "
                             "split over the groups", "input")
        return Shape(sum(shape.c for _, shape, _ in inputs), first.h, first.w), split

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
        if self.reads_every_group(o, groups, split):
            return groups * (groups - 1) * chunk_bytes(inp, groups)
        return 0

    def reads_every_group(self, o, groups: int, split: bool) -> bool:
        """A `connect = all` edge: each group reads every group's chunk of a split input."""
        return self.weighted and o["connect"] == "all" and split and groups > 1

    def counts_neurons(self, layer) -> bool:
        """Its outputs count among the network's neurons, as the AlexNet paper counts 650,000."""
        return self.weighted

    # ------------------------------------------------------------ code

    def helpers(self, layer, net, backend: str) -> tuple[str, ...]:
        """Module-level code the generated module needs for this layer: files of codegen_templates/, each
        included once per network (netdsl/codegen/render.py)."""
        found = ()
        if len(layer.inputs) > 1 and net.groups > 1 and layer.split:
            found = ("torch/group_cat.py.in",)
        if backend == "triton":
            found += tuple(f"triton/{name}.py.in" for name in self.kernels_of(layer))
        return found

    def kernels_of(self, layer) -> tuple[str, ...]:
        """The Triton kernels (codegen_templates/triton/<name>.py.in) this layer launches on the triton backend."""
        return self.kernels

    def bindings(self, layer, net, backend: str) -> tuple[str, ...]:
        """The layer's module-level lines binding its constants to its helpers (`lrn_rnorm1 =
        functools.partial(local_response_norm, SIZE=5, ...)`), placed after all the helpers."""
        return ()

    def combine_code(self, layer, net, names: list[str]) -> str:
        """The Python expression of what several inputs make (see combine)."""
        if net.groups == 1 or not layer.split:
            return f"torch.cat([{', '.join(names)}], 1)"
        return f"group_cat([{', '.join(names)}], groups={net.groups})"

    # ------------------------------------------------------------ ONNX

    def onnx(self, g, layer, x: str) -> str:
        """Add the nodes computing the layer from tensor `x` to the graph `g` (netdsl/codegen/
        onnx_export.py's Graph); the output tensor's name. None: the type has no exact form."""
        return None

    def combine_onnx(self, g, layer, names: list[str]) -> str:
        """combine_code as ONNX nodes."""
        if g.net.groups == 1 or not layer.split:
            return g.node("Concat", names, "inputs", axis=1)
        groups = g.net.groups   # group_cat: group g gets the g-th chunk of each input, in order
        chunks = [g.node("Split", [n], "chunk", outputs=groups, axis=1, num_outputs=groups) for n in names]
        return g.node("Concat", [c[k] for k in range(groups) for c in chunks], "inputs", axis=1)

    # ------------------------------------------------------------ weights

    def shard(self, fused, g: int, groups: int, device):
        """Group g's part of this layer's module (self.<name> of the fused model), on `device`:
        the g-th slice, along dim 0, of its outputs' weights. Only types that hold a module."""
        raise NotImplementedError(f"a {self.name} layer holds no module to split over groups")

    def multipliers(self, options: Mapping[str, Any], tensor: str) -> tuple[float, float]:
        """(lr_mult, decay_mult) of the tensor `tensor` (`weight`, `bias`) of its module."""
        index = ("weight", "bias").index(tensor)
        return options["lr_mult"][index], options["decay_mult"][index]

    def cannot_run(self, layer, on_cuda: bool, processes: int) -> str | None:
        """Why this layer cannot run where a run puts it (on CUDA or not, in how many training
        processes), or None."""
        return None

    # ------------------------------------------------------------ outputs

    def loss(self, logits, y, label_smoothing: float = 0.0):
        """The summed training loss of these logits (output types only)."""
        raise NotImplementedError

    def probabilities(self, logits):
        raise NotImplementedError


def slice_rows(part, fused, g: int, groups: int) -> None:
    """Copy the g-th slice along dim 0 of each parameter and buffer of `fused` into `part`
    (a 0-dimensional buffer, such as batch norm's count of batches, whole)."""
    import torch

    with torch.no_grad():
        for name, tensor in [*part.named_parameters(), *part.named_buffers()]:
            whole = getattr(fused, name)
            rows = whole.shape[0] // groups if whole.dim() else 0
            tensor.copy_(whole[g * rows:(g + 1) * rows] if whole.dim() else whole)
