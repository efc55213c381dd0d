"""`fc`: a fully connected layer (nn.Linear) over everything its input holds.

    [fc6]
    type = fc
    outputs = 4096
    neuron = relu

With [net] groups and `connect = group` each group's share reads only its own chunk: the
generated code holds it as a grouped nn.Conv2d whose kernel covers the whole map.
"""
from __future__ import annotations

from ..language import values as v
from ..language.ir import Shape
from ..language.values import Key
from .base import LayerType, divide, register, slice_rows
from .conv import in_per_group
from .neuron import onnx_nodes
from .weights import WEIGHT_KEYS, param_count


@register
class FC(LayerType):
    name = "fc"
    weighted = True
    holds_module = True
    flat_output = True
    size_key = "outputs"
    colour = "#fdd0a2"
    keys = {"outputs": Key(v.integer(1), help="output units, all groups together"), **WEIGHT_KEYS}

    def input_form(self, layer) -> str:
        return "maps" if layer.derived["grouped"] else "flat"

    def output(self, o, inp, groups, split):
        divide(o["outputs"], groups, "`outputs`", "outputs")
        in_per_group(o, inp.numel, groups, split)
        return Shape(o["outputs"], 1, 1)

    def params(self, o, inp, out, groups, split):
        return param_count(o["outputs"] * in_per_group(o, inp.numel, groups, split), o["outputs"], o)

    def flops(self, o, inp, out, groups, split):
        return 2 * o["outputs"] * in_per_group(o, inp.numel, groups, split)

    def derived(self, o, inp, out, groups, split):
        return {**super().derived(o, inp, out, groups, split),
                "fans": (in_per_group(o, inp.numel, groups, split), o["outputs"])}

    def onnx(self, g, layer, x):
        bias = [g.weight(layer, "bias")] if layer.options["bias"] is not None else []
        if layer.derived["grouped"]:   # nn.Conv2d over the whole map, groups = G; then flattened
            inp = layer.in_shape
            y = g.node("Conv", [x, g.weight(layer, "weight"), *bias], "conv",
                       kernel_shape=[inp.h, inp.w], group=g.net.groups)
            y = g.node("Flatten", [y], "flat", axis=1)
        else:                          # nn.Linear: x W^T + b
            y = g.node("Gemm", [x, g.weight(layer, "weight"), *bias], "fc", transB=1)
        return onnx_nodes(g, layer.options["neuron"], y)

    def shard(self, fused, g, groups, device):
        from torch import nn
        from torch.nn.utils import skip_init

        if isinstance(fused, nn.Conv2d):
            part = skip_init(nn.Conv2d, fused.in_channels // fused.groups, fused.out_channels // groups,
                             fused.kernel_size, bias=fused.bias is not None, device=device)
        else:
            part = skip_init(nn.Linear, fused.in_features, fused.out_features // groups,
                             bias=fused.bias is not None, device=device)
        slice_rows(part, fused, g, groups)
        return part
