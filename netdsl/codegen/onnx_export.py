"""The checked network and its weights as a standard ONNX model, one converter per layer type.

    model = to_onnx(net, state_dict, batch=None)   # an onnx.ModelProto; batch None: symbolic "N"
    onnx.save(model, "alexnet.onnx")

The graph is built from the IR, not traced from the module: each layer type's `onnx` method
(netdsl/layers/<type>.py, beside its template) adds the ONNX nodes computing exactly what the
torch backend's template computes, and `combine_onnx` those of several inputs. Every tensor a
layer produces is named after the layer; a node's helper tensors are `layer/what`. The graph's
input is named after the data layer and takes what the module takes (N x C x H x W, raw pixels
minus the training mean, times `scale`); its output, `logits`, is what the module returns in eval
mode (the main output, before the softmax or sigmoid; auxiliary heads are left out).

A network that has no exact form (a layer type whose `onnx` returns None) raises NetError; no
approximate graph is ever returned. Opset 18 (Resize's `axes`, sizes for H and W only, whatever
the batch).
"""
from __future__ import annotations

import math
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import NetError
from ..language.ir import Layer, Net
from ..layers.registry import REGISTRY
from .render import flat_layers

OPSET = 18                 # Resize's `axes` (sizes for H and W only, whatever the batch) is opset 18
IR_VERSION = 8             # the oldest IR that opset 18 allows: older runtimes read the file too
PROTOBUF_LIMIT = 2 ** 31   # one protobuf message, so one .onnx file without external data


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
        """The state dict's `<layer>.<what>` (weight, bias, running_mean, ...), under that same name."""
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

    def resize_scale(self, layer: Layer, extent: int, scale: float, size: int) -> float:
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
        raise cannot(self.net, layer, f"no float32 factor near {scale} resizes {extent} pixels to {size} "
                                 "in both float32 and double arithmetic")


    def resize(self, x: str, what: str, scales: tuple[float, float] | None = None,
               sizes: tuple[int, int] | None = None) -> str:
        """PyTorch's bilinear F.interpolate(align_corners=False, antialias=False) over H and W: ONNX's
        half_pixel transform, x_in = (x_out + 0.5) / scale - 0.5, clamped to the map, two taps per axis.
        With `scales` the scale is the given factor, as PyTorch's scale_factor; with `sizes` it is
        out / in, as PyTorch's size. (pytorch_half_pixel would differ from PyTorch for a 1-pixel output.)"""
        if scales is not None:
            inputs = [x, "", self.constant(f"{what}_scales", scales, np.float32)]
        else:
            inputs = [x, "", "", self.constant(f"{what}_sizes", sizes, np.int64)]
        return self.node("Resize", inputs, what, mode="linear", coordinate_transformation_mode="half_pixel",
                      axes=[2, 3])


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
    return names[0] if len(names) == 1 else REGISTRY[layer.type].combine_onnx(g, layer, names)


def _value_info(name: str, batch, shape, flat: bool) -> onnx.ValueInfoProto:
    dims = [batch, shape.c] if flat else [batch, shape.c, shape.h, shape.w]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def to_onnx(net: Net, state_dict, batch: int | None = None) -> onnx.ModelProto:
    """The network with these weights (a state dict of the torch module) as an ONNX model.
    batch: None makes the batch dimension symbolic ("N"); a number fixes it."""
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
        if layer.name in net.training_only:   # the auxiliary heads: training only
            continue
        g.layer = layer
        y = REGISTRY[layer.type].onnx(g, layer, _reads(g, layer, tensors, flat))
        if y is None:
            raise cannot(net, layer, f"layer type `{layer.type}` has no ONNX form")
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
