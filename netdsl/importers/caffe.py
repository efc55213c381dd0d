"""Caffe nets and solvers (.prototxt) as `.net` files: the same network, or a refusal.

    imported = convert_caffe("train_val.prototxt", solver="solver.prototxt", train_images=50000)
    imported.text          # the .net file
    imported.origins       # each Caffe layer: the netdsl layer holding its output, or why it went

Reads the V2 `layer { type: "Convolution" }` syntax and the older V1 `layers { type: CONVOLUTION }`
with its `blobs_lr` and `weight_decay`, deploy files (`input_shape`, `input_dim`, an `Input`
layer) and train_val files (the TRAIN phase's layers; TEST-only ones, accuracy and the label are
dropped, and said so in the output). The text is read by prototxt.py's Lark grammar.

What differs between Caffe and netdsl is converted, never approximated (Caffe's sources:
src/caffe/layers/*.cpp, include/caffe/filler.hpp, src/caffe/proto/caffe.proto):
- LRN: Caffe divides alpha by local_size (across channels) or by local_size^2 (within a
  channel, where k is always 1); netdsl's alpha is the undivided constant. Caffe's k defaults to 1.
- Pooling rounds the output size up (`round = ceil`), and drops a last window that would start
  in the padding; netdsl's ceil does too, and each pool's size is held against Caffe's formula.
- Dropout rescales in training (`rescale = train`); scale_train: false is `rescale = test`.
- decay_mult defaults to 1 for biases too; netdsl's bias default is 0, so it is always written.
- Fillers: gaussian(mean, std) is normal(mean, std) (std 1 unless written), uniform(min, max),
  xavier and msra with their variance_norm; a constant bias filler is `bias`. Caffe's default
  weight filler is constant 0, which netdsl has no init for: a file without one (a deploy file,
  whose weights come from a .caffemodel) gets netdsl's default init, and the output says so.
- BatchNorm followed by Scale (bias_term: true) is `batchnorm` with momentum 1 -
  moving_average_fraction and eps; BatchNorm alone is `affine = no`.
Anything else (a layer type netdsl lacks, a dilation, a non-square kernel, a filler netdsl has
no form for, a solver policy that changes lr within an epoch) is refused with one line naming
the layer: `train_val.prototxt:112: error: layer 'res2a' (PReLU): ...`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import files
from ..errors import NetError
from .netwriter import Imported, Names, NetText, Origin, Section, call, one_line_errors, written
from .prototxt import Message, Reader, Scalar, parse_prototxt

# V1's enum types, by V2's names.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
V1_NUMBERS = {0: "NONE", 35: "ABSVAL", 1: "ACCURACY", 30: "ARGMAX", 2: "BNLL", 3: "CONCAT", 37: "CONTRASTIVE_LOSS",
              4: "CONVOLUTION", 5: "DATA", 39: "DECONVOLUTION", 6: "DROPOUT", 32: "DUMMY_DATA", 7: "EUCLIDEAN_LOSS",
              25: "ELTWISE", 38: "EXP", 8: "FLATTEN", 9: "HDF5_DATA", 10: "HDF5_OUTPUT", 28: "HINGE_LOSS",
              11: "IM2COL", 12: "IMAGE_DATA", 13: "INFOGAIN_LOSS", 14: "INNER_PRODUCT", 15: "LRN",
              29: "MEMORY_DATA", 16: "MULTINOMIAL_LOGISTIC_LOSS", 34: "MVN", 17: "POOLING", 26: "POWER",
              18: "RELU", 19: "SIGMOID", 27: "SIGMOID_CROSS_ENTROPY_LOSS", 36: "SILENCE", 20: "SOFTMAX",
              21: "SOFTMAX_LOSS", 22: "SPLIT", 33: "SLICE", 23: "TANH", 24: "WINDOW_DATA", 31: "THRESHOLD"}

DATA_TYPES = ("Data", "ImageData", "Input", "MemoryData", "DummyData", "HDF5Data")
LOSS_OUTPUTS = {"SoftmaxWithLoss": "softmax", "SigmoidCrossEntropyLoss": "sigmoid"}
# Layer fields every type may have; a type's own *_param is read by its converter.
LAYER_FIELDS = {"name", "type", "bottom", "top", "phase", "loss_weight", "param", "include", "exclude",
                "propagate_down", "transform_param", "loss_param", "blobs_lr", "weight_decay",
                "blob_share_mode", "data_param", "image_data_param", "input_param", "memory_data_param",
                "dummy_data_param", "hdf5_data_param", "window_data_param"}
NEURON_TYPES = ("ReLU", "Sigmoid", "TanH", "AbsVal", "BNLL", "ELU", "Power", "Swish", "Clip")
WHY_NOT = {
    "PReLU": "its negative slope is learnt; netdsl's `leaky(a)` has a fixed one",
    "Deconvolution": "netdsl has no transposed convolution",
    "Flatten": "netdsl has no reshaping layer (an fc flattens its input itself)",
    "Reshape": "netdsl has no reshaping layer",
    "Slice": "netdsl has no layer that splits channels",
    "Scale": "netdsl scales only inside `batchnorm` (a Scale right after a BatchNorm)",
    "Bias": "netdsl adds a bias only inside a weighted layer or a batchnorm",
    "Exp": "netdsl has no exponential neuron",
    "Log": "netdsl has no logarithm neuron",
    "Threshold": "netdsl has no step neuron",
    "MVN": "netdsl has no mean-variance normalization",
    "ArgMax": "netdsl has no argmax layer",
    "Python": "a Python layer's code is not in the file",
    "EuclideanLoss": "netdsl trains classifiers: a softmax or sigmoid output",
    "WindowData": "netdsl reads image folders, not detection windows",
}


@dataclass
class CaffeLayer:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    msg: Message
    reader: Reader
    line: int
    params: list[tuple[float, float]] = field(default_factory=list)   # (lr_mult, decay_mult) a blob
    loss_weight: float | None = None
    origin: Origin | None = None


def _read(path: str | Path) -> bytes:
    return files.read_input(path, "a .prototxt file")


class CaffeImporter:
    def __init__(self, path: str, data: bytes, input_shape=None, solver: tuple[str, bytes] | None = None,
                 train_images: int | None = None, batch: int | None = None, out_path: str = "imported.net"):
        self.path = path
        self.root = parse_prototxt(data, path)
        self.input_shape = input_shape
        self.solver = solver
        self.train_images = train_images
        self.batch_flag = batch
        self.out_path = out_path
        self.names = Names()
        self.out = NetText([])
        self.origins: list[Origin] = []
        self.blobs: dict[str, str] = {}        # Caffe blob -> the netdsl layer whose output it is
        self.label_blobs: set[str] = set()
        self.notes: list[str] = []             # the header's account of what was converted
        self.dropped: list[str] = []
        self.data_layer: CaffeLayer | None = None
        self.data_section: Section | None = None
        self.previous: str | None = None       # the netdsl layer last written
        self.outputs: list[tuple[CaffeLayer, Section]] = []
        self.unfilled: list[str] = []          # weighted layers without a weight filler
        self.batchnorms = 0
        self.crop_in_data = False

    # ------------------------------------------------------------------ reading the file

    def fail(self, where, text: str):
        raise NetError(text, self.path, getattr(where, "line", 1) or 1, getattr(where, "col", 1) or 1)

    def layers(self) -> tuple[list[CaffeLayer], str]:
        top = Reader(self.root, self.path)
        top.only({"name", "input", "input_shape", "input_dim", "force_backward", "state", "debug_info",
                  "layer", "layers"}, "the net")
        v2, v1 = self.root.field_list("layer"), self.root.field_list("layers")
        if v2 and v1:
            self.fail(v1[0], "the file mixes V2 `layer {}` and V1 `layers {}` sections; Caffe reads one kind")
        found = []
        for f in v2 or v1:
            if not isinstance(f.value, Message):
                self.fail(f, f"`{f.name}` is a message: write `{f.name} {{ ... }}`")
            found.append(self._layer(f, v1=bool(v1)))
        if not found:
            self.fail(self.root, "no layers: the file has no `layer { ... }` (or V1 `layers { ... }`) sections")
        return found, "V1 `layers {}` with enum types" if v1 else "V2 `layer {}`"

    def _layer(self, f, v1: bool) -> CaffeLayer:
        msg, r = f.value, Reader(f.value, self.path)
        if msg.has("layer"):
            self.fail(msg, "this is Caffe's V0 format (a `layer` inside `layers`), which Caffe itself "
                           "upgrades with upgrade_net_proto_text; upgrade it first")
        name = r.string("name", None)
        if name is None:
            self.fail(f, "a layer without `name`")
        if v1:
            type_ = r.enum("type", tuple(V1_TYPES) + ("NONE",), "NONE", V1_NUMBERS)
            if type_ == "NONE":
                self.fail(f, f"layer '{name}' has no `type`")
            type_ = V1_TYPES[type_]
        else:
            type_ = r.string("type", None)
            if type_ is None:
                self.fail(f, f"layer '{name}' has no `type`")
        layer = CaffeLayer(name, type_, [b for b, _ in r.strings("bottom")], [t for t, _ in r.strings("top")],
                           msg, r, f.line)
        layer.origin = Origin(name, type_, self.path, f.line)
        lrs = [x for x, _ in r.floats("blobs_lr")]
        decays = [x for x, _ in r.floats("weight_decay")]
        if v1 and (lrs or decays):
            layer.params = [(lrs[i] if i < len(lrs) else 1.0, decays[i] if i < len(decays) else 1.0)
                            for i in range(max(len(lrs), len(decays)))]
        if v1 and r.strings("param"):
            raise layer.origin.refuse("its weights are shared with another layer (`param` names); "
                                      "netdsl layers own their weights")
        if not v1:
            for spec in r.messages("param"):
                pr = Reader(spec, self.path)
                pr.only({"name", "lr_mult", "decay_mult", "share_mode"}, "a `param` spec")
                if pr.string("name", ""):
                    raise layer.origin.refuse("its weights are shared with another layer (`param { name }`); "
                                              "netdsl layers own their weights")
                layer.params.append((pr.real("lr_mult", 1.0), pr.real("decay_mult", 1.0)))
        weights = r.floats("loss_weight")
        if len(weights) > 1:
            raise layer.origin.refuse("one `loss_weight` a top is more than netdsl's outputs take")
        layer.loss_weight = weights[0][0] if weights else None
        for found in msg.field_list("propagate_down"):
            if isinstance(found.value, Scalar) and found.value.text in ("false", "False", "0", "f"):
                raise layer.origin.refuse("`propagate_down: false` stops the gradient at a bottom; "
                                          "netdsl trains every layer below")
        if msg.has("blobs"):
            raise layer.origin.refuse("it holds weights in the file (`blobs`); netdsl imports the network, "
                                      "and its weights come from training or a checkpoint")
        return layer

    def in_train(self, layer: CaffeLayer) -> bool:
        """Whether the layer is part of the TRAIN net (a deploy file's layers all are)."""
        r = layer.reader
        phase = r.enum("phase", ("TRAIN", "TEST"), "TRAIN", {0: "TRAIN", 1: "TEST"})

        def matches(rule: Message) -> bool:
            rr = Reader(rule, self.path)
            rr.only({"phase"}, "an include or exclude rule (netdsl reads phases only)")
            return rr.enum("phase", ("TRAIN", "TEST"), "TRAIN", {0: "TRAIN", 1: "TEST"}) == "TRAIN"
        include, exclude = r.messages("include"), r.messages("exclude")
        if include and exclude:
            raise layer.origin.refuse("both `include` and `exclude`, which Caffe refuses")
        if include:
            return any(matches(rule) for rule in include)
        if exclude:
            return not any(matches(rule) for rule in exclude)
        return phase == "TRAIN"

    # ------------------------------------------------------------------ the conversion

    def convert(self) -> Imported:
        layers, syntax = self.layers()
        net_name = Reader(self.root, self.path).string("name", None)
        train = [layer for layer in layers if self.in_train(layer)]
        for layer in layers:
            if layer not in train:
                self.drop(layer, "TEST phase only")
        self.is_training_file = any(layer.msg.has("include") or layer.msg.has("exclude") for layer in layers) \
            or any(layer.type in LOSS_OUTPUTS or layer.type in ("Data", "ImageData", "HDF5Data") for layer in train)
        self.start_input(train)
        consumers = self.consumers(train)
        skip: set[int] = set()
        for i, layer in enumerate(train):
            if i in skip:
                continue
            if layer is self.data_layer:
                continue
            if layer.type == "BatchNorm":
                scale = self.scale_after(train, i, consumers)
                if scale is not None:
                    skip.add(train.index(scale))
                self.batchnorm(layer, scale)
                continue
            self.one(layer)
        self.place_outputs()
        self.recipe()
        self.header(net_name, syntax)
        if net_name:
            self.out.net.set("name", Names().make(net_name), f"Caffe's name \"{net_name}\"")
        imported = self.out.finish(self.out_path, self.origins)
        return imported

    def consumers(self, layers: list[CaffeLayer]) -> dict[str, list[CaffeLayer]]:
        readers: dict[str, list[CaffeLayer]] = {}
        for layer in layers:
            for b in layer.bottoms:
                readers.setdefault(b, []).append(layer)
        return readers

    def drop(self, layer: CaffeLayer, why: str) -> None:
        layer.origin.note = why
        self.origins.append(layer.origin)
        self.dropped.append(f"{layer.name} ({layer.type}): {why}")

    def inputs_of(self, layer: CaffeLayer, count: int | None = 1) -> list[str]:
        if count is not None and len(layer.bottoms) != count:
            raise layer.origin.refuse(f"has {len(layer.bottoms)} bottoms; a {layer.type} takes {count}")
        if not layer.bottoms:
            raise layer.origin.refuse("has no bottom")
        names = []
        for b in layer.bottoms:
            if b in self.label_blobs:
                raise layer.origin.refuse(f"reads the labels (`{b}`); netdsl's layers read images only")
            if b not in self.blobs:
                raise layer.origin.refuse(f"reads `{b}`, which no layer above it produces")
            names.append(self.blobs[b])
        return names

    def section(self, layer: CaffeLayer, type_: str, inputs: list[str], tops: list[str] | None = None) -> Section:
        name = self.names.make(layer.name)
        same = layer.type.lower() == type_
        section = self.out.layer(name, type_, layer.origin, "" if same else f"Caffe {layer.type}")
        if name != layer.name:
            section.comments.append(f"Caffe's layer '{layer.name}'")
        if inputs and inputs != [self.previous]:
            section.set("input", ", ".join(inputs))
        for top in (layer.tops if tops is None else tops):
            self.blobs[top] = name
        layer.origin.netdsl = layer.origin.made = name
        self.origins.append(layer.origin)
        self.previous = name
        return section

    def one(self, layer: CaffeLayer) -> None:
        t = layer.type
        handler = {
            "Convolution": self.convolution, "InnerProduct": self.inner_product, "Pooling": self.pooling,
            "LRN": self.lrn, "Dropout": self.dropout, "Concat": self.concat, "Eltwise": self.eltwise,
            "Softmax": self.softmax, "SoftmaxWithLoss": self.loss, "SigmoidCrossEntropyLoss": self.loss,
            "Split": self.split, "Accuracy": self.accuracy, "Silence": self.silence,
        }.get(t)
        if t in NEURON_TYPES:
            handler = self.neuron
        if t in DATA_TYPES:
            raise layer.origin.refuse("a second data layer in the TRAIN net; netdsl networks read one input")
        if handler is None:
            why = WHY_NOT.get(t, f"netdsl has no layer like Caffe's {t}")
            if t.endswith("Loss"):
                why = WHY_NOT.get(t, f"netdsl trains with a softmax or sigmoid output's cross-entropy, not {t}")
            raise layer.origin.refuse(why)
        if len(layer.tops) != 1 and t not in ("Split", "Accuracy", "Silence"):
            if not (t in LOSS_OUTPUTS and len(layer.tops) <= 1):
                raise layer.origin.refuse(f"has {len(layer.tops)} tops; netdsl layers have one output")
        handler(layer)

    def param_spec(self, layer: CaffeLayer, blobs: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """(lr_mult W, B), (decay_mult W, B), Caffe's defaults (1, 1) where a param is not written."""
        specs = list(layer.params)
        if len(specs) > blobs:
            raise layer.origin.refuse(f"has {len(specs)} `param` specs for its {blobs} weight blob(s)")
        specs += [(1.0, 1.0)] * (blobs - len(specs))
        w = specs[0]
        b = specs[1] if blobs > 1 else (1.0, 1.0)
        return (w[0], b[0]), (w[1], b[1])

    def multipliers(self, section: Section, layer: CaffeLayer, has_bias: bool) -> None:
        lr, decay = self.param_spec(layer, 2 if has_bias else 1)
        if lr != (1.0, 1.0):
            section.set("lr_mult", lr)
        section.set("decay_mult", decay, "" if decay != (1.0, 1.0) else "Caffe decays biases too")

    # ------------------------------------------------------------------ input

    def start_input(self, layers: list[CaffeLayer]) -> None:
        top = Reader(self.root, self.path)
        inputs = [name for name, _ in top.strings("input")]
        data_layers = [layer for layer in layers if layer.type in DATA_TYPES]
        shape, where, name, channels_known = None, None, None, True
        transform = None
        if inputs:
            if data_layers:
                raise data_layers[0].origin.refuse("the net has both `input:` and a data layer")
            if len(inputs) > 1:
                self.fail(top.where("input"), f"{len(inputs)} inputs ({', '.join(inputs)}); netdsl networks read one image")
            name, where = inputs[0], top.where("input")
            shapes = top.messages("input_shape")
            dims = [d for d, _ in top.integers("input_dim")]
            if shapes:
                dims = [d for d, _ in Reader(shapes[0], self.path).integers("dim")]
            if dims:
                if len(dims) != 4:
                    self.fail(where, f"the input has {len(dims)} dimensions; netdsl reads N x C x H x W images")
                shape = tuple(dims[1:])
            origin = Origin(name, "input", self.path, where.line)
        else:
            if not data_layers:
                self.fail(self.root, "the net has no input: no `input:` field and no data layer")
            if len(data_layers) > 1:
                raise data_layers[1].origin.refuse("a second data layer in the TRAIN net; netdsl networks read one input")
            layer = self.data_layer = data_layers[0]
            origin = layer.origin
            name = layer.name
            shape, channels_known, transform = self.data_shape(layer)
            if len(layer.tops) > 2 or not layer.tops:
                raise layer.origin.refuse(f"has {len(layer.tops)} tops; netdsl reads images and their labels")
            self.label_blobs.update(layer.tops[1:])
        given = self.input_shape
        if given is not None and shape is not None:
            c, h, w = shape
            if (h, w) != given[1:] or (channels_known and c != given[0]):
                raise origin.refuse(f"the file gives the input {'x'.join(map(str, shape)) if channels_known else f'?x{h}x{w}'}, "
                                    f"but --input says {'x'.join(map(str, given))}")
            shape = given
        elif given is not None:
            shape = given
        elif shape is None or not channels_known:
            what = f"its {shape[1]}x{shape[2]} crop, not its channels" if shape else "no input size"
            raise origin.refuse(f"the file gives {what} (an LMDB or HDF5 source); give --input CxHxW")
        if min(shape) < 1:
            raise origin.refuse(f"the input shape {'x'.join(map(str, shape))} has an empty side")
        section_name = self.names.make(name)
        section = self.out.layer(section_name, "data", origin, "" if not self.data_layer else f"Caffe {origin.type}")
        section.set("shape", "x".join(map(str, shape)))
        origin.netdsl = origin.made = section_name
        self.origins.append(origin)
        self.data_section = section
        self.blobs[self.data_layer.tops[0] if self.data_layer else name] = section_name
        self.previous = section_name
        if transform is not None:
            self.transform(transform)

    def data_shape(self, layer: CaffeLayer):
        """(C, H, W) as far as the layer gives it, whether C is known, and its transform_param."""
        r = layer.reader
        transform = r.message_of("transform_param")
        crop = None
        if transform is not None:
            tr = Reader(transform, self.path)
            tr.only({"scale", "mirror", "crop_size", "mean_file", "mean_value", "force_color", "force_gray"},
                    "transform_param")
            crop = tr.integer("crop_size", 0) or None
        t = layer.type
        if t == "Input":
            p = r.message_of("input_param")
            shapes = Reader(p, self.path).messages("shape") if p is not None else []
            if not shapes:
                raise layer.origin.refuse("an Input layer without `input_param { shape { dim: ... } }`")
            dims = [d for d, _ in Reader(shapes[0], self.path).integers("dim")]
            if len(dims) != 4:
                raise layer.origin.refuse(f"the input has {len(dims)} dimensions; netdsl reads N x C x H x W images")
            return tuple(dims[1:]), True, transform
        if t == "MemoryData":
            p = Reader(r.message_of("memory_data_param") or Message((), layer.line, 1), self.path)
            p.only({"batch_size", "channels", "height", "width"}, "memory_data_param")
            dims = (p.integer("channels", 0), p.integer("height", 0), p.integer("width", 0))
            if crop:
                dims = (dims[0], crop, crop)
            return dims, True, transform
        if t == "DummyData":
            p = r.message_of("dummy_data_param")
            if p is None:
                raise layer.origin.refuse("a DummyData layer without dummy_data_param")
            pr = Reader(p, self.path)
            shapes = pr.messages("shape")
            if shapes:
                dims = [d for d, _ in Reader(shapes[0], self.path).integers("dim")]
                if len(dims) != 4:
                    raise layer.origin.refuse(f"the input has {len(dims)} dimensions; netdsl reads N x C x H x W images")
                return tuple(dims[1:]), True, transform
            c, h, w = (pr.integers(k) for k in ("channels", "height", "width"))
            if not (c and h and w):
                raise layer.origin.refuse("dummy_data_param gives no shape")
            return (c[0][0], h[0][0], w[0][0]), True, transform
        # Data (LMDB/LevelDB), ImageData, HDF5Data: the crop gives H and W; the channels are in the data.
        own = {"Data": "data_param", "ImageData": "image_data_param", "HDF5Data": "hdf5_data_param"}[t]
        p = r.message_of(own)
        channels, known = 3, False
        if p is not None:
            pr = Reader(p, self.path)
            if crop is None and pr.integer("crop_size", 0):      # V1 kept the transform in data_param
                crop = pr.integer("crop_size", 0)
                self.crop_in_data = True
            if t == "ImageData":
                known, channels = True, 3 if pr.boolean("is_color", True) else 1
        if transform is not None:
            tr = Reader(transform, self.path)
            if tr.boolean("force_gray", False):
                known, channels = True, 1
            elif tr.boolean("force_color", False):
                known, channels = True, 3
        return ((channels, crop, crop) if crop else None), known, transform

    def transform(self, transform: Message) -> None:
        """transform_param as the [train] keys of the images: scale, mean, flip; no PCA lighting."""
        tr = Reader(transform, self.path)
        scale = tr.real("scale", 1.0)
        if scale != 1.0:
            self.out.train.set("scale", scale, "Caffe's transform_param scale")
        means = [x for x, _ in tr.floats("mean_value")]
        if tr.string("mean_file", None) is not None:
            if means:
                self.fail(tr.where("mean_value"), "both mean_file and mean_value, which Caffe refuses")
            self.out.train.set("mean", "image", "Caffe's mean_file: the training set's mean image")
        elif means:
            channels = int(self.data_section.get("shape").split("x")[0])
            if len(means) == 1:
                means = means * channels
            if len(means) != channels:
                self.fail(tr.where("mean_value"), f"{len(means)} mean values for {channels} channels")
            if channels == 3:
                self.out.train.set("mean", tuple(reversed(means)),
                                   f"Caffe's mean_value {written(tuple(means))} is B, G, R; netdsl's channels are R, G, B")
            else:
                self.out.train.set("mean", tuple(means), "Caffe's mean_value")
        else:
            self.out.train.set("mean", "none", "no mean_file or mean_value")
        self.out.train.set("flip", tr.boolean("mirror", False), "Caffe's mirror")
        if not tr.integer("crop_size", 0) and not self.crop_in_data:
            shape = self.data_section.get("shape").split("x")
            if shape[1] == shape[2]:
                self.out.train.set("resize", int(shape[1]), "no crop_size: Caffe feeds each image whole")
        self.out.train.set("lighting", 0, "Caffe has no PCA lighting")

    # ------------------------------------------------------------------ layer types

    def filler(self, layer: CaffeLayer, msg: Message | None, what: str):
        """A weight filler as netdsl's init, or None for Caffe's default (constant 0)."""
        if msg is None:
            return None
        r = Reader(msg, self.path)
        r.only({"type", "value", "min", "max", "mean", "std", "sparse", "variance_norm"}, f"the {what}")
        kind = r.string("type", "constant")
        norm = r.enum("variance_norm", ("FAN_IN", "FAN_OUT", "AVERAGE"), "FAN_IN", {0: "FAN_IN", 1: "FAN_OUT", 2: "AVERAGE"})
        if r.integer("sparse", -1, low=None) != -1:
            raise layer.origin.refuse(f"its {what} is sparse; netdsl's inits fill every weight")
        if kind == "gaussian":
            std = r.real("std", 1.0)
            if std <= 0:
                raise layer.origin.refuse(f"its {what} has std {written(std)}; netdsl's normal(mean, std) needs std > 0")
            return call("normal", r.real("mean", 0.0), std)
        if kind == "uniform":
            low, high = r.real("min", 0.0), r.real("max", 1.0)
            if low >= high:
                raise layer.origin.refuse(f"its {what} is uniform({written(low)}, {written(high)}); netdsl needs min < max")
            return call("uniform", low, high)
        if kind in ("xavier", "msra"):
            fan = {"FAN_IN": "", "FAN_OUT": "out", "AVERAGE": "avg"}[norm]
            return call(kind, fan) if fan else kind
        if kind == "constant":
            raise layer.origin.refuse(f"its {what} is constant {written(r.real('value', 0.0))}; netdsl has "
                                      "no constant init for weights")
        raise layer.origin.refuse(f"its {what} is `{kind}`, which netdsl has no init for")

    def bias_value(self, layer: CaffeLayer, msg: Message | None) -> float:
        if msg is None:
            return 0.0
        r = Reader(msg, self.path)
        r.only({"type", "value", "min", "max", "mean", "std", "sparse", "variance_norm"}, "the bias_filler")
        kind = r.string("type", "constant")
        if kind != "constant":
            raise layer.origin.refuse(f"its bias_filler is `{kind}`; netdsl's biases start at one constant")
        return r.real("value", 0.0)

    def weighted(self, layer: CaffeLayer, section: Section, p: Reader) -> None:
        bias = p.boolean("bias_term", True)
        init = self.filler(layer, p.message_of("weight_filler"), "weight_filler")
        if init is None:
            self.unfilled.append(layer.name)
        else:
            section.set("init", init)
        if not bias:
            section.set("bias", "none", "bias_term: false")
            if p.message_of("bias_filler") is not None:
                pass   # Caffe ignores the filler of a bias it does not have
        else:
            value = self.bias_value(layer, p.message_of("bias_filler"))
            if value:
                section.set("bias", value)
        self.multipliers(section, layer, bias)

    def square(self, layer: CaffeLayer, p: Reader, name: str, default: int, low: int = 0) -> int:
        """A conv or pool size given as `x`, repeated `x` (N-D), or `x_h` and `x_w`: one square value."""
        values = [v for v, _ in p.integers(name, low)]
        hw = [p.integer(f"{name.split('_')[0]}_h", None, low), p.integer(f"{name.split('_')[0]}_w", None, low)]
        if values and any(x is not None for x in hw):
            raise layer.origin.refuse(f"both `{name}` and `{name.split('_')[0]}_h/_w`, which Caffe refuses")
        if any(x is not None for x in hw):
            if None in hw:
                raise layer.origin.refuse(f"`{name.split('_')[0]}_h` and `_w` come together")
            values = hw
        if len(set(values)) > 1:
            raise layer.origin.refuse(f"{name} {' x '.join(map(str, values))} is not square; netdsl's are")
        return values[0] if values else default

    def convolution(self, layer: CaffeLayer) -> None:
        msg = layer.reader.message_of("convolution_param")
        if msg is None:
            raise layer.origin.refuse("no convolution_param")
        p = Reader(msg, self.path)
        p.only({"num_output", "bias_term", "pad", "pad_h", "pad_w", "kernel_size", "kernel_h", "kernel_w",
                "stride", "stride_h", "stride_w", "group", "weight_filler", "bias_filler", "engine", "axis",
                "force_nd_im2col", "dilation"}, "convolution_param")
        if p.integer("axis", 1, low=None) != 1:
            raise layer.origin.refuse("convolves along an axis other than 1 (the channels)")
        if any(d != 1 for d, _ in p.integers("dilation")):
            raise layer.origin.refuse("a dilated convolution; netdsl's have dilation 1")
        outputs = p.integer("num_output", 0)
        if not outputs:
            raise layer.origin.refuse("num_output is missing or 0")
        size = self.square(layer, p, "kernel_size", 0, low=1)
        if not size:
            raise layer.origin.refuse("no kernel_size")
        stride = self.square(layer, p, "stride", 1, low=1)
        pad = self.square(layer, p, "pad", 0)
        section = self.section(layer, "conv", self.inputs_of(layer))
        section.set("filters", outputs).set("size", size)
        if stride != 1:
            section.set("stride", stride)
        if pad:
            section.set("pad", pad)
        groups = p.integer("group", 1, low=1)
        if groups != 1:
            section.set("channel_groups", groups, "Caffe's group")
        self.weighted(layer, section, p)

    def inner_product(self, layer: CaffeLayer) -> None:
        msg = layer.reader.message_of("inner_product_param")
        if msg is None:
            raise layer.origin.refuse("no inner_product_param")
        p = Reader(msg, self.path)
        p.only({"num_output", "bias_term", "weight_filler", "bias_filler", "axis", "transpose"}, "inner_product_param")
        if p.integer("axis", 1, low=None) != 1:
            raise layer.origin.refuse("flattens from an axis other than 1; netdsl's fc reads each image whole")
        outputs = p.integer("num_output", 0)
        if not outputs:
            raise layer.origin.refuse("num_output is missing or 0")
        section = self.section(layer, "fc", self.inputs_of(layer))
        section.set("outputs", outputs)
        if p.boolean("transpose", False):
            section.comments.append("transpose: true stores the weights as K x N; the same function and init")
        self.weighted(layer, section, p)

    def pooling(self, layer: CaffeLayer) -> None:
        msg = layer.reader.message_of("pooling_param") or Message((), layer.line, 1)
        p = Reader(msg, self.path)
        p.only({"pool", "pad", "pad_h", "pad_w", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h",
                "stride_w", "engine", "global_pooling", "round_mode"}, "pooling_param")
        pool = p.enum("pool", ("MAX", "AVE", "STOCHASTIC"), "MAX", {0: "MAX", 1: "AVE", 2: "STOCHASTIC"})
        if pool == "STOCHASTIC":
            raise layer.origin.refuse("stochastic pooling; netdsl pools by max or average")
        rounding = p.enum("round_mode", ("CEIL", "FLOOR"), "CEIL", {0: "CEIL", 1: "FLOOR"})
        inputs = self.inputs_of(layer)
        if p.boolean("global_pooling", False):
            if p.message.has("kernel_size") or p.message.has("kernel_h"):
                raise layer.origin.refuse("global_pooling with a kernel size, which Caffe refuses")
            shape = self.shape_of(inputs[0])
            if shape[1] != shape[2]:
                raise layer.origin.refuse(f"global pooling of a {shape[1]}x{shape[2]} map; netdsl's windows are square")
            size, stride, pad = shape[1], 1, 0
        else:
            size = self.square(layer, p, "kernel_size", 0, low=1)
            if not size:
                raise layer.origin.refuse("no kernel_size")
            stride = self.square(layer, p, "stride", 1, low=1)
            pad = self.square(layer, p, "pad", 0)
            if pad >= size:
                raise layer.origin.refuse(f"pad {pad} is not below the kernel size {size}, which Caffe refuses")
        section = self.section(layer, "maxpool" if pool == "MAX" else "avgpool", inputs)
        section.set("size", size).set("stride", stride)
        if pad:
            section.set("pad", pad)
        if rounding == "CEIL":
            section.set("round", "ceil", "Caffe rounds pooled sizes up")
        if pool == "AVE" and pad:
            section.comments.append("Caffe and netdsl both divide by the window's cells inside the padded map")

        def caffe_rule(extent: int) -> int:     # pooling_layer.cpp, Reshape()
            span = extent + 2 * pad - size
            out = (math.ceil(span / stride) if rounding == "CEIL" else span // stride) + 1
            if pad and (out - 1) * stride >= extent + pad:
                out -= 1
            return out

        def check(net_layer):
            c, h, w = net_layer.in_shape
            want = (caffe_rule(h), caffe_rule(w))
            if want != (net_layer.out_shape.h, net_layer.out_shape.w):
                return (f"Caffe pools the {h}x{w} map to {want[0]}x{want[1]} (its last window entirely past "
                        f"the map), netdsl to {net_layer.out_shape.h}x{net_layer.out_shape.w}")
            return None
        section.expect.append(check)

    def shape_of(self, name: str):
        """A written layer's output shape, by checking the network so far with netdsl."""
        from .. import parse_string

        partial = NetText([])
        partial.layers = list(self.out.layers)
        tail = Section("_shape_probe_", origin=None)
        tail.set("type", "softmax").set("input", name)
        partial.layers.append(tail)
        text, starts = partial.render()
        text = text.replace("[_shape_probe_]", "[shape_probe_zz]")
        try:
            net = parse_string(text, self.out_path)
        except NetError as err:
            section = None
            for first, candidate in starts:
                if err.line and err.line >= first:
                    section = candidate
            if section is not None and section.origin is not None:
                raise section.origin.refuse(f"netdsl refuses the converted layer [{section.name}]: {err.message}") from None
            raise
        return tuple(net.layer(name).out_shape)

    def lrn(self, layer: CaffeLayer) -> None:
        msg = layer.reader.message_of("lrn_param") or Message((), layer.line, 1)
        p = Reader(msg, self.path)
        p.only({"local_size", "alpha", "beta", "norm_region", "k", "engine"}, "lrn_param")
        size = p.integer("local_size", 5, low=1)
        if size % 2 == 0:
            raise layer.origin.refuse(f"local_size {size} is even, which Caffe refuses (its window is centred)")
        alpha, beta, k = p.real("alpha", 1.0), p.real("beta", 0.75), p.real("k", 1.0)
        region = p.enum("norm_region", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "ACROSS_CHANNELS",
                        {0: "ACROSS_CHANNELS", 1: "WITHIN_CHANNEL"})
        section = self.section(layer, "lrn", self.inputs_of(layer))
        section.set("size", size)
        if region == "ACROSS_CHANNELS":
            section.set("k", k, "Caffe's k (1 unless written)")
            section.set("alpha", alpha / size, f"Caffe's alpha {written(alpha)} / local_size {size}")
        else:
            section.set("region", "within", "WITHIN_CHANNEL")
            section.set("k", 1, "Caffe's WITHIN_CHANNEL always adds 1" + (f" (its k {written(k)} unused)" if k != 1 else ""))
            section.set("alpha", alpha / size ** 2, f"Caffe's alpha {written(alpha)} / local_size^2 {size * size}")
        section.set("beta", beta)

    def neuron(self, layer: CaffeLayer) -> None:
        t, r = layer.type, layer.reader
        own = {"ReLU": "relu_param", "Sigmoid": "sigmoid_param", "TanH": "tanh_param", "ELU": "elu_param",
               "Power": "power_param", "Swish": "swish_param", "Clip": "clip_param"}.get(t)
        p = Reader(r.message_of(own) or Message((), layer.line, 1), self.path) if own else None
        if t == "ReLU":
            p.only({"negative_slope", "engine"}, "relu_param")
            slope = p.real("negative_slope", 0.0)
            neuron = "relu" if slope == 0 else call("leaky", slope)
        elif t in ("Sigmoid", "TanH"):
            p.only({"engine"}, own)
            neuron = "sigmoid" if t == "Sigmoid" else "tanh"
        elif t == "AbsVal":
            neuron = "abs"
        elif t == "BNLL":
            neuron = "softrelu"
        elif t == "ELU":
            p.only({"alpha"}, "elu_param")
            if p.real("alpha", 1.0) != 1.0:
                raise layer.origin.refuse("an ELU with alpha other than 1; netdsl's elu has alpha 1")
            neuron = "elu"
        elif t == "Swish":
            p.only({"beta"}, "swish_param")
            if p.real("beta", 1.0) != 1.0:
                raise layer.origin.refuse("a Swish with beta other than 1; netdsl's silu is x * sigmoid(x)")
            neuron = "silu"
        elif t == "Clip":
            p.only({"min", "max"}, "clip_param")
            low, high = p.real("min", None), p.real("max", None)
            if low != 0 or high is None or high <= 0:
                raise layer.origin.refuse("a Clip other than min 0, max > 0 (netdsl's brelu(a))")
            neuron = call("brelu", high)
        else:   # Power: (shift + scale * x) ^ power
            p.only({"power", "scale", "shift"}, "power_param")
            power, scale, shift = p.real("power", 1.0), p.real("scale", 1.0), p.real("shift", 0.0)
            if power == 1:
                neuron = "none" if (scale, shift) == (1, 0) else call("linear", scale, shift)
            elif power == 2 and (scale, shift) == (1, 0):
                neuron = "square"
            else:
                raise layer.origin.refuse(f"a Power layer (({written(shift)} + {written(scale)} x)^{written(power)}) "
                                          "that is not linear or x^2; netdsl has no such neuron")
        section = self.section(layer, "neuron", self.inputs_of(layer))
        section.set("neuron", neuron)

    def dropout(self, layer: CaffeLayer) -> None:
        p = Reader(layer.reader.message_of("dropout_param") or Message((), layer.line, 1), self.path)
        p.only({"dropout_ratio", "scale_train"}, "dropout_param")
        ratio = p.real("dropout_ratio", 0.5)
        if not 0 <= ratio < 1:
            raise layer.origin.refuse(f"dropout_ratio {written(ratio)} is not in 0..1 (1 excluded)")
        section = self.section(layer, "dropout", self.inputs_of(layer))
        section.set("p", ratio)
        train = p.boolean("scale_train", True)
        section.set("rescale", "train" if train else "test",
                    "Caffe divides kept units by 1 - p in training" if train else "scale_train: false")

    def concat(self, layer: CaffeLayer) -> None:
        p = Reader(layer.reader.message_of("concat_param") or Message((), layer.line, 1), self.path)
        p.only({"axis", "concat_dim"}, "concat_param")
        if p.integer("axis", 1, low=None) != 1 or p.integer("concat_dim", 1) != 1:
            raise layer.origin.refuse("concatenates along an axis other than the channels")
        inputs = self.inputs_of(layer, None)
        section = self.section(layer, "neuron", inputs)
        section.set("input", ", ".join(inputs))
        section.set("neuron", "none", "the inputs concatenated by channels, as `input = a, b` does")

    def eltwise(self, layer: CaffeLayer) -> None:
        p = Reader(layer.reader.message_of("eltwise_param") or Message((), layer.line, 1), self.path)
        p.only({"operation", "coeff", "stable_prod_grad"}, "eltwise_param")
        op = p.enum("operation", ("PROD", "SUM", "MAX"), "SUM", {0: "PROD", 1: "SUM", 2: "MAX"})
        inputs = self.inputs_of(layer, None)
        if len(inputs) < 2:
            raise layer.origin.refuse("an Eltwise of one bottom")
        coeffs = [c for c, _ in p.floats("coeff")]
        if op == "PROD":
            raise layer.origin.refuse("an elementwise product; netdsl has sum and max")
        if coeffs and op != "SUM":
            raise layer.origin.refuse("coeff is for SUM only, which Caffe checks")
        if coeffs and len(coeffs) != len(inputs):
            raise layer.origin.refuse(f"{len(coeffs)} coeffs for {len(inputs)} bottoms")
        section = self.section(layer, "sum" if op == "SUM" else "max", inputs)
        section.set("input", ", ".join(inputs))
        if coeffs and any(c != 1 for c in coeffs):
            section.set("coeffs", tuple(coeffs))

    def scale_after(self, layers: list[CaffeLayer], i: int, consumers) -> CaffeLayer | None:
        """The Scale layer that takes a BatchNorm's output, if it is the next layer to read it."""
        bn = layers[i]
        if len(bn.tops) != 1:
            return None
        for later in layers[i + 1:]:
            if bn.tops[0] in later.bottoms:
                return later if later.type == "Scale" and later.bottoms == [bn.tops[0]] else None
        return None

    def batchnorm(self, layer: CaffeLayer, scale: CaffeLayer | None) -> None:
        p = Reader(layer.reader.message_of("batch_norm_param") or Message((), layer.line, 1), self.path)
        p.only({"use_global_stats", "moving_average_fraction", "eps"}, "batch_norm_param")
        if p.boolean("use_global_stats", False) and self.is_training_file:
            raise layer.origin.refuse("use_global_stats: true in training freezes the statistics; netdsl's "
                                      "batchnorm normalizes by the batch in training")
        fraction, eps = p.real("moving_average_fraction", 0.999), p.real("eps", 1e-5)
        if not 0 <= fraction <= 1:
            raise layer.origin.refuse(f"moving_average_fraction {written(fraction)} is not in 0..1")
        if eps <= 0:
            raise layer.origin.refuse(f"eps {written(eps)} must be above 0")
        if len(layer.params) > 3 or any(lr != 0 for lr, _ in layer.params):
            raise layer.origin.refuse("a learning rate on its statistics, which Caffe refuses")
        tops = layer.tops if scale is None else scale.tops
        section = self.section(layer, "batchnorm", self.inputs_of(layer), tops)
        self.batchnorms += 1
        section.set("eps", eps)
        section.set("momentum", 1 - fraction, f"1 - Caffe's moving_average_fraction {written(fraction)}")
        if scale is None:
            section.set("affine", False, "a BatchNorm without a Scale after it")
            return
        s = Reader(scale.reader.message_of("scale_param") or Message((), scale.line, 1), self.path)
        s.only({"axis", "num_axes", "filler", "bias_term", "bias_filler"}, "scale_param")
        if s.integer("axis", 1, low=None) != 1 or s.integer("num_axes", 1, low=None) != 1:
            raise scale.origin.refuse("scales along other axes than the channels")
        if not s.boolean("bias_term", False):
            raise scale.origin.refuse("a Scale without bias_term after a BatchNorm; netdsl's affine batchnorm "
                                      "has a shift, and has no scale without one")
        for name, want in (("filler", 1.0), ("bias_filler", 0.0)):
            f = s.message_of(name)
            if f is not None:
                fr = Reader(f, self.path)
                if fr.string("type", "constant") != "constant" or fr.real("value", 0.0) != want:
                    raise scale.origin.refuse(f"its {name} is not constant {written(want)}; netdsl's batchnorm "
                                              "starts at scale 1, shift 0")
        section.set("affine", True, f"Caffe's Scale '{scale.name}' (bias_term: true), folded in")
        lr, decay = self.param_spec(scale, 2)
        if lr != (1.0, 1.0):
            section.set("lr_mult", lr)
        if decay != (1.0, 1.0):
            section.set("decay_mult", decay)
        scale.origin.netdsl = scale.origin.made = section.name
        scale.origin.note = f"folded into [{section.name}] (affine = yes)"
        self.origins.append(scale.origin)

    def softmax(self, layer: CaffeLayer) -> None:
        p = Reader(layer.reader.message_of("softmax_param") or Message((), layer.line, 1), self.path)
        p.only({"axis", "engine"}, "softmax_param")
        if p.integer("axis", 1, low=None) != 1:
            raise layer.origin.refuse("a softmax over an axis other than the channels")
        section = self.section(layer, "softmax", self.inputs_of(layer))
        self.outputs.append((layer, section))

    def loss(self, layer: CaffeLayer) -> None:
        kind = LOSS_OUTPUTS[layer.type]
        if layer.type == "SoftmaxWithLoss":
            p = Reader(layer.reader.message_of("softmax_param") or Message((), layer.line, 1), self.path)
            p.only({"axis", "engine"}, "softmax_param")
            if p.integer("axis", 1, low=None) != 1:
                raise layer.origin.refuse("a softmax over an axis other than the channels")
        lp = layer.reader.message_of("loss_param")
        if lp is not None:
            lr = Reader(lp, self.path)
            lr.only({"ignore_label", "normalize", "normalization"}, "loss_param")
            if lr.message.has("ignore_label"):
                raise layer.origin.refuse("ignore_label; netdsl counts every image's loss")
            norm = lr.enum("normalization", ("FULL", "VALID", "BATCH_SIZE", "NONE"), "VALID",
                           {0: "FULL", 1: "VALID", 2: "BATCH_SIZE", 3: "NONE"})
            if norm == "NONE" or not lr.boolean("normalize", True):
                raise layer.origin.refuse("a loss summed over the batch, not averaged; netdsl averages it")
        images = [b for b in layer.bottoms if b not in self.label_blobs]
        if len(layer.bottoms) != 2 or len(images) != 1:
            raise layer.origin.refuse("a loss reads the scores and the labels")
        inputs = [self.blobs[images[0]]] if images[0] in self.blobs else None
        if inputs is None:
            raise layer.origin.refuse(f"reads `{images[0]}`, which no layer above it produces")
        section = self.section(layer, kind, inputs)
        section.comments.append(f"Caffe {layer.type}: the {kind} and its cross-entropy against the labels")
        self.outputs.append((layer, section))

    def split(self, layer: CaffeLayer) -> None:
        (name,) = self.inputs_of(layer)
        for top in layer.tops:
            self.blobs[top] = name
        layer.origin.netdsl, layer.origin.note = name, "a netdsl layer can be read by several"
        self.origins.append(layer.origin)
        self.dropped.append(f"{layer.name} (Split): netdsl layers can be read by several")

    def accuracy(self, layer: CaffeLayer) -> None:
        self.drop(layer, "netdsl evaluates top-1 and top-5 error itself")

    def silence(self, layer: CaffeLayer) -> None:
        self.drop(layer, "nothing to compute")

    # ------------------------------------------------------------------ outputs, recipe, header

    def place_outputs(self) -> None:
        """The main output last; any other softmax or sigmoid is an auxiliary head with its loss_weight."""
        if not self.outputs:
            last = self.out.layers[-1].origin
            raise last.refuse("the net ends without a Softmax or a softmax/sigmoid loss; a netdsl network's "
                              "last layer is its softmax or sigmoid output")
        weights = [(1.0 if layer.loss_weight is None else layer.loss_weight) for layer, _ in self.outputs]
        if len(self.outputs) == 1:
            main = 0
        else:
            candidates = [i for i, w in enumerate(weights) if w == max(weights)]
            if len(candidates) > 1:
                layer = self.outputs[candidates[1]][0]
                raise layer.origin.refuse("two outputs of the same loss_weight; netdsl has one main output and "
                                          "auxiliary heads of smaller weight")
            main = candidates[0]
        main_layer, main_section = self.outputs[main]
        if weights[main] != 1:
            raise main_layer.origin.refuse(f"its loss_weight {written(weights[main])} scales every gradient; "
                                           "netdsl's main loss has weight 1 (fold it into base_lr)")
        for i, (layer, section) in enumerate(self.outputs):
            if i != main:
                if weights[i] == 0:
                    raise layer.origin.refuse("loss_weight 0: a head that does not train; netdsl's heads do")
                section.set("loss_weight", weights[i], "an auxiliary head: training only")
        self.out.layers.remove(main_section)
        self.out.layers.append(main_section)
        if len(self.outputs) > 1:
            self.notes.append(f"Main output: {main_section.name}; auxiliary heads (training only): "
                              + ", ".join(s.name for i, (_, s) in enumerate(self.outputs) if i != main))

    def batch_size(self) -> tuple[int | None, str]:
        if self.data_layer is not None:
            own = {"Data": "data_param", "ImageData": "image_data_param", "HDF5Data": "hdf5_data_param",
                   "MemoryData": "memory_data_param"}.get(self.data_layer.type)
            msg = self.data_layer.reader.message_of(own) if own else None
            if msg is not None:
                size = Reader(msg, self.path).integer("batch_size", 0)
                if size:
                    return size, f"the TRAIN data layer's batch_size {size}"
        if self.batch_flag:
            return self.batch_flag, f"--batch {self.batch_flag}"
        return None, ""

    def recipe(self) -> None:
        batch, batch_from = self.batch_size()
        if self.solver is None:
            if batch:
                self.out.train.set("batch", batch, batch_from)
            if self.out.train.entries:
                self.out.train_comments = ["From the net file's data layer; no --solver, so the rest of the recipe "
                                           "is netdsl's defaults."]
            return
        spath, sdata = self.solver
        root = parse_prototxt(sdata, spath)
        s = Reader(root, spath)
        s.only({"net", "net_param", "train_net", "test_net", "train_net_param", "test_net_param", "train_state",
                "test_state", "test_iter", "test_interval", "test_compute_loss", "test_initialization", "base_lr",
                "display", "average_loss", "max_iter", "iter_size", "lr_policy", "gamma", "power", "momentum",
                "weight_decay", "regularization_type", "stepsize", "stepvalue", "clip_gradients", "snapshot",
                "snapshot_prefix", "snapshot_diff", "snapshot_format", "solver_mode", "device_id", "random_seed",
                "type", "delta", "momentum2", "rms_decay", "debug_info", "snapshot_after_train", "solver_type",
                "layer_wise_reduce", "weights"}, "the solver")

        def refuse(name: str, text: str):
            where = s.where(name)
            raise NetError(text, spath, where.line or 1, where.col or 1)

        kind = s.string("type", None)
        if kind is None:
            kind = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp",
                    "ADADELTA": "AdaDelta", "ADAM": "Adam"}[s.enum(
                        "solver_type", ("SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM"), "SGD",
                        {0: "SGD", 1: "NESTEROV", 2: "ADAGRAD", 3: "RMSPROP", 4: "ADADELTA", 5: "ADAM"})]
        if kind not in ("SGD", "Nesterov"):
            why = ("Caffe's Adam adds delta to the uncorrected sqrt(v), PyTorch's eps is added after the bias "
                   "correction, so the two differ at every step" if kind == "Adam"
                   else f"netdsl has no {kind} optimizer")
            refuse("type" if root.has("type") else "solver_type", f"solver type {kind}: {why}")
        if s.string("regularization_type", "L2") != "L2":
            refuse("regularization_type", "L1 weight decay; netdsl's is L2")
        if s.real("clip_gradients", -1.0) >= 0:
            refuse("clip_gradients", "gradient clipping; netdsl does not clip")
        iter_size = s.integer("iter_size", 1, low=1)
        if iter_size > 1 and self.batchnorms:
            refuse("iter_size", f"iter_size {iter_size} accumulates gradients over batches, while each BatchNorm "
                                "normalizes by one batch; netdsl's batch would change the statistics")
        lr = s.real("base_lr", None)
        if lr is None or lr <= 0:
            refuse("base_lr", "base_lr is missing or not above 0")
        t = self.out.train
        t.set("optimizer", "sgd" if kind == "SGD" else "nesterov",
              "Caffe's SGD: v = momentum v - lr (grad + decay w)" if kind == "SGD" else "Caffe's Nesterov")
        t.set("lr", lr, "base_lr")
        momentum = s.real("momentum", 0.0)
        if not 0 <= momentum < 1:
            refuse("momentum", f"momentum {written(momentum)} is not in 0..1 (1 excluded)")
        t.set("momentum", momentum, "Caffe's momentum (0 unless written)")
        decay = s.real("weight_decay", 0.0)
        if decay < 0:
            refuse("weight_decay", "a negative weight_decay")
        t.set("weight_decay", decay, "Caffe's weight_decay (0 unless written)")
        if batch is None:
            refuse("max_iter", "the solver counts iterations, and neither the net's data layer nor --batch "
                               "gives the batch size they are counted in")
        batch *= iter_size
        t.set("batch", batch, batch_from + (f" x iter_size {iter_size}" if iter_size > 1 else ""))
        policy = s.string("lr_policy", None)
        if policy is None:
            refuse("base_lr", "no lr_policy (Caffe requires one)")
        max_iter = s.integer("max_iter", 0)
        if not max_iter:
            refuse("max_iter", "no max_iter")
        if policy in ("exp", "inv", "poly", "sigmoid"):
            refuse("lr_policy", f"lr_policy \"{policy}\" changes the learning rate at every iteration; netdsl's "
                                "schedules change it between epochs (plateau, step(g), multistep, cosine), and "
                                "none is this curve")
        if policy not in ("fixed", "step", "multistep"):
            refuse("lr_policy", f"unknown lr_policy \"{policy}\"")
        if not self.train_images:
            refuse("max_iter", f"max_iter {max_iter} counts iterations; give --train-images N (the training "
                               "set's size) to have them in epochs")
        n = self.train_images
        if n % batch:
            refuse("max_iter", f"{n} training images are not a whole number of batches of {batch}: Caffe's "
                               "batches run on across epoch boundaries, netdsl's epochs end with a short batch")
        per_epoch = n // batch

        def epochs(iters: int, name: str) -> int:
            if iters % per_epoch:
                refuse(name, f"{name} {iters} iterations is {iters * batch / n:g} epochs of {n} images at batch "
                             f"{batch}; netdsl's schedules and runs are whole epochs")
            return iters // per_epoch

        total = epochs(max_iter, "max_iter")
        if total < 1:
            refuse("max_iter", "max_iter is less than one epoch")
        t.set("epochs", total, f"max_iter {max_iter} x batch {batch} / {n} images")
        if policy == "fixed":
            t.set("schedule", "none", "lr_policy \"fixed\"")
            return
        gamma = s.real("gamma", None)
        if gamma is None or not 0 < gamma <= 1:
            refuse("gamma", f"lr_policy \"{policy}\" needs gamma in (0, 1]")
        if policy == "step":
            step = s.integer("stepsize", 0)
            if not step:
                refuse("stepsize", "lr_policy \"step\" without stepsize")
            every = epochs(step, "stepsize")
            if every == 1:
                t.set("schedule", call("step", gamma), f"lr x gamma every stepsize {step} iterations (1 epoch)")
                return
            milestones = list(range(every, total, every))
        else:
            values = [v for v, _ in s.integers("stepvalue")]
            if not values:
                refuse("lr_policy", "lr_policy \"multistep\" without stepvalue")
            milestones = [epochs(v, "stepvalue") for v in values if v < max_iter]
            if any(b <= a for a, b in zip(milestones, milestones[1:])):
                refuse("stepvalue", "stepvalues must increase")
        if not milestones:
            t.set("schedule", "none", f"lr_policy \"{policy}\" whose first cut comes after max_iter")
            return
        t.set("schedule", call("multistep", *milestones), f"lr_policy \"{policy}\", in epochs")
        t.set("gamma", gamma)

    def header(self, net_name: str | None, syntax: str) -> None:
        lines = [f"Imported from Caffe's {Path(self.path).name}" + (f" (net \"{net_name}\")" if net_name else "")
                 + f", {syntax} syntax" + (f", and the solver {Path(self.solver[0]).name}" if self.solver else "")
                 + ", by `netdsl import caffe`.",
                 "Each layer keeps its Caffe name (made a netdsl name where it must be) and order; `type` says",
                 "Caffe's type where it differs. LRN's alpha is Caffe's divided by its window; pools round up;",
                 "Caffe decays biases (decay_mult), and its dropout rescales in training."]
        if self.unfilled:
            lines.append(f"No weight_filler in {len(self.unfilled)} layer(s) ({', '.join(self.unfilled[:4])}"
                         f"{', ...' if len(self.unfilled) > 4 else ''}): Caffe would fill them with 0, which netdsl")
            lines.append("has no init for (weights trained elsewhere, a .caffemodel); netdsl's default init is used.")
        lines.extend(self.notes)
        if self.dropped:
            lines.append("Dropped:")
            lines.extend(f"  {d}" for d in self.dropped)
        self.out.header = lines


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or min(map(int, parts)) < 1:
        raise NetError(f"--input takes C x H x W such as 3x227x227, got `{text}`")
    return tuple(int(p) for p in parts)


def convert_caffe(path: str | Path, solver: str | Path | None = None, input_shape=None,
                  train_images: int | None = None, batch: int | None = None,
                  out_path: str = "imported.net", data: bytes | None = None) -> Imported:
    """A Caffe net file (and solver) as a checked `.net`; NetError or Refusal if it cannot be exact."""
    path = str(path)
    data = _read(path) if data is None else data
    solver_pair = (str(solver), _read(solver)) if solver is not None else None
    with one_line_errors():
        return CaffeImporter(path, data, input_shape, solver_pair, train_images, batch, out_path).convert()
