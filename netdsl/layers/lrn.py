"""`lrn`: local response normalization, across channels (the AlexNet paper's, section 3.3) or
within each map (cuda-convnet's `rnorm`, Caffe's WITHIN_CHANNEL).

    [rnorm1]
    type = lrn
    size = 5        # n: channels in the window (across), or the side of the window (within); odd
    k = 2
    alpha = 1e-4    # not divided by the window's size, as the paper writes it
    beta = 0.75
    region = across # or `within`

across: b[c] = a[c] / (k + alpha * sum of a[j]^2 over channels j = c - n/2 .. c + n/2)^beta,
the window clipped at the first and last channel (of each GPU group: with [net] groups the
window stays inside a group, as on the paper's two GPUs).
within: b[c,y,x] = a[c,y,x] / (k + alpha * sum of a[c,y',x']^2 over the n x n pixels around
(y, x))^beta, the window clipped at the map's edges. Caffe divides alpha by n (across) or n^2
(within), and cuda-convnet its `scale` likewise; netdsl does not (`netdsl import` converts).
"""
from __future__ import annotations

import numpy as np

from ..language import values as v
from ..language.values import Key
from .base import LayerType, ShapeError, python_number, register


@register
class LRN(LayerType):
    name = "lrn"
    reads = "maps"
    flat_output = False
    colour = "#fff7bc"
    keys = {
        "size": Key(v.integer(1), 5, "n: channels in the window (across), pixels on its side (within), odd"),
        "k": Key(v.float32(v.number(), "a constant of float32 arithmetic"), 2.0),
        "alpha": Key(v.float32(v.number(0), "a constant of float32 arithmetic"), 1e-4, "not divided by size"),
        "beta": Key(v.float32(v.number(0), "a constant of float32 arithmetic"), 0.75),
        "region": Key(v.choice("across", "within"), "across", "across channels, or within each map"),
    }

    def kernels_of(self, layer):
        return ("lrn_within",) if layer.options["region"] == "within" else ("lrn",)

    def helpers(self, layer, net, backend):
        if backend == "triton":
            return super().helpers(layer, net, backend)
        own = "torch/lrn_within.py.in" if layer.options["region"] == "within" else "torch/lrn.py.in"
        return super().helpers(layer, net, backend) + (own,)

    def bindings(self, layer, net, backend):
        """On the triton backend, lrn_<layer> (or lrn_within_<layer>): the kernels' operator with the layer's
        constants and launch shape."""
        if backend != "triton":
            return ()
        o = layer.options
        constants = (f"SIZE={o['size']}, K={python_number(o['k'])}, ALPHA={python_number(o['alpha'])}, "
                     f"BETA={python_number(o['beta'])}")
        hw = layer.in_shape.h * layer.in_shape.w
        if o["region"] == "within":
            block = 256 if hw > 128 else 128   # 256 pixels a program, or 128 for small maps
            return (f"lrn_within_{layer.name} = functools.partial(local_response_norm_within, {constants}, "
                    f"H={layer.in_shape.h}, W={layer.in_shape.w}, BLOCK={block}, num_warps=4)",)
        groups = net.groups if layer.split and net.groups > 1 else 1
        channels = layer.in_shape.c // groups
        chunk = min(16, channels)   # up to 16 channels a program
        # 512 pixels a program, or 256 where that wastes fewer lanes on the maps' last block
        block = 512 if (hw + 511) // 512 * 512 <= (hw + 255) // 256 * 256 else 256
        # Pixels a thread holds: as many as every channel's load can read in one vector (c * hw keeps 4-, 2- or
        # 1-element alignment), so all loads share one register layout and none is reshuffled through shared memory
        per_thread = 4 if hw % 4 == 0 else 2 if hw % 2 == 0 else 1
        return (f"lrn_{layer.name} = functools.partial(local_response_norm, {constants}, CHANNELS={channels}, "
                f"HW={hw}, CHUNK={chunk}, BLOCK={block}, num_warps={block // (32 * per_thread)})",)

    def output(self, o, inp, groups, split):
        if o["size"] % 2 == 0:
            centre = "channel i" if o["region"] == "across" else "each pixel"
            raise ShapeError(f"`size` must be odd: the window is centred on {centre}", "size")
        if o["k"] <= 0 and o["beta"] > 0:
            raise ShapeError("`k` must be above 0, or an all-zero input divides by zero", "k")
        return inp

    def flops(self, o, inp, out, groups, split):
        window = o["size"] if o["region"] == "across" else o["size"] ** 2
        return out.numel * (2 * window + 3)

    def onnx(self, g, layer, x):
        return (self._within_onnx if layer.options["region"] == "within" else self._across_onnx)(g, layer, x)

    def _across_onnx(self, g, layer, x):
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

    def _within_onnx(self, g, layer, x):
        """The window sum of x^2 as a depthwise Conv of ones (zeros padded: the window clipped), then
        x * (k + alpha * sum)^-beta."""
        o = layer.options
        c, n, half = layer.in_shape.c, o["size"], o["size"] // 2
        squares = g.node("Mul", [x, x], "squares")
        ones = g.constant("ones", np.ones((c, 1, n, n)), np.float32)
        total = g.node("Conv", [squares, ones], "window_sum", kernel_shape=[n, n], pads=[half] * 4, group=c)
        base = g.node("Add", [g.node("Mul", [total, g.constant("alpha", o["alpha"], np.float32)], "scaled"),
                              g.constant("k", o["k"], np.float32)], "base")
        power = g.node("Pow", [base, g.constant("minus_beta", -o["beta"], np.float32)], "power")
        return g.node("Mul", [x, power], "lrn")
