"""cuda-convnet's and cuda-convnet2's layer files (.cfg) as `.net` files: the same network, or a refusal.

    imported = convert_cuda_convnet("layers-18pct.cfg", "layer-params-18pct.cfg", input_shape=(3, 32, 32))

The two INI files are read with configparser, as cuda-convnet's layer.py reads them (section
order kept, keys case-insensitive): the layer definitions, and the layer parameters (learning
rates, momenta, weight decay, and the normalization layers' scale and pow). The input size is
cuda-convnet's command line (its data provider), so it comes from --input.

What differs between cuda-convnet and netdsl is converted, never approximated (cuda-convnet's
layer.py and cudaconv2/conv_util.cu; cuda-convnet2's layer.py, cudaconv3/conv_util.cu,
layer.cu, weights.cu):
- conv and local output sizes round up, 1 + ceil((2 padding + size - filterSize) / stride)
  (`round = ceil`); a conv's `groups` is netdsl's `channel_groups`, its `filters` is per group.
- pool output sizes round up, ceil((size - start - sizeX) / stride) + 1 (`round = ceil`), and
  `start < 0` pads; each pool's size is held against that rule. An average pool divides by the
  cells inside the image, which netdsl's does only where no padding is involved.
- cmrnorm divides `scale` by `size`, rnorm and cnorm by size^2: netdsl's alpha is the undivided
  constant; the constant added is 1 (cuda-convnet) or `minDiv` (cuda-convnet2).
- dropout (cuda-convnet2) rescales kept units in training (`rescale = train`), dropout2 at test.
- A neuron on a layer without one of its own (pool, norms) is cuda-convnet's own separate
  `<name>_neuron` layer; tanh[a,b] is a * tanh(b x), written as linear, tanh, linear.
- epsW, epsB, momW, momB and wc (cuda-convnet's update, v = momW v + epsW grad - wc epsW w) are
  the [train] lr, momentum and weight_decay with per-layer lr_mult and decay_mult; cuda-convnet
  does not decay biases. A schedule (cuda-convnet2's linear, exp, dexp) is refused.
- The a/b layer pairs of the model-parallel files, on gpu=0 and gpu=1, are one netdsl layer over
  `[net] groups = 2`: a pair that reads its own group's half is `connect = group`, one that reads
  both halves `connect = all`. A layer on several gpus at once (`gpu=0,1`) is data parallelism,
  which does not change the network.
"""
from __future__ import annotations

import configparser
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import files
from ..errors import NetError
from .netwriter import Imported, Names, NetText, Origin, Section, call, one_line_errors, written
from .prototxt import decode

# cuda-convnet's layers with weights: layer.py's WeightLayerParser subclasses.
WEIGHT_LAYER_PARSERS = {"conv": "ConvLayerParser", "local": "LocalUnsharedLayerParser", "fc": "FCLayerParser"}
# The keys each layer type's parser in layer.py reads (cuda-convnet and cuda-convnet2 together).
COMMON = {"type", "inputs", "gpu", "neuron"}
KEYS = {
    "data": {"type", "dataidx", "start", "end", "gpu"},
    "conv": COMMON | {"channels", "filters", "padding", "stride", "filtersize", "groups", "initw", "initb",
                      "initwfunc", "initbfunc", "initcfunc", "sharedbiases", "partialsum", "sumwidth",
                      "randsparse", "filterchannels", "weightsource", "modulesx"},
    "local": COMMON | {"channels", "filters", "padding", "stride", "filtersize", "groups", "initw", "initb",
                       "initwfunc", "initbfunc", "initcfunc", "randsparse", "filterchannels", "weightsource",
                       "modulesx"},
    "fc": COMMON | {"outputs", "initw", "initb", "initwfunc", "initbfunc", "weightsource"},
    "pool": COMMON | {"pool", "channels", "sizex", "start", "stride", "outputsx", "sum"},
    "rnorm": COMMON | {"channels", "size"},
    "cnorm": COMMON | {"channels", "size"},
    "cmrnorm": COMMON | {"channels", "size", "blocked"},
    "neuron": COMMON,
    "softmax": COMMON,
    "eltsum": COMMON,
    "eltmax": COMMON,
    "concat": COMMON,
    "pass": COMMON,
    "dropout": COMMON,
    "dropout2": COMMON,
    "cost.logreg": COMMON | {"children"},
    "cost.crossent": COMMON | {"children"},
}
PARAM_KEYS = {
    "weighted": {"epsw", "epsb", "momw", "momb", "wc", "wball", "supereps", "supermom", "updateperiod",
                 "wcnormmax", "wcnormmin"},
    "rnorm": {"scale", "pow", "mindiv"}, "cnorm": {"scale", "pow", "mindiv"}, "cmrnorm": {"scale", "pow", "mindiv"},
    "eltsum": {"coeffs"}, "dropout": {"keep", "enable"}, "dropout2": {"keep", "enable"},
    "cost.logreg": {"coeff", "topk"}, "cost.crossent": {"coeff"},
}
WHY_NOT = {
    "sfc": "netdsl has no split fully-connected layer",
    "sum": "cuda-convnet2's `sum` adds channels in strides; netdsl has no such layer",
    "cmpool": "netdsl has no pooling across channels",
    "nailbed": "netdsl has no bed-of-nails subsampling",
    "blur": "netdsl has no Gaussian blur layer",
    "href": "netdsl reflects images in its data loader, not in a layer",
    "resize": "netdsl resizes images in its data loader, not in a layer",
    "rscale": "netdsl has no random-scale layer",
    "crop": "netdsl crops images in its data loader, not in a layer",
    "rgb2yuv": "netdsl has no colour-space layer",
    "rgb2lab": "netdsl has no colour-space layer",
    "cost.sum2": "netdsl trains classifiers: a softmax or sigmoid output",
    "cost.bce": "netdsl's sigmoid output takes logits, not a logistic neuron's outputs",
    "cost.dce": "netdsl trains classifiers: a softmax or sigmoid output",
}
NEURON_WHY_NOT = {
    "nrelu": "noisy ReLU adds noise in training; netdsl has no such neuron",
    "sqrt": "netdsl has no square-root neuron",
    "log": "netdsl has no logarithm neuron",
    "drelu": "netdsl has no x - a tanh(x / a) neuron",
    "abstanh": "netdsl has no a |tanh(b x)| neuron",
}


@dataclass
class CCLayer:
    name: str
    kind: str                # its `type =`, cuda-convnet's layer type
    opts: dict[str, str]
    line: int
    params: dict[str, str] = field(default_factory=dict)
    params_line: int = 0
    origin: Origin | None = None
    inputs: list[str] = field(default_factory=list)
    gpu: tuple[int, ...] = ()
    group: "Group | None" = None


@dataclass
class Group:
    """The layers stem+a, stem+b, ... of a model-parallel file: one netdsl layer over the groups."""
    stem: str
    members: list[CCLayer]


class _Locator:
    """Lines of sections and keys in an INI file, found with configparser's own patterns."""

    def __init__(self, text: str):
        self.sections: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        current = None
        for number, line in enumerate(text.split("\n"), 1):
            m = configparser.ConfigParser.SECTCRE.match(line)
            if m:
                current = m.group("header")
                self.sections.setdefault(current, number)
                continue
            m = configparser.ConfigParser.OPTCRE.match(line)
            if m and current is not None and not line[:1].isspace():
                self.keys.setdefault((current, m.group("option").strip().lower()), number)

    def line(self, section: str, key: str | None = None) -> int:
        if key is not None and (section, key) in self.keys:
            return self.keys[(section, key)]
        return self.sections.get(section, 1)


def _read_ini(path: str, data: bytes) -> tuple[configparser.ConfigParser, _Locator]:
    text = decode(data, path, "a cuda-convnet layer file (.cfg)")
    parser = configparser.ConfigParser(interpolation=configparser.BasicInterpolation(), strict=True,
                                       inline_comment_prefixes=(";",), comment_prefixes=("#", ";"),
                                       default_section="DEFAULT")
    try:
        parser.read_string(text, path)
    except configparser.MissingSectionHeaderError as err:
        raise NetError("a key before any [section]: cuda-convnet's files are [layer] sections of key=value "
                       "lines", path, err.lineno, 1) from None
    except configparser.DuplicateSectionError as err:
        raise NetError(f"section [{err.section}] appears twice", path, err.lineno or 1, 1) from None
    except configparser.DuplicateOptionError as err:
        raise NetError(f"`{err.option}` is set twice in [{err.section}]", path, err.lineno or 1, 1) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0]
        raise NetError("neither a `key=value` line nor a [section] header", path, lineno, 1) from None
    except configparser.Error as err:
        raise NetError(f"not a cuda-convnet layer file: {err.message.splitlines()[0]}", path, 1, 1) from None
    if parser.defaults():
        raise NetError("a [DEFAULT] section: cuda-convnet's files have layers only", path,
                       _Locator(text).line("DEFAULT"), 1)
    return parser, _Locator(text)


def _read(path: str | Path) -> bytes:
    return files.read_input(path, "a .cfg file")


class CudaConvnetImporter:
    def __init__(self, path: str, data: bytes, params: tuple[str, bytes] | None, input_shape,
                 out_path: str = "imported.net", network_only: bool = False):
        self.path = path
        self.cfg, self.where = _read_ini(path, data)
        self.params_path = params[0] if params else None
        self.pcfg, self.pwhere = _read_ini(*params) if params else (None, None)
        self.input_shape = input_shape
        self.out_path = out_path
        self.network_only = network_only
        self.names = Names()
        self.out = NetText([])
        self.origins: list[Origin] = []
        self.netdsl: dict[str, str] = {}     # cuda-convnet layer -> the netdsl layer holding its output
        self.groups = 1
        self.notes: list[str] = []
        self.dropped: list[str] = []
        self.previous: str | None = None
        self.outputs: list[tuple[CCLayer, Section, float]] = []
        self.recipe_layers: list[tuple[CCLayer, Section]] = []

    # ------------------------------------------------------------------ reading

    def get(self, layer: CCLayer, key: str, default=None, params: bool = False) -> str | None:
        source = layer.params if params else layer.opts
        if key not in source:
            return default
        return source[key]

    def bad(self, layer: CCLayer, key: str, text: str, params: bool = False):
        if params:
            return NetError(text, self.params_path, self.pwhere.line(layer.name, key), 1)
        return NetError(text, self.path, self.where.line(layer.name, key), 1)

    def integer(self, layer: CCLayer, key: str, default: int | None = None, low: int | None = 0) -> int:
        text = self.get(layer, key)
        if text is None:
            if default is None:
                raise layer.origin.refuse(f"needs `{key}`")
            return default
        try:
            value = int(text)
        except ValueError:
            raise self.bad(layer, key, f"`{key}` must be an integer, got `{text}`") from None
        if low is not None and value < low:
            raise self.bad(layer, key, f"`{key}` must be at least {low}, got {value}")
        if value > 2**31 - 1:
            raise self.bad(layer, key, f"`{key}` {value} is beyond any size cuda-convnet takes")
        return value

    def integers(self, layer: CCLayer, key: str, default: int | None, count: int, low: int | None = 0) -> list[int]:
        """A per-input list (`filterSize=3,3`), one value repeated for every input, as layer.py expands it."""
        text = self.get(layer, key)
        if text is None:
            if default is None:
                raise layer.origin.refuse(f"needs `{key}`")
            return [default] * count
        values = []
        for part in text.split(","):
            try:
                values.append(int(part.strip()))
            except ValueError:
                raise self.bad(layer, key, f"`{key}` must be integers, got `{text}`") from None
        if len(values) == 1:
            values *= count
        if len(values) != count:
            raise self.bad(layer, key, f"`{key}` has {len(values)} values for {count} inputs")
        for v in values:
            if (low is not None and v < low) or v > 2**31 - 1:
                raise self.bad(layer, key, f"`{key}` must be from {low} to 2**31 - 1, got {v}")
        return values

    def real(self, layer: CCLayer, key: str, default: float | None = None, params: bool = False) -> float:
        text = self.get(layer, key, params=params)
        if text is None:
            if default is None:
                raise layer.origin.refuse(f"needs `{key}`" + (f" in {self.params_path or 'a layer parameter file'}"
                                                              if params else ""))
            return default
        try:
            value = float(text)
        except ValueError:
            raise self.bad(layer, key, f"`{key}` must be a number, got `{text}`", params) from None
        if not math.isfinite(value):
            raise self.bad(layer, key, f"`{key}` must be a finite number, got `{text}`", params)
        return value

    def reals(self, layer: CCLayer, key: str, default: float | None, count: int, params: bool = False) -> list[float]:
        text = self.get(layer, key, params=params)
        if text is None:
            if default is None:
                raise layer.origin.refuse(f"needs `{key}`" + (f" in {self.params_path}" if params else ""))
            return [default] * count
        values = []
        for part in text.split(","):
            try:
                value = float(part.strip())
            except ValueError:
                raise self.bad(layer, key, f"`{key}` must be numbers, got `{text}`", params) from None
            if not math.isfinite(value):
                raise self.bad(layer, key, f"`{key}` must be finite numbers, got `{text}`", params)
            values.append(value)
        if len(values) == 1:
            values *= count
        if len(values) != count:
            raise self.bad(layer, key, f"`{key}` has {len(values)} values for {count} inputs", params)
        return values

    def boolean(self, layer: CCLayer, key: str, default: bool, params: bool = False) -> bool:
        text = self.get(layer, key, params=params)
        if text is None:
            return default
        states = configparser.ConfigParser.BOOLEAN_STATES
        if text.lower() not in states:
            raise self.bad(layer, key, f"`{key}` must be a boolean (1, 0, true, false), got `{text}`", params)
        return states[text.lower()]

    def layers(self) -> list[CCLayer]:
        found: dict[str, CCLayer] = {}
        for name in self.cfg.sections():
            line = self.where.line(name)
            try:
                opts = {k: v for k, v in self.cfg.items(name)}
            except configparser.InterpolationError as err:
                raise NetError(f"in [{name}]: {err.message.splitlines()[0]}", self.path, line, 1) from None
            type_ = opts.get("type")
            origin = Origin(name, type_ or "?", self.path, line)
            layer = CCLayer(name, type_ or "", opts, line, origin=origin)
            if type_ is None:
                raise NetError(f"layer '{name}' has no `type`", self.path, line, 1)
            if type_ not in KEYS:
                raise origin.refuse(WHY_NOT.get(type_, f"cuda-convnet has no layer type `{type_}`"))
            for key in opts:
                if key not in KEYS[type_]:
                    raise self.bad(layer, key, f"layer '{name}' ({type_}): `{key}` is not a key of a cuda-convnet "
                                   f"`{type_}` layer; netdsl refuses what it does not know rather than drop it")
            if type_ != "data":
                inputs = [i.strip() for i in opts.get("inputs", "").split(",") if i.strip()]
                if not inputs:
                    raise origin.refuse("needs `inputs`")
                for i in inputs:
                    if i not in found:
                        raise self.bad(layer, "inputs", f"layer '{name}': input layer '{i}' is not defined above it")
                layer.inputs = inputs
                gpu = opts.get("gpu")
                if gpu is not None:
                    try:
                        layer.gpu = tuple(int(g) for g in gpu.split(","))
                    except ValueError:
                        raise self.bad(layer, "gpu", f"`gpu` must be integers, got `{gpu}`") from None
                else:
                    layer.gpu = found[inputs[0]].gpu
            found[name] = layer
        if self.pcfg is not None:
            for name in self.pcfg.sections():
                if name not in found:
                    raise NetError(f"[{name}] is not a layer of {Path(self.path).name}", self.params_path,
                                   self.pwhere.line(name), 1)
                layer = found[name]
                try:
                    layer.params = {k: v for k, v in self.pcfg.items(name)}
                except configparser.InterpolationError as err:
                    raise NetError(f"in [{name}]: {err.message.splitlines()[0]}", self.params_path,
                                   self.pwhere.line(name), 1) from None
                kind = "weighted" if layer.kind in WEIGHT_LAYER_PARSERS else layer.kind
                for key in layer.params:
                    if key not in PARAM_KEYS.get(kind, set()):
                        raise self.bad(layer, key, f"layer '{name}' ({layer.kind}): `{key}` is not a parameter of a "
                                       f"cuda-convnet `{layer.kind}` layer", params=True)
        if not found:
            raise NetError("no layers: the file has no [layer] sections", self.path, 1, 1)
        return list(found.values())

    # ------------------------------------------------------------------ groups

    def find_groups(self, layers: list[CCLayer]) -> None:
        """Model-parallel layer sets: stem+a, stem+b, ... of one type and settings, on distinct GPUs,
        neither reading the other."""
        by_name = {layer.name: layer for layer in layers}
        ancestors: dict[str, set[str]] = {}
        for layer in layers:
            seen = set(layer.inputs)
            for i in layer.inputs:
                seen |= ancestors[i]
            ancestors[layer.name] = seen
        sizes = set()
        for layer in layers:
            if not re.fullmatch(r".+a", layer.name) or layer.group is not None or layer.kind == "data":
                continue
            stem, members = layer.name[:-1], [layer]
            for letter in "bcdefgh":
                other = by_name.get(stem + letter)
                if other is None:
                    break
                members.append(other)
            if len(members) < 2:
                continue
            same = all(m.kind == layer.kind and {k: v for k, v in m.opts.items() if k not in ("inputs", "gpu")}
                       == {k: v for k, v in layer.opts.items() if k not in ("inputs", "gpu")} for m in members)
            gpus = [m.gpu for m in members]
            parallel = all(a.name not in ancestors[b.name] and b.name not in ancestors[a.name]
                           for a in members for b in members if a is not b)
            if not (same and parallel and len(set(gpus)) == len(gpus) and all(len(g) == 1 for g in gpus)):
                continue
            group = Group(stem, members)
            for m in members:
                m.group = group
            sizes.add(len(members))
        if len(sizes) > 1:
            raise NetError(f"model-parallel layer sets of {' and '.join(map(str, sorted(sizes)))} GPUs; netdsl's "
                           "[net] groups is one number", self.path, 1, 1)
        if sizes:
            self.groups = sizes.pop()

    # ------------------------------------------------------------------ conversion

    def convert(self) -> Imported:
        layers = self.layers()
        self._by_name = {layer.name: layer for layer in layers}
        self.find_groups(layers)
        data = [layer for layer in layers if layer.kind == "data"]
        images = [layer for layer in data if self.integer(layer, "dataidx", None) == 0]
        if len(images) != 1:
            raise NetError("one data layer with dataIdx=0 (the images) is what netdsl reads; the file has "
                           f"{len(images)}", self.path, data[0].line if data else 1, 1)
        image = images[0]
        if self.input_shape is None:
            raise image.origin.refuse("cuda-convnet's input size is its data provider's, on its command line; "
                                      "give --input CxHxW")
        c, h, w = self.input_shape
        if h != w:
            raise image.origin.refuse(f"--input {c}x{h}x{w} is not square; cuda-convnet's images are")
        if self.get(image, "start") not in (None, "0") or self.get(image, "end") is not None:
            raise image.origin.refuse("a data layer that takes part of the data vector (start, end)")
        name = self.names.make(image.name)
        section = self.out.layer(name, "data", image.origin)
        section.set("shape", f"{c}x{h}x{w}", "--input: cuda-convnet's data provider gives it")
        self.netdsl[image.name] = name
        image.origin.netdsl = image.origin.made = name
        self.origins.append(image.origin)
        self.previous = name
        labels = {layer.name for layer in data if layer is not image}
        for layer in data:
            if layer is not image:
                self.drop(layer, "the labels")
        if self.groups > 1:
            self.out.net.set("groups", self.groups, "the a/b layer sets of the model-parallel file")
        done: set[int] = set()
        for layer in layers:
            if layer.kind == "data" or id(layer) in done:
                continue
            if layer.group is not None:
                for m in layer.group.members:
                    done.add(id(m))
            if any(i in labels for i in layer.inputs) and not layer.kind.startswith("cost."):
                raise layer.origin.refuse("reads the labels; netdsl's layers read images only")
            self.one(layer, labels)
        self.place_outputs()
        self.recipe()
        self.header()
        return self.out.finish(self.out_path, self.origins)

    def drop(self, layer: CCLayer, why: str) -> None:
        layer.origin.note = why
        self.origins.append(layer.origin)
        self.dropped.append(f"{layer.name} ({layer.kind}): {why}")

    def read_inputs(self, layer: CCLayer) -> tuple[list[str], str, str]:
        """The netdsl inputs of a layer or of its group, its `connect`, and a note for the comment."""
        if layer.group is None:
            reads = layer.inputs
            groups_read = [self.layer_of(i).group for i in reads]
            if self.groups > 1 and any(g is not None for g in groups_read):
                # A single layer reading a set must read all of it, and only whole sets.
                names, i = [], 0
                while i < len(reads):
                    g = groups_read[i]
                    if g is None:
                        names.append(self.netdsl[reads[i]])
                        i += 1
                        continue
                    part = reads[i:i + len(g.members)]
                    if sorted(part) != sorted(m.name for m in g.members):
                        raise layer.origin.refuse(f"reads part of the model-parallel set {', '.join(m.name for m in g.members)}; "
                                                  "a netdsl layer reads a whole layer")
                    if part != [m.name for m in g.members] and layer.kind not in WEIGHT_LAYER_PARSERS:
                        raise layer.origin.refuse("reads a model-parallel set in another order than its GPUs'")
                    names.append(self.netdsl[g.members[0].name])
                    i += len(g.members)
                return names, "all", ""
            return [self.netdsl[i] for i in reads], "all", ""
        members = layer.group.members
        first = members[0].inputs
        if all(self.layer_of(i).group is None for i in first):
            if any(m.inputs != first for m in members):
                raise layer.origin.refuse("its model-parallel set reads different layers on each GPU")
            if layer.kind not in WEIGHT_LAYER_PARSERS and any(self.layer_of(i).kind != "data" for i in first):
                raise layer.origin.refuse("a weightless model-parallel set over one whole layer: each GPU would "
                                          "compute the same thing, which netdsl's groups do not")
            return [self.netdsl[i] for i in first], "all", ""
        own = all(len(m.inputs) == len(first) and all(
            self.layer_of(i).group is not None and self.layer_of(i).group.members.index(self.layer_of(i)) == k
            and self.layer_of(i).group is self.layer_of(first[j]).group
            for j, i in enumerate(m.inputs)) for k, m in enumerate(members))
        if own:
            sets = [self.layer_of(i).group for i in first]
            return [self.netdsl[g.members[0].name] for g in sets], "group", ""
        if layer.kind not in WEIGHT_LAYER_PARSERS:
            raise layer.origin.refuse("a weightless model-parallel set that reads other GPUs' layers")
        sets = []
        for m in members:
            groups_read = [self.layer_of(i).group for i in m.inputs]
            if any(g is None for g in groups_read):
                raise layer.origin.refuse("its set mixes whole layers and model-parallel sets in its inputs")
            names = sorted(set(id(g) for g in groups_read))
            sets.append(names)
            covered = sorted(i for i in m.inputs)
            want = sorted(x.name for g in {id(g): g for g in groups_read}.values() for x in g.members)
            if covered != want:
                raise layer.origin.refuse("a member of its set reads only part of another set; netdsl's "
                                          "`connect = all` reads every group")
        if any(s != sets[0] for s in sets):
            raise layer.origin.refuse("the members of its set read different layers")
        unique = list({id(self.layer_of(i).group): self.layer_of(i).group for i in members[0].inputs}.values())
        note = ""
        if any(m.inputs != members[0].inputs for m in members):
            note = ("its GPUs read the halves in different orders (" + "; ".join(
                f"{m.name}: {', '.join(m.inputs)}" for m in members) + "), which only relabels weights drawn alike")
        return [self.netdsl[g.members[0].name] for g in unique], "all", note

    def layer_of(self, name: str) -> CCLayer:
        return self._by_name[name]

    def one(self, layer: CCLayer, labels: set[str]) -> None:
        t = layer.kind
        if t.startswith("cost."):
            self.cost(layer, labels)
            return
        handler = {"conv": self.conv, "local": self.local, "fc": self.fc, "pool": self.pool,
                   "rnorm": self.norm, "cnorm": self.norm, "cmrnorm": self.norm, "neuron": self.neuron_layer,
                   "softmax": self.softmax, "eltsum": self.eltwise, "eltmax": self.eltwise,
                   "concat": self.concat, "pass": self.concat, "dropout": self.dropout,
                   "dropout2": self.dropout}[t]
        handler(layer)

    def section(self, layer: CCLayer, type_: str, comment: str = "") -> tuple[Section, str]:
        inputs, connect, note = self.read_inputs(layer)
        name = self.names.make(layer.group.stem if layer.group else layer.name)
        same = type_ == layer.kind
        section = self.out.layer(name, type_, layer.origin, comment or ("" if same else f"cuda-convnet {layer.kind}"))
        if layer.group is not None:
            section.comments.append(", ".join(f"{m.name} (gpu {m.gpu[0]})" for m in layer.group.members)
                                    + f": one layer over the {self.groups} groups")
        elif name != layer.name:
            section.comments.append(f"cuda-convnet's layer '{layer.name}'")
        if note:
            section.comments.append(note)
        if inputs != [self.previous] or len(inputs) > 1:
            section.set("input", ", ".join(inputs))
        if layer.kind in WEIGHT_LAYER_PARSERS and connect == "group":   # weightless ones act inside each group
            section.set("connect", "group", "each GPU's layer reads its own GPU's half")
        members = layer.group.members if layer.group else [layer]
        for m in members:
            self.netdsl[m.name] = name
            m.origin.netdsl = m.origin.made = name
            self.origins.append(m.origin)
        self.previous = name
        return section, connect

    def neuron_steps(self, layer: CCLayer, text: str) -> list[str]:
        """A cuda-convnet neuron (layer.py's neuron parsers) as netdsl neurons applied in turn."""
        m = re.fullmatch(r"\s*(\w+)\s*(?:\[([^\]]*)\])?\s*", text)
        if not m:
            raise self.bad(layer, "neuron", f"layer '{layer.name}': cannot read the neuron `{text}`")
        name, arguments = m.group(1), m.group(2)
        values = []
        if arguments is not None:
            try:
                values = [float(a) for a in arguments.split(",")]
            except ValueError:
                raise self.bad(layer, "neuron", f"layer '{layer.name}': the neuron `{text}` takes numbers") from None
            if not all(math.isfinite(v) for v in values):
                raise self.bad(layer, "neuron", f"layer '{layer.name}': the neuron `{text}` takes finite numbers")
        wants = {"ident": 0, "logistic": 0, "abs": 0, "relu": 0, "softrelu": 0, "square": 0, "tanh": 2,
                 "brelu": 1, "linear": 2, "nrelu": 0, "sqrt": 0, "log": 1, "drelu": 1, "abstanh": 2}
        if name not in wants or len(values) != wants[name] or (arguments is not None and not values):
            raise self.bad(layer, "neuron", f"layer '{layer.name}': `{text}` is not a cuda-convnet neuron")
        if name in NEURON_WHY_NOT:
            raise layer.origin.refuse(f"neuron {text}: {NEURON_WHY_NOT[name]}")
        simple = {"ident": "none", "logistic": "sigmoid", "abs": "abs", "relu": "relu", "softrelu": "softrelu",
                  "square": "square"}
        if name in simple:
            return [simple[name]]
        if name == "brelu":
            if values[0] <= 0:
                raise layer.origin.refuse(f"neuron {text}: brelu's bound must be above 0 in netdsl")
            return [call("brelu", values[0])]
        if name == "linear":
            return [call("linear", *values)]
        a, b = values     # tanh[a,b] = a * tanh(b x)
        steps = ([call("linear", b, 0)] if b != 1 else []) + ["tanh"] + ([call("linear", a, 0)] if a != 1 else [])
        return steps

    def neuron_after(self, layer: CCLayer, section: Section, own_key: bool) -> None:
        """The layer's `neuron=`: its own key where it has one and one netdsl neuron does; else
        cuda-convnet's detached `<name>_neuron` layer (and more, for tanh[a,b])."""
        text = self.get(layer, "neuron")
        if not text:
            return
        steps = self.neuron_steps(layer, text)
        if own_key and len(steps) == 1:
            section.set("neuron", steps[0])
            return
        base = f"{layer.group.stem if layer.group else layer.name}_neuron"
        for k, step in enumerate(steps):
            name = self.names.make(base if k == 0 else f"{base}_{k + 1}")
            extra = self.out.layer(name, "neuron", layer.origin, f"cuda-convnet's detached neuron of {section.name}")
            extra.set("neuron", step, f"{text}" if len(steps) > 1 else "")
            members = layer.group.members if layer.group else [layer]
            for m in members:
                self.netdsl[m.name] = name
                m.origin.netdsl = name
            self.previous = name

    def inputs_count(self, layer: CCLayer) -> int:
        return len(layer.inputs)

    def check_channels(self, section: Section, layer: CCLayer, channels: list[int], connect: str) -> None:
        """layer.py reads each input as `channels` maps: they must be the maps netdsl infers."""
        want = sum(channels)

        def exact(net_layer):
            got = net_layer.in_shape.c // (self.groups if connect == "group" else 1)
            if got != want:
                return (f"channels={','.join(map(str, channels))} but its input has {got} channels; "
                        "cuda-convnet would read the maps wrong")
            return None
        section.expect.append(exact)

    def weights_init(self, layer: CCLayer, section: Section, count: int) -> None:
        for key in ("initwfunc", "initbfunc", "initcfunc", "weightsource"):
            if self.get(layer, key):
                raise layer.origin.refuse(f"`{key}`: " + ("weights shared with another layer" if key == "weightsource"
                                                         else "an initialization function in Python, not in the file"))
        stds = self.reals(layer, "initw", 0.01, count)
        if len(set(stds)) > 1:
            raise layer.origin.refuse(f"initW {','.join(map(written, stds))} differs between its inputs; netdsl's "
                                      "layer has one init")
        if stds[0] <= 0:
            raise layer.origin.refuse(f"initW {written(stds[0])}: netdsl's normal(0, std) needs std > 0")
        section.set("init", call("normal", 0, stds[0]), "initW: the std of cuda-convnet's normal init")
        bias = self.real(layer, "initb", 0.0)
        if bias:
            section.set("bias", bias, "initB")
        self.recipe_layers.append((layer, section))

    def same_per_input(self, layer: CCLayer, key: str, values: list[int]) -> int:
        if len(set(values)) > 1:
            raise layer.origin.refuse(f"`{key}` {','.join(map(str, values))} differs between its inputs; netdsl "
                                      "reads several inputs as one concatenated map")
        return values[0]

    def conv_like(self, layer: CCLayer, type_: str) -> Section:
        n = self.inputs_count(layer)
        channels = self.integers(layer, "channels", None, n, low=1)
        filters = self.same_per_input(layer, "filters", self.integers(layer, "filters", None, n, low=1))
        size = self.same_per_input(layer, "filterSize", self.integers(layer, "filtersize", None, n, low=1))
        pad = self.same_per_input(layer, "padding", self.integers(layer, "padding", 0, n))
        stride = self.same_per_input(layer, "stride", self.integers(layer, "stride", 1, n, low=1))
        groups = self.same_per_input(layer, "groups", self.integers(layer, "groups", 1, n, low=1))
        if self.integers(layer, "randsparse", 0, n) != [0] * n or self.get(layer, "filterchannels"):
            raise layer.origin.refuse("random sparse connectivity (randSparse); netdsl's filters see every channel")
        if groups > 1 and n > 1:
            raise layer.origin.refuse("filter groups over several inputs; netdsl groups one input's channels")
        if groups > 1 and layer.kind == "local":
            raise layer.origin.refuse("a locally-connected layer with filter groups; netdsl's local has none")
        section, connect = self.section(layer, type_)
        members = len(layer.group.members) if layer.group else 1
        section.set("filters", filters * groups * members,
                    f"filters {filters}" + (f" x groups {groups}" if groups > 1 else "")
                    + (f" x {members} GPUs" if members > 1 else ""))
        section.set("size", size).set("stride", stride)
        if pad:
            section.set("pad", pad, "padding")
        section.set("round", "ceil", "cuda-convnet: 1 + ceil((2 padding + size - filterSize) / stride)")
        if groups > 1:
            section.set("channel_groups", groups, "cuda-convnet's groups")
        self.check_channels(section, layer, channels, connect)
        modules = self.integer(layer, "modulesx", 0)
        if modules:
            section.expect.append(lambda nl, m=modules: None if nl.out_shape.h == m else
                                  f"modulesX={m}, but its output is {nl.out_shape.h} wide")
        section.expect.append(lambda nl: self.covers(nl, pad, stride, size))
        self.weights_init(layer, section, n)
        self.neuron_after(layer, section, own_key=True)
        return section

    @staticmethod
    def covers(net_layer, pad: int, stride: int, size: int):
        """layer.py's check that the output map covers the whole input image."""
        h, out = net_layer.in_shape.h, net_layer.out_shape.h
        if -pad + stride * (out - 1) + size < h:
            return f"its {out}x{out} output with padding {pad}, stride {stride} does not cover the {h}x{h} input"
        return None

    def conv(self, layer: CCLayer) -> None:
        if not self.boolean(layer, "sharedbiases", True):
            raise layer.origin.refuse("sharedBiases=0: a bias per output position; netdsl's conv has one a filter")
        self.conv_like(layer, "conv")

    def local(self, layer: CCLayer) -> None:
        self.conv_like(layer, "local")

    def fc(self, layer: CCLayer) -> None:
        n = self.inputs_count(layer)
        outputs = self.integer(layer, "outputs", None, low=1)
        section, connect = self.section(layer, "fc")
        members = len(layer.group.members) if layer.group else 1
        section.set("outputs", outputs * members, f"outputs {outputs} x {members} GPUs" if members > 1 else "")
        self.weights_init(layer, section, n)
        self.neuron_after(layer, section, own_key=True)

    def pool(self, layer: CCLayer) -> None:
        kind = self.get(layer, "pool")
        if kind not in ("max", "avg"):
            raise layer.origin.refuse(f"pool={kind}: netdsl pools by max or avg" if kind else "needs `pool`")
        if kind == "avg" and self.boolean(layer, "sum", False):
            raise layer.origin.refuse("sum=1: an average pool that sums; netdsl's divides")
        channels = self.integer(layer, "channels", None, low=1)
        size = self.integer(layer, "sizex", None, low=1)
        stride = self.integer(layer, "stride", None, low=1)
        start = self.integer(layer, "start", 0, low=None)
        outputs = self.integer(layer, "outputsx", 0)
        if start > 0:
            raise layer.origin.refuse(f"start={start} skips the first rows; netdsl's windows start at the edge "
                                      "or in the padding")
        pad = -start
        if kind == "avg" and pad:
            raise layer.origin.refuse(f"an average pool with start={start}: cuda-convnet divides by the cells "
                                      "inside the image, netdsl's avgpool by the window's cells inside the padding")
        section, connect = self.section(layer, "maxpool" if kind == "max" else "avgpool", "")
        section.set("size", size, "sizeX").set("stride", stride)
        if pad:
            section.set("pad", pad, f"start={start}")
        section.set("round", "ceil", "cuda-convnet: ceil((size - start - sizeX) / stride) + 1")
        if kind == "avg":
            section.comments.append("cuda-convnet's average divides by the window's cells inside the image, "
                                    "as netdsl's does without padding")
        self.check_channels(section, layer, [channels], connect)

        def rule(net_layer):   # layer.py's PoolLayerParser
            extent = net_layer.in_shape.h
            want = outputs or math.ceil((extent - start - size) / stride) + 1
            if net_layer.out_shape.h != want:
                return (f"cuda-convnet pools the {extent}x{extent} map to {want}x{want}, netdsl to "
                        f"{net_layer.out_shape.h}x{net_layer.out_shape.w}")
            last = start + (want - 1) * stride
            if last >= extent:
                return f"its last window starts at {last}, past the {extent}-pixel map"
            return None
        section.expect.append(rule)
        self.neuron_after(layer, section, own_key=False)

    def norm(self, layer: CCLayer) -> None:
        t = layer.kind
        channels = self.integer(layer, "channels", None, low=1)
        size = self.integer(layer, "size", None, low=1)
        if self.pcfg is None:
            raise layer.origin.refuse("its scale and pow are in the layer parameter file; give LAYER_PARAMS.cfg")
        scale = self.real(layer, "scale", None, params=True)
        power = self.real(layer, "pow", None, params=True)
        k = self.real(layer, "mindiv", 1.0, params=True)
        if t == "cmrnorm" and self.boolean(layer, "blocked", False):
            raise layer.origin.refuse("blocked=1: windows of fixed channel blocks; netdsl's window is centred on "
                                      "each channel")
        if t == "cnorm":
            self.cnorm(layer, channels, size, k, power)
            return
        if size % 2 == 0:
            raise layer.origin.refuse(f"size={size} is even: cuda-convnet's window runs from -size/2 to size/2 - 1, "
                                      "netdsl's is centred (odd)")
        if t == "cmrnorm" and self.groups > 1 and layer.group is None and \
                any(self.layer_of(i).kind != "data" for i in layer.inputs):
            raise layer.origin.refuse("one cross-map norm over a layer that netdsl spreads over the groups: "
                                      "netdsl's window stays inside each group, cuda-convnet's would not")
        section, connect = self.section(layer, "lrn")
        section.set("size", size)
        if t == "rnorm":
            section.set("region", "within", "rnorm: each map on its own, over size x size pixels")
        section.set("k", k, "cuda-convnet2's minDiv" if "mindiv" in layer.params else "cuda-convnet adds 1")
        divisor = size if t == "cmrnorm" else size * size
        section.set("alpha", scale / divisor, f"scale {written(scale)} / {'size' if t == 'cmrnorm' else 'size^2'} {divisor}")
        section.set("beta", power, "pow")
        self.check_channels(section, layer, [channels], connect)
        self.neuron_after(layer, section, own_key=False)

    def cnorm(self, layer: CCLayer, channels: int, size: int, k: float, power: float) -> None:
        """Contrast normalization x (k + scale sum (x - mean)^2)^-pow, exact in netdsl only where the mean
        is x itself (size 1: the constant k^-pow) or the power is 0 (identity)."""
        if size != 1 and power != 0:
            raise layer.origin.refuse(f"contrast normalization over {size}x{size}: it multiplies x by a power of "
                                      "the local variance of x - mean, and netdsl has no product of two maps "
                                      "(exact only for size=1 or pow=0)")
        if k <= 0 and power != 0:
            raise layer.origin.refuse("minDiv 0 with size 1 divides by zero")
        section, connect = self.section(layer, "neuron", "cuda-convnet cnorm")
        factor = 1.0 if power == 0 else k ** -power
        section.set("neuron", "none" if factor == 1 else call("linear", factor, 0),
                    f"size {size}: x - mean is 0, so x is divided by minDiv^pow" if power else "pow=0")
        self.check_channels(section, layer, [channels], connect)
        self.neuron_after(layer, section, own_key=False)

    def neuron_layer(self, layer: CCLayer) -> None:
        text = self.get(layer, "neuron")
        if not text:
            raise layer.origin.refuse("needs `neuron`")
        steps = self.neuron_steps(layer, text)
        section, _ = self.section(layer, "neuron", "" if len(steps) == 1 else f"cuda-convnet neuron {text}")
        section.set("neuron", steps[0])
        for k, step in enumerate(steps[1:], 2):
            name = self.names.make(f"{section.name}_{k}")
            extra = self.out.layer(name, "neuron", layer.origin, f"the rest of {text}")
            extra.set("neuron", step)
            for m in (layer.group.members if layer.group else [layer]):
                self.netdsl[m.name] = name
                m.origin.netdsl = name
            self.previous = name

    def softmax(self, layer: CCLayer) -> None:
        if len(layer.inputs) != 1:
            raise layer.origin.refuse("a softmax of several inputs")
        section, _ = self.section(layer, "softmax")
        self.outputs.append((layer, section, 0.0))

    def eltwise(self, layer: CCLayer) -> None:
        if len(layer.inputs) < 2:
            raise layer.origin.refuse("an elementwise layer of one input")
        section, _ = self.section(layer, "sum" if layer.kind == "eltsum" else "max")
        section.set("input", ", ".join(self.netdsl[i] for i in layer.inputs)
                    if layer.group is None else section.get("input"))
        if layer.kind == "eltsum":
            coeffs = self.reals(layer, "coeffs", 1.0, len(layer.inputs), params=True)
            if any(c != 1 for c in coeffs):
                section.set("coeffs", tuple(coeffs))
        self.neuron_after(layer, section, own_key=True)

    def concat(self, layer: CCLayer) -> None:
        section, _ = self.section(layer, "neuron")
        section.set("neuron", "none", "the inputs concatenated, as `input = a, b` does")
        self.neuron_after(layer, section, own_key=False)

    def dropout(self, layer: CCLayer) -> None:
        keep = self.real(layer, "keep", 0.5, params=True)
        enable = self.boolean(layer, "enable", True, params=True)
        if not 0 < keep <= 1:
            raise layer.origin.refuse(f"keep={written(keep)}: netdsl's p = 1 - keep must be in 0..1 (1 excluded)")
        section, _ = self.section(layer, "dropout")
        section.set("p", 1 - keep if enable else 0, f"1 - keep {written(keep)}" if enable else "enable=false")
        section.set("rescale", "train" if layer.kind == "dropout" else "test",
                    "dropout: kept units / keep in training" if layer.kind == "dropout"
                    else "dropout2: every unit x keep at test")
        self.neuron_after(layer, section, own_key=False)

    def cost(self, layer: CCLayer, labels: set[str]) -> None:
        if layer.group is not None:
            raise layer.origin.refuse("a model-parallel set of costs")
        if len(layer.inputs) != 2 or layer.inputs[0] not in labels:
            raise layer.origin.refuse("a cost reads the labels, then a softmax")
        probs = self.layer_of(layer.inputs[1])
        if probs.kind != "softmax":
            raise layer.origin.refuse(f"its second input '{probs.name}' is not a softmax")
        if self.get(layer, "children"):
            raise layer.origin.refuse("an aggregated cost (children)")
        coeff = self.real(layer, "coeff", 1.0, params=True) if self.pcfg is not None else 1.0
        for i, (softmax, section, _) in enumerate(self.outputs):
            if softmax is probs:
                self.outputs[i] = (softmax, section, coeff)
        layer.origin.netdsl = self.netdsl[probs.name]
        layer.origin.note = "the loss of the softmax output"
        self.origins.append(layer.origin)

    # ------------------------------------------------------------------ outputs, recipe, header

    def place_outputs(self) -> None:
        if not self.outputs:
            raise self.out.layers[-1].origin.refuse("the file has no softmax; a netdsl network ends in its output")
        trained = [(layer, section, c) for layer, section, c in self.outputs if c]
        if not trained:
            trained = self.outputs[-1:]
            trained = [(trained[0][0], trained[0][1], 1.0)]
        if len(self.outputs) != len(trained):
            extra = next(layer for layer, _, c in self.outputs if not c)
            raise extra.origin.refuse("a softmax that no cost reads; netdsl's outputs are trained")
        best = max(c for _, _, c in trained)
        mains = [t for t in trained if t[2] == best]
        if len(mains) > 1:
            raise mains[1][0].origin.refuse("two costs of the same coeff; netdsl has one main output")
        main = mains[0]
        if best != 1:
            raise main[0].origin.refuse(f"its cost's coeff {written(best)} scales every gradient; netdsl's main "
                                        "loss has weight 1 (fold it into epsW)")
        for layer, section, c in trained:
            if section is not main[1]:
                section.set("loss_weight", c, "an auxiliary head: its cost's coeff")
        self.out.layers.remove(main[1])
        self.out.layers.append(main[1])

    def recipe(self) -> None:
        if self.network_only or self.pcfg is None:
            why = ("--network-only" if self.network_only else "no layer parameter file")
            self.out.train_comments = [f"{why}: the recipe is netdsl's defaults."]
            return
        rates, momenta, decays = [], set(), []
        for layer, section in self.recipe_layers:
            n = len(layer.inputs)
            if not layer.params:
                raise layer.origin.refuse(f"no section in {Path(self.params_path).name}: cuda-convnet requires its "
                                          "epsW, epsB, momW, momB")
            for key in ("wball", "supereps", "supermom", "wcnormmax", "wcnormmin"):
                if any(v != 0 for v in self.reals(layer, key, 0.0, n if key in ("wball", "wcnormmax", "wcnormmin") else 1,
                                                   params=True)):
                    raise self.bad(layer, key, f"layer '{layer.name}': `{key}` constrains or changes the update; "
                                   "netdsl's is plain SGD with momentum", params=True)
            if self.integer_param(layer, "updateperiod") > 1:
                raise self.bad(layer, "updateperiod", f"layer '{layer.name}': updatePeriod > 1 updates every few "
                               "batches; netdsl updates every batch", params=True)
            eps_w = self.rates(layer, "epsw", n)
            eps_b = self.rates(layer, "epsb", 1)[0]
            if len(set(eps_w)) > 1:
                raise self.bad(layer, "epsw", f"layer '{layer.name}': epsW differs between its inputs; netdsl's "
                               "layer has one rate", params=True)
            mom_w = self.reals(layer, "momw", None, n, params=True)
            mom_b = self.real(layer, "momb", None, params=True)
            wc = self.reals(layer, "wc", 0.0, n, params=True)
            if len(set(wc)) > 1:
                raise self.bad(layer, "wc", f"layer '{layer.name}': wc differs between its inputs", params=True)
            members = layer.group.members if layer.group else [layer]
            for m in members[1:]:
                if m.params != layer.params:
                    raise NetError(f"the model-parallel layers {layer.name} and {m.name} have different parameters; "
                                   "netdsl's one layer has one recipe", self.params_path,
                                   self.pwhere.line(m.name), 1)
            rates.append((layer, section, eps_w[0], eps_b))
            momenta.update(mom_w + [mom_b])
            decays.append((layer, section, wc[0]))
        if not rates:
            return
        if len(momenta) > 1:
            layer = rates[0][0]
            raise NetError("momW and momB differ between layers (" + ", ".join(map(written, sorted(momenta)))
                           + "); netdsl has one momentum", self.params_path, self.pwhere.line(layer.name, "momw"), 1)
        momentum = momenta.pop()
        if not 0 <= momentum < 1:
            raise NetError(f"momentum {written(momentum)} is not in 0..1 (1 excluded)", self.params_path, 1, 1)
        lr = _most_common([w for _, _, w, _ in rates if w > 0] or [b for _, _, _, b in rates if b > 0])
        if not lr:
            raise NetError("every epsW and epsB is 0: nothing learns", self.params_path, 1, 1)
        decay = _most_common([wc for _, _, wc in decays if wc > 0]) or 0.0
        for (layer, section, w, b), (_, _, wc) in zip(rates, decays):
            lr_mult = (w / lr, b / lr)
            if lr_mult != (1.0, 1.0):
                section.set("lr_mult", lr_mult, f"epsW {written(w)}, epsB {written(b)}")
            decay_mult = (wc / decay if decay else 1.0, 0.0)
            if decay_mult != (1.0, 0.0):
                section.set("decay_mult", decay_mult, f"wc {written(wc)}; cuda-convnet does not decay biases")
        t = self.out.train
        t.set("optimizer", "sgd", "cuda-convnet: v = momW v + epsW grad - wc epsW w")
        t.set("lr", lr, "the most common epsW; each layer's epsW and epsB are lr x its lr_mult")
        t.set("momentum", momentum, "momW and momB")
        t.set("weight_decay", decay, "the most common wc; each layer's is weight_decay x its decay_mult")
        t.set("schedule", "none", "cuda-convnet keeps each rate until you change it")
        self.out.train_comments = ["From the layer parameter file. Epochs, the batch (cuda-convnet's 128 unless "
                                   "--mini says otherwise) and the data", "augmentation are cuda-convnet's command "
                                   "line and data provider, not these files: netdsl's defaults stand."]

    def integer_param(self, layer: CCLayer, key: str) -> int:
        text = layer.params.get(key)
        if text is None:
            return 0
        try:
            return int(text)
        except ValueError:
            raise self.bad(layer, key, f"`{key}` must be an integer, got `{text}`", params=True) from None

    def rates(self, layer: CCLayer, key: str, count: int) -> list[float]:
        """epsW/epsB: numbers, or cuda-convnet2's const[base=x]; its other schedules are refused."""
        text = layer.params.get(key)
        if text is None:
            raise layer.origin.refuse(f"needs `{key}` in {Path(self.params_path).name}")
        parts = [p.strip() for p in text.split(",")] if not re.search(r"\[[^\]]*,", text) else [text]
        values = []
        for part in parts:
            m = re.fullmatch(r"const\s*\[\s*base\s*=\s*([^\];]+)\s*\]", part, flags=re.IGNORECASE)
            if m:
                part = m.group(1)
            elif "[" in part:
                raise self.bad(layer, key, f"layer '{layer.name}': {key}={text} is a learning-rate schedule over the "
                               "run's --epochs; netdsl has one schedule for every layer and none of this form "
                               "(import with --network-only to take the layers alone)", params=True)
            try:
                value = float(part)
            except ValueError:
                raise self.bad(layer, key, f"`{key}` must be a number, got `{part}`", params=True) from None
            if not math.isfinite(value) or value < 0:
                raise self.bad(layer, key, f"`{key}` must be a number of at least 0, got `{part}`", params=True)
            values.append(value)
        if len(values) == 1:
            values *= count
        if len(values) != count:
            raise self.bad(layer, key, f"`{key}` has {len(values)} values for {count} inputs", params=True)
        return values

    def header(self) -> None:
        files = Path(self.path).name + (f" and {Path(self.params_path).name}" if self.params_path else "")
        lines = [f"Imported from cuda-convnet's {files} by `netdsl import cuda-convnet`.",
                 "Each layer keeps its name and order; `type` says cuda-convnet's type where it differs. Conv,",
                 "local and pool sizes round up; norms' alpha is cuda-convnet's scale divided by its window."]
        if self.groups > 1:
            lines.append(f"The a/b layer sets of the model-parallel file are single layers over [net] groups = {self.groups}.")
        replicas = sorted({m.name for m in self._by_name.values() if len(m.gpu) > 1})
        if replicas:
            lines.append("gpu= lists (data-parallel replicas, which do not change the network): "
                         + ", ".join(replicas[:6]) + (", ..." if len(replicas) > 6 else ""))
        lines.extend(self.notes)
        if self.dropped:
            lines.append("Dropped:")
            lines.extend(f"  {d}" for d in self.dropped)
        self.out.header = lines


def _most_common(values: list[float]) -> float | None:
    """The value most layers share (the first of equals), so that most multipliers are 1."""
    if not values:
        return None
    return max(dict.fromkeys(values), key=values.count)


def convert_cuda_convnet(layers: str | Path, params: str | Path | None = None, input_shape=None,
                         out_path: str = "imported.net", network_only: bool = False,
                         data: bytes | None = None, params_data: bytes | None = None) -> Imported:
    """cuda-convnet layer (and parameter) files as a checked `.net`; NetError or Refusal if not exact."""
    layers = str(layers)
    data = _read(layers) if data is None else data
    pair = None
    if params is not None:
        pair = (str(params), _read(params) if params_data is None else params_data)
    with one_line_errors():
        return CudaConvnetImporter(layers, data, pair, input_shape, out_path, network_only).convert()
