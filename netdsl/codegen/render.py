"""Stage 3, render: the network IR to Python source through the Jinja2 templates.

    source = render(net, backend="torch")     # str: a self-contained module defining build()

Each layer type's template (netdsl/layers/<type>.py.j2, loaded as `layers/<type>.py.j2`) provides the macros
`init` (its line in __init__), `forward` (the expression computing it) and `weights` (its
initialisation in build()). Module-level helpers a type needs (the torch LRN, the Triton
kernels) are plain Python files in codegen_templates/ (<backend>/<name>.py.in) that the layer type
names, each included once per network as it is written (see helper_code); the type also gives each
layer's module-level lines binding its constants to them (`lrn_rnorm1 = functools.partial(...)`),
placed after all the helpers in the network's order.
"""
from __future__ import annotations

import ast
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jinja2

from ..errors import NetError
from ..language.ir import Layer, Net
from ..layers.base import python_number
from ..layers.neuron import torch_code as neuron_code
from ..layers.registry import REGISTRY
from ..layers.weights import bias_code, init_code
from ..language.parse import parse_text
from .resources import resource_dir

BACKENDS = ("torch", "triton")


LAYER_TEMPLATES = Path(__file__).resolve().parent.parent / "layers"


def flat_layers(net: Net) -> dict[str, bool]:
    """Which layers the generated code holds as N x C rather than N x C x H x W (fc and after)."""
    return {layer.name: layer.flat for layer in net.layers}


def shape_comment(layer: Layer, flat: bool) -> str:
    s = layer.out_shape
    return f"N x {s.c}" if flat else f"N x {s.c} x {s.h} x {s.w}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([
            jinja2.PrefixLoader({"layers": jinja2.FileSystemLoader(str(LAYER_TEMPLATES))}),
            jinja2.FileSystemLoader(str(resource_dir("codegen_templates")))]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)
    env.filters["num"] = python_number
    env.globals.update(neuron_code=neuron_code, init_code=init_code, bias_code=bias_code)
    return env


def layer_macros(layer_type: str):
    return environment().get_template(f"layers/{layer_type}.py.j2").module


def input_expr(net: Net, layer: Layer, flat: dict[str, bool]) -> str:
    """The expression a layer reads, in the form it wants; several inputs combined as its type says
    (concatenated per group unless it says otherwise)."""
    form = REGISTRY[layer.type].input_form(layer)
    if form == "any":
        form = "flat" if flat[layer.name] else "maps"
    names = []
    for name in layer.inputs:
        if form == "maps" and flat[name]:
            name = f"{name}[:, :, None, None]"
        elif form == "flat" and not flat[name]:
            name = f"torch.flatten({name}, 1)"
        names.append(name)
    if len(names) == 1:
        return names[0]
    return REGISTRY[layer.type].combine_code(layer, net, names)


class LayerCode(NamedTuple):
    layer: Layer
    reads: str       # the expression of what the layer reads
    computes: str    # the expression of its output, reading `reads` (or the name passed as `x`)


def layer_code(net: Net, backend: str, x: str | None = None) -> list[LayerCode]:
    """Each layer after data as code. forward() is built from it; so are the split placement
    (netdsl/devices/placement.py) and the layer outputs of netdsl/runner/activations.py (features,
    neighbours, the invariance score), which run it layer by layer."""
    flat = flat_layers(net)
    code = []
    for layer in net.layers[1:]:
        reads = input_expr(net, layer, flat)
        computes = str(layer_macros(layer.type).forward(layer, net, x or reads, backend)).strip()
        code.append(LayerCode(layer, reads, computes))
    return code


def _forward_lines(net: Net, backend: str) -> list[tuple[str, str]]:
    """(code, shape comment) for each line of forward(). With auxiliary heads, the layers only they
    need come after the main output, which eval mode returns alone; training returns the main
    logits and then each head's, in the network's order."""
    flat = flat_layers(net)
    extra = net.training_only
    outputs = (net.output, *net.aux_outputs)
    main, aux, returned = [], [], {}
    for layer, _, expression in layer_code(net, backend):
        if layer in outputs:   # an output's code is its logits: returned, not named
            returned[layer.name] = expression
        else:
            (aux if layer.name in extra else main).append((f"{layer.name} = {expression}",
                                                           shape_comment(layer, flat[layer.name])))
    logits = returned[net.output.name]
    if not net.aux_outputs:
        return [*main, (f"return {logits}", f"N x {net.classes} logits")]
    heads = ", ".join(returned[head.name] for head in net.aux_outputs)
    return [*main, ("if not self.training:", ""), (f"    return {logits}", f"N x {net.classes} logits"),
            *aux, (f"return {logits}, {heads}", "the main logits, then each auxiliary head's")]


# What may come before a helper file's first definition: its header, which the generated module leaves out
HEADER = (ast.Import, ast.ImportFrom, ast.Assign)


@lru_cache(maxsize=None)
def helper_code(name: str) -> str:
    """A helper file of codegen_templates/ (`torch/lrn.py.in`) as the generated module includes it: verbatim,
    from its first function or class on. What comes before is the file's header, its docstring and the
    imports and names (OPS) that let it stand alone for a linter; the generated module's own header
    (module.py.j2) defines them."""
    text = (resource_dir("codegen_templates") / name).read_text()
    body = ast.parse(text, name).body
    first = next(i for i, node in enumerate(body) if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    for i, node in enumerate(body[:first]):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not (docstring or isinstance(node, HEADER)):
            raise ValueError(f"codegen_templates/{name}, line {node.lineno}: before the first definition, "
                             "which the generated module leaves out, only a docstring, imports and names")
    start = body[first - 1].end_lineno if first else 0
    return "\n".join(text.splitlines()[start:]).strip()


def _helpers(net: Net, backend: str) -> tuple[list[str], list[str]]:
    """Module-level code the layers need, each helper file once, and the layers' lines binding their
    constants to the helpers, in the network's order."""
    names = dict.fromkeys(name for layer in net.layers for name in REGISTRY[layer.type].helpers(layer, net, backend))
    bindings = [line for layer in net.layers for line in REGISTRY[layer.type].bindings(layer, net, backend)]
    return [helper_code(name) for name in names], bindings


def _module_names(source: str) -> Counter:
    """How many times the generated module defines each global name."""
    defined: Counter = Counter()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] += 1
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    return defined


def _name_entry(net: Net) -> tuple[int | None, int | None]:
    """Where the file writes `[net] name = ...`: (line, col) of the value, or (None, None) when
    the name is the file's own."""
    sections = [section for section in parse_text(net.text, net.path).sections if section.name == "net"]
    entries = [entry for section in sections for entry in section.entries if entry.key == "name"]
    return (entries[0].value.line, entries[0].value.col) if entries else (None, None)


def _check_names(net: Net, source: str) -> None:
    """Refuse a layer named like a global of the generated module (a helper, an import), and a
    network whose class would shadow one (`local_response_norm` gives `LocalResponseNorm`)."""
    defined = _module_names(source)
    for layer in net.layers:
        if layer.name in defined:
            raise NetError(f"cannot name a layer `{layer.name}`: the generated code defines that name",
                           net.path, layer.line, layer.col)
    if defined[net.class_name] > 1:
        raise NetError(f"the network's name `{net.name}` makes its class `{net.class_name}`, a name the "
                       "generated code defines; choose another with `[net] name = ...`",
                       net.path, *_name_entry(net))


def render(net: Net, backend: str = "torch") -> str:
    """The generated Python source for `net` with the given backend ('torch' or 'triton')."""
    if backend not in BACKENDS:
        raise NetError(f"unknown backend `{backend}`; expected one of {', '.join(BACKENDS)}")
    forward = _forward_lines(net, backend)
    width = max(len(code) for code, _ in forward)
    helpers, bindings = _helpers(net, backend)
    source = environment().get_template("module.py.j2").render(
        net=net, backend=backend, helpers=helpers, bindings=bindings,
        init_lines=[line for layer in net.layers
                    for line in str(layer_macros(layer.type).init(layer, net)).strip().splitlines()],
        weight_lines=[line for layer in net.layers
                      for line in str(layer_macros(layer.type).weights(layer, net)).strip().splitlines()],
        forward=[f"{code:<{width}}  # {comment}" if comment else code for code, comment in forward],
        data_comment=f"N x {net.input_shape.c} x {net.input_shape.h} x {net.input_shape.w}",
    )
    _check_names(net, source)
    return source
