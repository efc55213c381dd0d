"""`maxpool` and `avgpool`: pooling over size x size windows, `stride` apart, of each map.

    [pool1]
    type = maxpool
    size = 3
    stride = 2
    round = ceil    # Caffe's and cuda-convnet's pooled size: a last window overhanging the map

Output size: floor((in + 2 pad - size) / stride) + 1, or with `round = ceil` the ceiling, less
one where the last window would start in the padding (PyTorch's ceil_mode, Caffe's rule). The
average divides by the window's cells inside the padded map, as F.avg_pool2d does.
"""
from __future__ import annotations

import numpy as np

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key
from .base import LayerType, ShapeError, register, window


class Pool(LayerType):
    reads = "maps"
    flat_output = False
    colour = "#c7e9c0"
    keys = {
        "size": Key(v.integer(1)),
        "stride": Key(v.integer(1)),
        "pad": Key(v.integer(0), 0),
        "round": Key(v.choice("floor", "ceil"), "floor", "`ceil` rounds the output size up"),
    }

    def output(self, o, inp, groups, split):
        if 2 * o["pad"] > o["size"]:
            raise ShapeError(f"`pad` {o['pad']} is more than half the window size {o['size']}", "pad")
        return Shape(inp.c, self._extent(o, inp.h), self._extent(o, inp.w))

    def _extent(self, o, extent: int) -> int:
        size, stride, pad = o["size"], o["stride"], o["pad"]
        out = window(size, extent, stride, pad, "size", "pooling window", o["round"] == "ceil")
        if o["round"] == "ceil" and (out - 1) * stride >= extent + pad:  # the last window would start in the padding
            out -= 1
        return out

    def flops(self, o, inp, out, groups, split):
        return out.numel * o["size"] ** 2


def end_pad(o, extent: int, out: int) -> int:
    """Padding after the map that makes a floor-rounded window count give `out` windows."""
    return max(0, (out - 1) * o["stride"] + o["size"] - extent - o["pad"])


@register
class MaxPool(Pool):
    name = "maxpool"
    kernels = ("maxpool",)

    def bindings(self, layer, net, backend):
        """On the triton backend, maxpool_<layer>: max_pool2d with the layer's window, stride, padding and map sizes."""
        if backend != "triton":
            return ()
        o, inp, out = layer.options, layer.in_shape, layer.out_shape
        return (f"maxpool_{layer.name} = functools.partial(max_pool2d, SIZE={o['size']}, STRIDE={o['stride']}, "
                f"PAD={o['pad']}, H={inp.h}, W={inp.w}, OH={out.h}, OW={out.w})",)

    def onnx(self, g, layer, x):
        """Padding is never the maximum in either; `round = ceil`'s extra window is end padding."""
        o, inp, out = layer.options, layer.in_shape, layer.out_shape
        pads = [o["pad"], o["pad"], max(o["pad"], end_pad(o, inp.h, out.h)), max(o["pad"], end_pad(o, inp.w, out.w))]
        return g.node("MaxPool", [x], "pool", kernel_shape=[o["size"]] * 2, strides=[o["stride"]] * 2, pads=pads)


@register
class AvgPool(Pool):
    name = "avgpool"

    def onnx(self, g, layer, x):
        """PyTorch's avg_pool2d divides by the window's cells inside the padded map: `pad` zeros count,
        the part of a `round = ceil` window past them does not. So: the zeros as a Pad, and the overhang
        as ONNX padding that count_include_pad=0 leaves out of the divisor."""
        o, inp, out = layer.options, layer.in_shape, layer.out_shape
        p = o["pad"]
        padded = type(inp)(inp.c, inp.h + 2 * p, inp.w + 2 * p)
        end_h = end_pad({**o, "pad": 0}, padded.h, out.h)
        end_w = end_pad({**o, "pad": 0}, padded.w, out.w)
        kernel = dict(kernel_shape=[o["size"]] * 2, strides=[o["stride"]] * 2)
        if not (end_h or end_w):   # every window inside the padded map: ONNX's own padding, counted
            return g.node("AveragePool", [x], "pool", pads=[p] * 4, count_include_pad=1, **kernel)
        if p:
            x = g.node("Pad", [x, g.constant("pads", [0, 0, p, p, 0, 0, p, p], np.int64)], "padded")
        return g.node("AveragePool", [x], "pool", pads=[0, 0, end_h, end_w], count_include_pad=0, **kernel)
