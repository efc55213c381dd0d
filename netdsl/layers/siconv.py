"""`siconv`: the SI paper's scale-invariant convolution (Kanazawa et al. 2014): one conv's weights
applied to the input resized by each of `scales`, each map resized back, the maximum kept.

    [conv1]
    type = siconv
    filters = 36
    size = 7
    scales = 0.63, 0.79, 1, 1.26, 1.59

Its keys are conv's (`round = floor` only) and `scales`. The torch backend runs si_conv2d
(codegen_templates/torch/si_conv.py.in); the triton backend its warp-max kernels
(codegen_templates/triton/si_warp_max.py.in).
"""
from __future__ import annotations

import math

from ..language import values as v
from ..language.values import Key
from .base import ShapeError, python_number, register
from .conv import Conv, conv_node


@register
class SIConv(Conv):
    name = "siconv"
    kernels = ("si_warp_max",)
    colour = "#9ecae1"
    keys = {**Conv.keys, "round": Key(v.choice("floor"), "floor", "`floor` only: every scale's map resized to it"),
            "scales": Key(v.scales, help="the factors the input is resized by")}

    def helpers(self, layer, net, backend):
        own = () if backend == "triton" else ("torch/si_conv.py.in",)
        return super().helpers(layer, net, backend) + own

    def bindings(self, layer, net, backend):
        """On the triton backend, si_warp_max_<layer>: si_conv2d with the layer's scales and output size."""
        if backend != "triton":
            return ()
        scales = ", ".join(python_number(s) for s, *_ in layer.derived["scale_maps"])
        scales += "," if len(layer.derived["scale_maps"]) == 1 else ""
        out = layer.out_shape
        return (f"si_warp_max_{layer.name} = functools.partial(si_conv2d, scales=({scales}), OH={out.h}, OW={out.w})",)

    def scale_maps(self, o, inp):
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
                conv = self.conv_output(o, h, w)
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
        per_output = 2 * self.fans(o, inp, groups, split)[0]
        conv = sum(per_output * o["filters"] * ch * cw for _, _, _, ch, cw in self.scale_maps(o, inp))
        return conv + len(o["scales"]) * out.numel  # plus the max over scales

    def derived(self, o, inp, out, groups, split):
        return {**super().derived(o, inp, out, groups, split),
                "scale_maps": tuple(self.scale_maps(o, inp))}

    def onnx(self, g, layer, x):
        """z_s = resize(conv(resize(x, by s)), to the plain conv's size); the max over s; the neuron."""
        from .neuron import onnx_nodes
        inp, out = layer.in_shape, layer.out_shape
        maps = []
        for s, h, w, conv_h, conv_w in layer.derived["scale_maps"]:
            y = x
            if s != 1:   # scale 1 samples every pixel where it is: no node
                scales = (g.resize_scale(layer, inp.h, s, h), g.resize_scale(layer, inp.w, s, w))
                y = g.resize(y, f"x{s:g}", scales=scales)
            y = conv_node(g, layer, y)
            if (conv_h, conv_w) != (out.h, out.w):   # the same size: out / in = 1, no node
                y = g.resize(y, f"back{s:g}", sizes=(out.h, out.w))
            maps.append(y)
        z = g.node("Max", maps, "max") if len(maps) > 1 else maps[0]
        return onnx_nodes(g, layer.options["neuron"], z)
