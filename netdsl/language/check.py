"""Stage 2, check: parsed sections to the network IR, every shape inferred, every error caught.

    net = check(parse_text(text, path))     # Net; raises NetError(path, line, col)

What a layer type accepts lives in its module of netdsl/layers/; this file applies the language's rules:
sections and keys, inputs defined above their reader, one `data` first and one output last,
and names that the generated Python can use.
"""
from __future__ import annotations

import builtins
import keyword
from pathlib import Path
from typing import Any

from . import values as v
from ..errors import NetError, did_you_mean
from ..layers.base import ShapeError, within_limit
from ..layers.registry import REGISTRY
from .ir import Layer, Net, Shape, TrainConfig, frozen
from .parse import Document, Entry, Section

NET_KEYS = {
    "name": v.Key(v.identifier, None, "the network's name"),
    "groups": v.Key(v.integer(1, 64), 1, "GPU groups the network is spread over"),
}

OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
ADAM_KEYS = ("betas", "eps")  # keys of adam and adamw alone, as `momentum` is of sgd and nesterov

TRAIN_KEYS = {
    "batch": v.Key(v.integer(1), 128, "images per step, over all processes"),
    "epochs": v.Key(v.integer(1), 90),
    "optimizer": v.Key(v.choice(*OPTIMIZERS), "sgd"),
    "lr": v.Key(v.number(0, above=True), 0.01),
    "momentum": v.Key(v.number(0, 1, below=True), 0.9, "SGD's momentum (sgd, nesterov)"),
    "weight_decay": v.Key(v.number(0), 0.0005),
    "betas": v.Key(v.betas, (0.9, 0.999), "Adam's b1, b2 (adam, adamw)"),
    "eps": v.Key(v.number(0, above=True), 1e-8, "Adam's epsilon (adam, adamw)"),
    "label_smoothing": v.Key(v.number(0, 1, below=True), 0.0, "the softmax cross-entropy's label smoothing"),
    "schedule": v.Key(v.schedule, ("plateau", 0.1, ())),
    "gamma": v.Key(v.number(0, 1, above=True), 0.1, "the factor of `multistep`"),
    "patience": v.Key(v.integer(1), 2),
    "warmup": v.Key(v.integer(0), 0, "epochs of linear warm-up before the schedule"),
    "resize": v.Key(v.integer(1), None, "shorter side images are scaled to"),
    "flip": v.Key(v.yes_no, True),
    "lighting": v.Key(v.number(0), 0.1),
    "mean": v.Key(v.mean, "image"),
    "scale": v.Key(v.number(0, above=True), 1.0, "multiplies pixel values after the mean is subtracted"),
    "test": v.Key(v.choice("center", "tencrop"), "center"),
    "precision": v.Key(v.choice("fp32", "bf16", "fp16"), "fp32", "the forward under autocast; weights stay fp32"),
}

# Layer names become attributes of an nn.Module and locals of its forward(): these would clash.
MODULE_ATTRIBUTES = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children named_modules
    named_parameters parameters register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu
    zero_grad self super
""".split())
# Globals of every generated module (render.py also refuses a clash with any helper it emits).
GENERATED_GLOBALS = frozenset({"torch", "nn", "F", "triton", "tl", "build"})


def check_name(name: str) -> str | None:
    """Why `name` cannot name a layer, or None if it can."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"`{name}` is a Python keyword"
    if name.startswith("_"):
        return "names starting with `_` are reserved for the generated code"
    if name in MODULE_ATTRIBUTES:
        return f"`{name}` is already an attribute of every torch.nn.Module"
    if name in GENERATED_GLOBALS:
        return f"the generated code uses `{name}` for itself"
    return None


def check_class_name(net: Net, entry: Entry | None) -> None:
    """Refuse a network whose class, named after it, would be a keyword (`none` gives `None`),
    a Python builtin (`exception`) or a global of the generated module (`f` gives `F`)."""
    name = net.class_name
    reason = ("a Python keyword" if keyword.iskeyword(name) else "a Python builtin" if hasattr(builtins, name)
              else "a name the generated code uses for itself" if name in GENERATED_GLOBALS else None)
    if reason:
        where = "choose another with `[net] name = ...`" if entry else "name it with `[net] name = ...`"
        raise NetError(f"the network's name `{net.name}` makes its class `{name}`, {reason}; {where}",
                       None, entry.value.line if entry else None, entry.value.col if entry else None)


def _read_entries(section: Section, keys: dict[str, v.Key], skip=()) -> tuple[dict[str, Any], dict[str, Entry]]:
    """Read a section's entries against its keys; defaults filled in, positions kept."""
    options: dict[str, Any] = {}
    where: dict[str, Entry] = {}
    for entry in section.entries:
        if entry.key in skip:
            continue
        if entry.key in where:
            first = where[entry.key]
            raise NetError(f"`{entry.key}` is set twice in [{section.name}] (first on line {first.line})",
                           None, entry.line, entry.col)
        if entry.key not in keys:
            raise NetError(_unknown_key(section, entry.key, list(keys) + list(skip)), None, entry.line, entry.col)
        options[entry.key] = keys[entry.key].read(entry.value)
        where[entry.key] = entry
    for key, spec in keys.items():
        if key not in options:
            if spec.default is v.REQUIRED:
                raise NetError(f"[{section.name}] needs the key `{key}` ({spec.help or 'no default'})",
                               None, section.line, section.col)
            options[key] = spec.default
    return options, where


def _unknown_key(section: Section, key: str, known: list[str]) -> str:
    if section.name in ("net", "train"):
        return f"unknown key `{key}` for `{section.name}`{did_you_mean(key, known)}"
    takers = [name for name, kind in REGISTRY.items() if key in kind.keys]
    if takers:
        return f"`{key}` is a key of {', '.join(takers)} layers; a `{_entry(section, 'type').value}` layer has none"
    return f"unknown key `{key}` for this layer type{did_you_mean(key, known)}"


def _entry(section: Section, key: str) -> Entry | None:
    return next((e for e in section.entries if e.key == key), None)


def _layer_type(section: Section) -> str:
    entry = _entry(section, "type")
    if entry is None:
        raise NetError(f"layer [{section.name}] needs `type = ...` (one of {', '.join(REGISTRY)})",
                       None, section.line, section.col)
    if entry.value.kind != "name" or entry.value.data not in REGISTRY:
        raise NetError(f"unknown layer type `{entry.value}`{did_you_mean(str(entry.value), REGISTRY)}",
                       None, entry.value.line, entry.value.col)
    return entry.value.data


def _inputs(section: Section, layers: dict[str, Layer], every: dict[str, Section], previous: Layer | None):
    entry = _entry(section, "input")
    if entry is None:
        return (previous.name,) if previous else ()
    names = v.names(entry.value)
    items = entry.value.data if entry.value.kind == "list" else (entry.value,)
    for name, item in zip(names, items):
        if name == section.name:
            raise NetError(f"[{name}] reads itself; a network cannot loop", None, item.line, item.col)
        if name not in layers:
            if name in every:
                message = (f"[{section.name}] reads `{name}`, which is defined below it; an input must "
                           "come before its reader, so a network cannot loop")
            else:
                message = f"unknown input `{name}`{did_you_mean(name, layers)}"
            raise NetError(message, None, item.line, item.col)
    if len(set(names)) != len(names):
        raise NetError("an input is listed twice", None, entry.value.line, entry.value.col)
    return names


def _build_layer(section: Section, previous: Layer | None, layers: dict[str, Layer],
                 every: dict[str, Section], groups: int) -> Layer:
    if (reason := check_name(section.name)) is not None:
        raise NetError(f"cannot name a layer `{section.name}`: {reason}", None, section.line, section.col)
    type_name = _layer_type(section)
    kind = REGISTRY[type_name]
    options, where = _read_entries(section, kind.keys, skip=("type", "input"))
    if kind.role == "input":
        if _entry(section, "input") is not None:
            entry = _entry(section, "input")
            raise NetError("the data layer reads no input", None, entry.line, entry.col)
        inputs, in_shape, split = (), None, False
    else:
        inputs = _inputs(section, layers, every, previous)
        if not inputs:
            raise NetError(f"[{section.name}] has nothing to read: the first layer must be `type = data`",
                           None, section.line, section.col)
        _refuse_reading_outputs(section, [layers[n] for n in inputs])
    try:
        if inputs:
            in_shape, split = kind.combine(options, [(n, layers[n].out_shape, layers[n].split) for n in inputs], groups)
            if split and in_shape.c % groups:
                raise ShapeError(f"{in_shape.c} channels do not split over {groups} groups")
        out = kind.output(options, in_shape, groups, split)
        params = kind.params(options, in_shape, out, groups, split) if in_shape else 0
        within_limit(kind, params, out)
        flops = kind.flops(options, in_shape, out, groups, split)
        cross = kind.cross_bytes(options, in_shape, groups, split) if in_shape else 0
        derived = kind.derived(options, in_shape, out, groups, split) if in_shape else {}
        split = split or kind.weighted  # weighted layers spread their outputs over the groups
    except ShapeError as err:
        spot = where.get(err.key) or _entry(section, err.key or "") or section
        raise NetError(f"[{section.name}] {err}", None, spot.line, spot.col) from None
    if split and groups > 1 and out.c % groups:
        raise NetError(f"[{section.name}] outputs {out.c} channels, which do not split over {groups} groups",
                       None, section.line, section.col)
    flat = kind.flat_output if kind.flat_output is not None else all(layers[n].flat for n in inputs)
    return Layer(section.name, type_name, inputs, frozen(options), in_shape, out, split,
                 params, flops, cross, section.line, section.col, frozen(derived), flat)


def _refuse_reading_outputs(section: Section, reads: list[Layer]) -> None:
    """An output (the main one or an auxiliary head) is read by the loss alone."""
    for layer in reads:
        if REGISTRY[layer.type].role == "output":
            entry = _entry(section, "input")
            how = "" if entry else " (the layer above it)"
            raise NetError(f"[{section.name}] reads `{layer.name}`{how}, a {layer.type} output: only the loss "
                           "reads an output (one before the last layer is an auxiliary head; give the layer "
                           "after it `input = ...`)", None, (entry or section).line, (entry or section).col)


def _train_config(section: Section | None, input_shape: Shape, output_type: str = "softmax") -> TrainConfig:
    options, where = _read_entries(section, TRAIN_KEYS) if section else ({k: s.default for k, s in TRAIN_KEYS.items()}, {})
    options.update(_schedule(options, where))
    _optimizer_keys(options, where)
    if options["resize"] is None:
        options["resize"] = round(input_shape.h * 256 / 224)
    elif options["resize"] < max(input_shape.h, input_shape.w):
        entry = _entry(section, "resize")
        raise NetError(f"`resize` {options['resize']} is smaller than the {input_shape.h}x{input_shape.w} "
                       "crop the network takes", None, entry.value.line, entry.value.col)
    if isinstance(options["mean"], tuple) and len(options["mean"]) != input_shape.c:
        value = where["mean"].value
        raise NetError(f"`mean` gives {len(options['mean'])} value{'s' * (len(options['mean']) != 1)} but the data "
                       f"layer has {input_shape.c} channel{'s' * (input_shape.c != 1)}: one a channel, in its order",
                       None, value.line, value.col)
    if options["label_smoothing"] and output_type != "softmax":
        entry = where["label_smoothing"]
        raise NetError(f"`label_smoothing` smooths a softmax's cross-entropy; a `{output_type}` output trains "
                       "with binary cross-entropy, which has none", None, entry.line, entry.col)
    return TrainConfig(**options)


def _optimizer_keys(options: dict[str, Any], where: dict[str, Entry]) -> None:
    """`momentum` belongs to sgd and nesterov, `betas` and `eps` to adam and adamw: a key the
    optimizer does not use would change nothing, which is refused rather than ignored."""
    kind = options["optimizer"]
    adam = kind in ("adam", "adamw")
    for key in (("momentum",) if adam else ADAM_KEYS):
        if key in where:
            users = "sgd and nesterov" if key == "momentum" else "adam and adamw"
            hint = "; Adam's own are `betas`" if key == "momentum" else ""
            raise NetError(f"`{key}` is a setting of {users}; optimizer `{kind}` does not use it{hint}",
                           None, where[key].line, where[key].col)


def _schedule(options: dict[str, Any], where: dict[str, Entry]) -> dict[str, Any]:
    """The TrainConfig fields of the schedule: its kind, milestones and the factor of each cut.

    `gamma` is multistep's factor alone: plateau divides by 10, step(g) carries its own and
    cosine has none, so a `gamma` beside them would change nothing, which is refused rather
    than ignored. `warmup` comes before the schedule: it must leave it an epoch, and a
    multistep cut inside it would be lost, so milestones come after it."""
    kind, own_factor, milestones = options.pop("schedule")
    if "gamma" in where and kind != "multistep":
        entry, written = where["gamma"], where["schedule"].value if "schedule" in where else kind
        raise NetError(f"`gamma` is the factor of `multistep`; schedule `{written}` does not use it",
                       None, entry.line, entry.col)
    if milestones and milestones[-1] > options["epochs"]:
        late = next(arg for arg in where["schedule"].value.data[1] if arg.data > options["epochs"])
        raise NetError(f"milestone {late.data} comes after the last epoch ({options['epochs']}): "
                       "lr would never be cut there", None, late.line, late.col)
    warmup = options["warmup"]
    if warmup >= options["epochs"]:
        value = where["warmup"].value
        raise NetError(f"a warm-up of {warmup} epoch{'s' * (warmup != 1)} leaves none of the {options['epochs']} "
                       "to train at the full lr: `warmup` must be less than `epochs`", None, value.line, value.col)
    if milestones and milestones[0] <= warmup:
        early = next(arg for arg in where["schedule"].value.data[1] if arg.data <= warmup)
        raise NetError(f"milestone {early.data} falls in the warm-up (epochs 1 to {warmup}): the "
                       "schedule's cuts come after it", None, early.line, early.col)
    gamma = options["gamma"] if own_factor is None else own_factor
    return {"schedule": kind, "milestones": milestones, "gamma": gamma}


def _check(doc: Document) -> Net:
    specials: dict[str, Section] = {}
    every: dict[str, Section] = {}
    for section in doc.sections:
        if section.name in every or section.name in specials:
            first = every.get(section.name) or specials[section.name]
            raise NetError(f"section [{section.name}] appears twice (first on line {first.line})",
                           None, section.line, section.col)
        (specials if section.name in ("net", "train") else every)[section.name] = section
    if not every:
        raise NetError("no layers: a network needs a `type = data` layer first and a softmax or sigmoid last",
                       None, 1, 1)
    net_options, net_where = (_read_entries(specials["net"], NET_KEYS) if "net" in specials
                              else ({"name": None, "groups": 1}, {}))
    groups = net_options["groups"]
    layers: dict[str, Layer] = {}
    previous = None
    for index, section in enumerate(every.values()):
        layer = _build_layer(section, previous, layers, every, groups)
        role = REGISTRY[layer.type].role
        if (role == "input") != (index == 0):
            message = ("the first layer must be `type = data`" if index == 0
                       else "only the first layer can be `type = data`")
            raise NetError(message, None, section.line, section.col)
        if index == len(every) - 1 and role != "output":
            raise NetError("the last layer must be the output: `type = softmax` or `type = sigmoid`",
                           None, section.line, section.col)
        layers[layer.name] = layer
        previous = layer
    name = net_options["name"] or _default_name(doc.path)
    data = next(iter(layers.values()))
    train = _train_config(specials.get("train"), data.out_shape, previous.type)
    net = Net(name, doc.path, doc.text, groups, tuple(layers.values()), train)
    check_class_name(net, net_where.get("name"))
    net.lint()
    return net


def _default_name(path: str) -> str:
    stem = Path(path).stem
    return stem if stem.isidentifier() and not keyword.iskeyword(stem) else "net"


def check(doc: Document) -> Net:
    """Check a parsed document and infer every shape; raise NetError pointing into the file."""
    try:
        return _check(doc)
    except NetError as err:
        err.path = doc.path
        raise
