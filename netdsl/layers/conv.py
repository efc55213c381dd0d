"""`conv`: a 2-D convolution (nn.Conv2d), the layer type the rest of the weighted ones build on.

    [conv2]
    type = conv
    filters = 256
    size = 5
    pad = 2
    connect = group          # with [net] groups: each group reads only its own chunk
    channel_groups = 2       # Caffe's `group: 2`: the filters split into 2 groups over the channels
    round = ceil             # cuda-convnet's output size: a last window overhanging into zeros
    bias = none              # no bias (a conv before a batch norm)

Output size: floor((in + 2 pad - size) / stride) + 1; `round = ceil` gives cuda-convnet's
1 + ceil((in + 2 pad - size) / stride) (its conv_util.cu and layer.py's modulesX), whose last
window reaches past the padding into zeros: the generated code pads the far side by the overhang.
"""
from __future__ import annotations

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key
from .base import LayerType, ShapeError, divide, register, slice_rows, window
from .weights import WEIGHT_KEYS, param_count


def overhang(o, inp: Shape, out: Shape) -> tuple[int, int]:
    """(bottom, right): how far `round = ceil`'s last window reaches past the padding, in zeros the
    generated code adds at the far side (0, 0 for floor)."""
    return tuple(max(0, (n - 1) * o["stride"] + o["size"] - extent - 2 * o["pad"])
                 for n, extent in ((out.h, inp.h), (out.w, inp.w)))


def in_per_group(o, channels: int, groups: int, split: bool) -> int:
    """The input channels each GPU group's share of the layer reads."""
    if o["connect"] == "group" and split:
        return divide(channels, groups, "the input's channel count", "connect")
    return channels


@register
class Conv(LayerType):
    name = "conv"
    weighted = True
    holds_module = True
    has_kernels = True
    reads = "maps"
    flat_output = False
    size_key = "filters"
    colour = "#c6dbef"
    keys = {
        "filters": Key(v.integer(1), help="output channels, all groups together"),
        "size": Key(v.integer(1), help="square kernel side"),
        "stride": Key(v.integer(1), 1),
        "pad": Key(v.integer(0), 0, "zeros added on each side"),
        "channel_groups": Key(v.integer(1), 1, "Caffe's `group`: filters and channels in G groups"),
        "round": Key(v.choice("floor", "ceil"), "floor", "`ceil`: cuda-convnet's output size"),
        **WEIGHT_KEYS,
    }

    def output(self, o, inp, groups, split):
        divide(o["filters"], groups, "`filters`", "filters")
        channels = in_per_group(o, inp.c, groups, split)
        if o["channel_groups"] > 1:
            if groups > 1:
                raise ShapeError("`channel_groups` cannot be combined with [net] groups > 1; write the "
                                 "groups with `connect = group`", "channel_groups")
            for what, count in (("the input's channel count", channels), ("`filters`", o["filters"])):
                if count % o["channel_groups"]:
                    raise ShapeError(f"{what} {count} is not divisible by `channel_groups` "
                                     f"{o['channel_groups']}", "channel_groups")
        return self.conv_output(o, inp.h, inp.w)

    def conv_output(self, o, h: int, w: int, what: str = "kernel") -> Shape:
        ceil = o["round"] == "ceil"
        return Shape(o["filters"], window(o["size"], h, o["stride"], o["pad"], "size", what, ceil),
                     window(o["size"], w, o["stride"], o["pad"], "size", what, ceil))

    def fans(self, o, inp: Shape, groups: int, split: bool) -> tuple[int, int]:
        """(fan-in, fan-out) of a weight, as PyTorch and Caffe count them."""
        area = o["size"] ** 2
        return in_per_group(o, inp.c, groups, split) // o["channel_groups"] * area, o["filters"] * area

    def params(self, o, inp, out, groups, split):
        fan_in, _ = self.fans(o, inp, groups, split)
        return param_count(o["filters"] * fan_in, o["filters"], o)

    def flops(self, o, inp, out, groups, split):
        return 2 * self.fans(o, inp, groups, split)[0] * out.numel

    def derived(self, o, inp, out, groups, split):
        grouped = o["connect"] == "group" and split and groups > 1
        return {"grouped": grouped, "conv_groups": (groups if grouped else 1) * o["channel_groups"],
                "overhang": overhang(o, inp, out), "fans": self.fans(o, inp, groups, split)}

    def onnx(self, g, layer, x):
        from .neuron import onnx_nodes
        return onnx_nodes(g, layer.options["neuron"], conv_node(g, layer, x))

    def shard(self, fused, g, groups, device):
        from torch import nn
        from torch.nn.utils import skip_init

        part = skip_init(nn.Conv2d, fused.in_channels // fused.groups, fused.out_channels // groups,
                         fused.kernel_size, stride=fused.stride, padding=fused.padding,
                         bias=fused.bias is not None, device=device)
        slice_rows(part, fused, g, groups)
        return part


def conv_node(g, layer, x: str) -> str:
    """The layer's nn.Conv2d as an ONNX Conv; `round = ceil`'s overhang as padding at the far end."""
    o = layer.options
    eh, ew = layer.derived["overhang"]
    inputs = [x, g.weight(layer, "weight")] + ([g.weight(layer, "bias")] if o["bias"] is not None else [])
    return g.node("Conv", inputs, "conv", kernel_shape=[o["size"], o["size"]],
                  strides=[o["stride"], o["stride"]], pads=[o["pad"], o["pad"], o["pad"] + eh, o["pad"] + ew],
                  group=layer.derived["conv_groups"])
