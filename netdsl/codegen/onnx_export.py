"""The checked network and its weights as a standard ONNX model, one converter per layer type.

    model = to_onnx(net, state_dict, batch=None)   # an onnx.ModelProto; batch None: symbolic "N"
    onnx.save(model, "alexnet.onnx")

The graph is built from the IR, not traced from the module: each layer type has one converter
here (registered with @converter, as the templates are one per type), which adds the ONNX nodes
computing exactly what the torch backend's template computes. Every tensor a layer produces is
named after the layer; a node's helper tensors are `layer/what`. The graph's input is named after
the data layer and takes what the module takes (N x C x H x W, raw pixels minus the training
mean, times `scale`); its output, `logits`, is what the module returns (before the softmax or
sigmoid).

What maps to what (opset 18):
- conv: Conv (group = G for `connect = group`); fc: Gemm, or a grouped Conv over the whole map;
  neurons Relu, Tanh, Sigmoid; dropout at test: nothing, or Mul by 1 - p for `rescale = test`.
- lrn: LRN with alpha * size (ONNX divides alpha by size, netdsl does not); with G groups the
  channels are reshaped to N*G x C/G, as the torch backend does, so the window stays inside a group.
- siconv: per scale Resize (linear, half_pixel, by `scales`: PyTorch's interpolate(scale_factor=s)
  samples at (i + 0.5) / s - 0.5, not at the output/input size ratio), Conv, Resize back (by
  `sizes`), then Max over the scales.
- maxpool, avgpool: MaxPool, AveragePool with explicit pads, never ceil_mode, so that `round = ceil`
  relies on no runtime's rounding; avgpool divides by what PyTorch divides by.
A network that has no exact form (a layer type without a converter) raises NetError; no
approximate graph is ever returned.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import NetError
from ..language.ir import Layer, Net
from ..language.layers import REGISTRY
from .render import flat_layers

OPSET = 18                 # Resize's `axes` (sizes for H and W only, whatever the batch) is opset 18
IR_VERSION = 8             # the oldest IR that opset 18 allows: older runtimes read the file too
PROTOBUF_LIMIT = 2 ** 31   # one protobuf message, so one .onnx file without external data

CONVERTERS: dict[str, Callable[["Graph", Layer, str], str]] = {}


def converter(layer_type: str):
    """Register the function that adds `layer_type`'s nodes: (graph, layer, input name) -> output name."""
    def register(function):
        CONVERTERS[layer_type] = function
        return function
    return register


def cannot(net: Net, layer: Layer, why: str) -> NetError:
    return NetError(f"cannot export `{layer.name}` to ONNX exactly: {why}", net.path, layer.line, layer.col)


class Graph:
    """An ONNX graph under construction: nodes, initializers and unique tensor names."""

    def __init__(self, net: Net, weights: dict[str, np.ndarray]):
        self.net = net
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = set()
        self.layer: Layer | None = None   # the layer whose nodes are being added

    def _name(self, what: str) -> str:
        base = f"{self.layer.name}/{what}" if self.layer else what
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def node(self, op: str, inputs: list[str], what: str | None = None, outputs: int = 1, **attributes):
        """Add a node; its output name (or names, with outputs > 1)."""
        names = [self._name(what or op) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=self._name(f"{op}_node"), **attributes))
        return names[0] if outputs == 1 else names

    def constant(self, what: str, values, dtype) -> str:
        name = self._name(what)
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def weight(self, layer: Layer, what: str) -> str:
        """The state dict's `<layer>.weight` or `.bias`, under that same name."""
        name = f"{layer.name}.{what}"
        if name not in self.names:
            self.names.add(name)
            self.initializers.append(numpy_helper.from_array(self.weights[name], name))
        return name

    def rename_output(self, old: str, new: str) -> None:
        """The tensor `old`, produced by a node, called `new` from now on."""
        for node in self.nodes:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        self.names.add(new)


# ---------------------------------------------------------------- shared pieces

def neuron(g: Graph, kind: str, x: str) -> str:
    ops = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
    return g.node(ops[kind], [x]) if kind in ops else x


def conv_node(g: Graph, layer: Layer, x: str) -> str:
    o = layer.options
    return g.node("Conv", [x, g.weight(layer, "weight"), g.weight(layer, "bias")], "conv",
                  kernel_shape=[o["size"], o["size"]], strides=[o["stride"], o["stride"]],
                  pads=[o["pad"]] * 4, group=g.net.groups if layer.derived["grouped"] else 1)


def resize_scale(net: Net, layer: Layer, extent: int, scale: float, size: int) -> float:
    """The float32 factor for Resize's `scales` that sizes `extent` to `size` = floor(extent * scale),
    as PyTorch does in double precision, whether a runtime multiplies in float32 (onnxruntime) or in
    double (ONNX's reference and its shape inference): float32(0.7) * 10 is 7 in float32 but
    6.99999988 in double. The float32 nearest `scale` on which both agree: a few ulps away at most,
    so the sampling points move by a few parts in 10^7, float32's own rounding."""
    nearest = up = down = np.float32(scale)
    candidates = [nearest]
    for _ in range(8):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        candidates += [up, down]
    for c in candidates:
        if int(np.floor(np.float32(extent) * c)) == math.floor(float(c) * extent) == size:
            return float(c)
    raise cannot(net, layer, f"no float32 factor near {scale} resizes {extent} pixels to {size} "
                             "in both float32 and double arithmetic")


def resize(g: Graph, x: str, what: str, scales: tuple[float, float] | None = None,
           sizes: tuple[int, int] | None = None) -> str:
    """PyTorch's bilinear F.interpolate(align_corners=False, antialias=False) over H and W: ONNX's
    half_pixel transform, x_in = (x_out + 0.5) / scale - 0.5, clamped to the map, two taps per axis.
    With `scales` the scale is the given factor, as PyTorch's scale_factor; with `sizes` it is
    out / in, as PyTorch's size. (pytorch_half_pixel would differ from PyTorch for a 1-pixel output.)"""
    if scales is not None:
        inputs = [x, "", g.constant(f"{what}_scales", scales, np.float32)]
    else:
        inputs = [x, "", "", g.constant(f"{what}_sizes", sizes, np.int64)]
    return g.node("Resize", inputs, what, mode="linear", coordinate_transformation_mode="half_pixel",
                  axes=[2, 3])


# ---------------------------------------------------------------- one converter a layer type

@converter("conv")
def convert_conv(g: Graph, layer: Layer, x: str) -> str:
    return neuron(g, layer.options["neuron"], conv_node(g, layer, x))


@converter("siconv")
def convert_siconv(g: Graph, layer: Layer, x: str) -> str:
    """z_s = resize(conv(resize(x, by s)), to the plain conv's size); the max over s; the neuron."""
    inp, out = layer.in_shape, layer.out_shape
    maps = []
    for s, h, w, conv_h, conv_w in layer.derived["scale_maps"]:
        y = x
        if s != 1:   # scale 1 samples every pixel where it is: no node
            scales = (resize_scale(g.net, layer, inp.h, s, h), resize_scale(g.net, layer, inp.w, s, w))
            y = resize(g, y, f"x{s:g}", scales=scales)
        y = conv_node(g, layer, y)
        if (conv_h, conv_w) != (out.h, out.w):   # the same size: out / in = 1, no node
            y = resize(g, y, f"back{s:g}", sizes=(out.h, out.w))
        maps.append(y)
    z = g.node("Max", maps, "max") if len(maps) > 1 else maps[0]
    return neuron(g, layer.options["neuron"], z)


@converter("lrn")
def convert_lrn(g: Graph, layer: Layer, x: str) -> str:
    """ONNX: x / (bias + alpha / size * window sum)^beta, the window c - (size-1)/2 .. c + (size-1)/2
    clipped to the channels, which for netdsl's odd sizes is netdsl's window; netdsl's alpha is
    not divided by size, so ONNX gets alpha * size. Each group normalized on its own channels."""
    o = layer.options
    groups = g.net.groups if layer.split and g.net.groups > 1 else 1
    c, h, w = layer.in_shape
    if groups > 1:   # N x C x H x W -> N*G x C/G x H x W: each group's channels are contiguous
        x = g.node("Reshape", [x, g.constant("groups_shape", [-1, c // groups, h, w], np.int64)], "groups")
    # A window of 2 C/G - 1 channels already covers the group's every channel from any of them;
    # a wider one sums the same, and onnxruntime would pad each map by the full width.
    size = min(o["size"], 2 * (c // groups) - 1)
    y = g.node("LRN", [x], "lrn", size=size, alpha=o["alpha"] * size, beta=o["beta"], bias=o["k"])
    if groups > 1:
        y = g.node("Reshape", [y, g.constant("shape", [-1, c, h, w], np.int64)], "merged")
    return y


def _end_pad(o, extent: int, out: int) -> int:
    """Padding after the map that makes a floor-rounded window count give `out` windows."""
    return max(0, (out - 1) * o["stride"] + o["size"] - extent - o["pad"])


@converter("maxpool")
def convert_maxpool(g: Graph, layer: Layer, x: str) -> str:
    """Padding is never the maximum in either; `round = ceil`'s extra window is end padding."""
    o, inp, out = layer.options, layer.in_shape, layer.out_shape
    pads = [o["pad"], o["pad"], max(o["pad"], _end_pad(o, inp.h, out.h)), max(o["pad"], _end_pad(o, inp.w, out.w))]
    return g.node("MaxPool", [x], "pool", kernel_shape=[o["size"]] * 2, strides=[o["stride"]] * 2, pads=pads)


@converter("avgpool")
def convert_avgpool(g: Graph, layer: Layer, x: str) -> str:
    """PyTorch's avg_pool2d divides by the window's cells inside the padded map: `pad` zeros count,
    the part of a `round = ceil` window past them does not. So: the zeros as a Pad, and the overhang
    as ONNX padding that count_include_pad=0 leaves out of the divisor."""
    o, inp, out = layer.options, layer.in_shape, layer.out_shape
    p = o["pad"]
    padded = type(inp)(inp.c, inp.h + 2 * p, inp.w + 2 * p)
    end_h = _end_pad({**o, "pad": 0}, padded.h, out.h)
    end_w = _end_pad({**o, "pad": 0}, padded.w, out.w)
    window = dict(kernel_shape=[o["size"]] * 2, strides=[o["stride"]] * 2)
    if not (end_h or end_w):   # every window inside the padded map: ONNX's own padding, counted
        return g.node("AveragePool", [x], "pool", pads=[p] * 4, count_include_pad=1, **window)
    if p:
        x = g.node("Pad", [x, g.constant("pads", [0, 0, p, p, 0, 0, p, p], np.int64)], "padded")
    return g.node("AveragePool", [x], "pool", pads=[0, 0, end_h, end_w], count_include_pad=0, **window)


@converter("fc")
def convert_fc(g: Graph, layer: Layer, x: str) -> str:
    if layer.derived["grouped"]:   # nn.Conv2d over the whole map, groups = G; then flattened
        inp = layer.in_shape
        y = g.node("Conv", [x, g.weight(layer, "weight"), g.weight(layer, "bias")], "conv",
                   kernel_shape=[inp.h, inp.w], group=g.net.groups)
        y = g.node("Flatten", [y], "flat", axis=1)
    else:                          # nn.Linear: x W^T + b
        y = g.node("Gemm", [x, g.weight(layer, "weight"), g.weight(layer, "bias")], "fc", transB=1)
    return neuron(g, layer.options["neuron"], y)


@converter("dropout")
def convert_dropout(g: Graph, layer: Layer, x: str) -> str:
    """At test time: every unit times 1 - p (`rescale = test`, the paper's), or as it is (inverted)."""
    p = layer.options["p"]
    if layer.options["rescale"] == "test" and p:
        return g.node("Mul", [x, g.constant("keep", 1 - p, np.float32)], "scaled")
    return x


@converter("neuron")
def convert_neuron(g: Graph, layer: Layer, x: str) -> str:
    return neuron(g, layer.options["neuron"], x)


@converter("softmax")
@converter("sigmoid")
def convert_output(g: Graph, layer: Layer, x: str) -> str:
    return x   # the logits: the module returns them before the softmax or sigmoid, and so does this


# ---------------------------------------------------------------- the graph

def _reads(g: Graph, layer: Layer, tensors: dict[str, str], flat: dict[str, bool]) -> str:
    """What the layer reads, in the form it wants, as render.input_expr writes it in Python."""
    form = REGISTRY[layer.type].input_form(layer)
    if form == "any":
        form = "flat" if flat[layer.name] else "maps"
    names = []
    for name in layer.inputs:
        tensor = tensors[name]
        if form == "maps" and flat[name]:     # N x C -> N x C x 1 x 1
            tensor = g.node("Unsqueeze", [tensor, g.constant("axes", [2, 3], np.int64)], f"{name}_maps")
        elif form == "flat" and not flat[name]:
            tensor = g.node("Flatten", [tensor], f"{name}_flat", axis=1)
        names.append(tensor)
    if len(names) == 1:
        return names[0]
    if g.net.groups == 1 or not layer.split:
        return g.node("Concat", names, "inputs", axis=1)
    groups = g.net.groups   # group_cat: group g gets the g-th chunk of each input, in order
    chunks = [g.node("Split", [n], "chunk", outputs=groups, axis=1, num_outputs=groups) for n in names]
    return g.node("Concat", [c[k] for k in range(groups) for c in chunks], "inputs", axis=1)


def _value_info(name: str, batch, shape, flat: bool) -> onnx.ValueInfoProto:
    dims = [batch, shape.c] if flat else [batch, shape.c, shape.h, shape.w]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def to_onnx(net: Net, state_dict, batch: int | None = None) -> onnx.ModelProto:
    """The network with these weights (a state dict of the torch module) as an ONNX model.
    batch: None makes the batch dimension symbolic ("N"); a number fixes it."""
    for layer in net.layers[1:]:
        if layer.type not in CONVERTERS:
            raise cannot(net, layer, f"layer type `{layer.type}` has no ONNX converter")
    weights = {name: t.detach().cpu().float().numpy() for name, t in state_dict.items()}
    size = sum(a.nbytes for a in weights.values())
    if size >= PROTOBUF_LIMIT:
        raise NetError(f"the weights take {size / 2 ** 30:.1f} GiB, and one ONNX file holds under 2 GiB")
    g = Graph(net, weights)
    n = "N" if batch is None else batch
    flat = flat_layers(net)
    data = net.data
    g.names.add(data.name)
    tensors = {data.name: data.name}   # each layer's output tensor
    shapes = {}
    for layer in net.layers[1:]:
        g.layer = layer
        y = CONVERTERS[layer.type](g, layer, _reads(g, layer, tensors, flat))
        if y not in tensors.values():    # made by this layer's nodes (not its input passed on)
            g.rename_output(y, layer.name)
            y = layer.name
            shapes[y] = _value_info(y, n, layer.out_shape, flat[layer.name])
        tensors[layer.name] = y
    g.layer = None
    output = "logits" if "logits" not in tensors or net.output.name == "logits" else net.output.name
    logits = tensors[net.output.name]
    if logits == data.name:              # the input itself, which no node makes: a named copy
        g.nodes.append(helper.make_node("Identity", [logits], [output], name="logits"))
    elif logits != output:
        g.rename_output(logits, output)
        shapes.pop(logits, None)
    graph = helper.make_graph(
        g.nodes, net.name,
        [_value_info(data.name, n, net.input_shape, False)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [n, net.classes])],
        g.initializers, value_info=list(shapes.values()),
        doc_string=f"{net.name} from {net.path}: {data.name} N x {net.input_shape} (raw pixels minus the "
                   f"training mean, times `scale`) to N x {net.classes} logits, before the {net.output.type}")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="netdsl", ir_version=IR_VERSION)
    helper.set_model_props(model, {"netdsl.net": net.text})
    return model
