"""netdsl: networks written as short text files, compiled to PyTorch modules.

    import netdsl
    net = netdsl.parse_file("nets/alexnet.net")        # the checked network (netdsl.Net)
    model = netdsl.compile_net("nets/alexnet.net")      # a torch.nn.Module
    source = netdsl.generate_source(net)                # the generated Python, as text

The pipeline, one wing a stage: language/ (parse.py text to sections, check.py sections to
the IR in ir.py, shapes inferred), codegen/ (render.py IR to source through
codegen_templates/, load.py source to module), devices/ (placement), runner/ (training and
evaluation), with datasets/, scale_invariance/ (the SI paper's experiment) and commands/
(one module a `netdsl` command) beside them; README.md's Layout section draws the tree.
"""
from __future__ import annotations

from pathlib import Path

from .codegen.load import load_source
from .codegen.render import BACKENDS, render
from .errors import NetError
from .language.check import check
from .language.ir import Layer, Net, Shape, TrainConfig
from .language.parse import parse_text

__all__ = ["NetError", "Net", "Layer", "Shape", "TrainConfig", "parse_file", "parse_string",
           "compile_net", "generate_source", "load_source", "load_net"]


def parse_string(text: str | bytes, path: str = "<string>") -> Net:
    """Parse and check `.net` text; raise NetError pointing at the fault."""
    return check(parse_text(text, path))


def parse_file(path: str | Path) -> Net:
    """Parse and check a `.net` file; raise NetError(.path, .line, .col) pointing at the fault."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NetError("no such file", path) from None
    except IsADirectoryError:
        raise NetError("is a directory, not a .net file", path) from None
    except OSError as err:
        raise NetError(f"cannot read it: {err.strerror}", path) from None
    return parse_string(data, path)


def load_net(net: Net | str | Path) -> Net:
    return net if isinstance(net, Net) else parse_file(net)


def generate_source(net: Net | str | Path, backend: str = "torch") -> str:
    """The generated Python source for a network, as text."""
    return render(load_net(net), backend)


def resolve_backend(backend: str, devices) -> str:
    """`auto` is triton for a model on CUDA, torch otherwise."""
    if backend == "auto":
        on_cuda = bool(devices) and all(str(d).startswith("cuda") for d in devices)
        return "triton" if on_cuda else "torch"
    if backend not in BACKENDS:
        raise NetError(f"unknown backend `{backend}`; expected auto, {', '.join(BACKENDS)}")
    return backend


def compile_net(net: Net | str | Path, backend: str = "auto", devices=None):
    """The network as a torch.nn.Module with its initial weights.

    devices: None keeps the module on the CPU, groups fused; one device moves it there;
    one device per group places group g on devices[g] (see netdsl/devices/placement.py).
    """
    net = load_net(net)
    backend = resolve_backend(backend, devices)
    module = load_source(render(net, backend), net.name)
    model = module.build()
    if devices:
        from .devices.placement import place
        model = place(net, model, module, list(devices), backend)
    return model
