"""netdsl: networks written as short text files, compiled to PyTorch modules.

    import netdsl
    net = netdsl.parse_file("nets/alexnet.net")        # the checked network (netdsl.Net)
    model = netdsl.compile_net("nets/alexnet.net")      # a torch.nn.Module
    source = netdsl.generate_source(net)                # the generated Python, as text

The pipeline, one wing a stage: language/ (parse.py text to sections, check.py sections to
the IR in ir.py, shapes inferred), codegen/ (render.py IR to source through
codegen_templates/, load.py source to module), devices/ (placement), runner/ (training and
evaluation), with datasets/, scale_invariance/ (the SI paper's experiment) and commands/
(one module a `netdsl` command) beside them; docs/layout.md draws the tree.
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
           "compile_net", "generate_source", "load_source", "load_net", "train", "evaluate"]


def parse_string(text: str | bytes, path: str = "<string>") -> Net:
    """Parse and check `.net` text; raise NetError pointing at the fault."""
    return check(parse_text(text, path))


def parse_file(path: str | Path) -> Net:
    """Parse and check a `.net` file; raise NetError(.path, .line, .col) pointing at the fault."""
    from .files import read_input

    return parse_string(read_input(path, "a .net file"), str(path))


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


def train(net: Net | str | Path, data: str | Path | None = None, out: str | Path | None = None, **options):
    """Train a network as `netdsl train` does, and return a TrainResult (its run folder, exit
    status and epochs' metrics; .best the best epoch's).

        result = netdsl.train("nets/fashion_tiny.net", data="data/fashion-mnist", out="runs/tiny",
                              epochs=2, workers=0)
        result.best["val_top1_err"]

    `options` are netdsl/runner/train.py's Options (epochs, batch, lr, schedule, precision, resume,
    seed, backend, devices, workers, compile); `schedule` may be written as in a .net file,
    "multistep(30, 60)". A user error raises NetError, as the command prints it."""
    from .language.values import schedule_of_text
    from .runner.model import flushing_denormals
    from .runner.train import Options
    from .runner.train import train as train_net

    if isinstance(options.get("schedule"), str):
        options["schedule"] = schedule_of_text(options["schedule"], "schedule")
    options = Options(data=None if data is None else str(data), out=None if out is None else str(out), **options)
    with flushing_denormals():
        return train_net(load_net(net), options)


def evaluate(net: Net | str | Path, checkpoint, data: str | Path, split: str = "val", **options):
    """Top-1 and top-5 error of a checkpoint (or a list of them: an ensemble) on data/<split>, as
    `netdsl eval` computes it; an Evaluation (.result["top1_err"], .members, .record(path)).

        found = netdsl.evaluate("nets/fashion_tiny.net", "runs/tiny/best.pt", "data/fashion-mnist", "test")

    `options`: test ("center" or "tencrop"; default the file's), batch, workers, backend, devices,
    compile, precision (default the file's [train] precision)."""
    from .runner.evaluate import evaluate_checkpoints, evaluating

    net = load_net(net)
    checkpoints = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    with evaluating(net, options.pop("precision", None), options.get("devices")):
        return evaluate_checkpoints(net, checkpoints, data, split, **options)
