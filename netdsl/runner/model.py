"""The model on its devices, as training and evaluation both build it: the devices checked and
chosen, the network compiled onto them, a checkpoint's weights loaded, the loader workers counted.

    check_devices(["cuda:0"], "auto")             # NetError before anything runs, where it cannot
    model, device = build_model(net, "auto", default_devices(None))
    load_weights(model, checkpoint.load(path), path)
"""
from __future__ import annotations

import contextlib
import os

import torch

from ..argtypes import usable_cores
from ..errors import NetError


def default_workers() -> int:
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's processes on this machine
    return max(1, min(4, usable_cores() // processes))


def check_devices(devices, backend: str) -> None:
    """Refuse, before anything runs or is written, a device this machine lacks, and the triton backend
    where its kernels cannot run: they need CUDA, or Triton's interpreter (TRITON_INTERPRET=1)."""
    import netdsl

    for name in devices or []:
        device = torch.device(name)
        if device.type != "cuda":
            continue
        if not torch.cuda.is_available():
            raise NetError(f"--devices {name}: this machine has no CUDA GPU that PyTorch can use")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise NetError(f"--devices {name}: this machine has {count} CUDA GPU{'s' if count > 1 else ''}, "
                           f"cuda:0 to cuda:{count - 1}")
    # Where `auto` would not take triton, the model is not all on CUDA
    if backend == "triton" and netdsl.resolve_backend("auto", default_devices(devices)) != "triton":
        from triton import knobs  # what Triton itself read from TRITON_INTERPRET

        if not knobs.runtime.interpret:
            raise NetError("--backend triton runs its kernels on CUDA GPUs, and this run would use the CPU; "
                           "use --backend torch (or auto), or set TRITON_INTERPRET=1 to run the kernels in "
                           "Triton's interpreter, slowly")


def check_layers_run(net, devices, processes: int) -> None:
    """Refuse, before anything runs, a layer its type says cannot run on these devices in this many
    processes (LayerType.cannot_run), pointing at it."""
    from ..layers.registry import REGISTRY

    on_cuda = bool(devices) and all(torch.device(d).type == "cuda" for d in devices)
    for layer in net.layers:
        if (why := REGISTRY[layer.type].cannot_run(layer, on_cuda, processes)) is not None:
            raise NetError(f"[{layer.name}] {why}", net.path, layer.line, layer.col)


def default_devices(devices):
    """--devices, else the first GPU if there is one, else None (the CPU)."""
    if devices is None and torch.cuda.is_available():
        return ["cuda:0"]
    return devices


@contextlib.contextmanager
def flushing_denormals():
    """Denormal floats flushed to zero while a command runs: x86 CPUs compute with them 10 to
    100 times slower, and a saturated softmax fills the gradients with them (a tiny network's
    steps went from 0.7 ms to 25 ms here). The default comes back afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def build_model(net, backend: str, devices):
    """The compiled network and the device its input goes to."""
    import netdsl

    model = netdsl.compile_net(net, backend=backend, devices=devices)
    return model, torch.device(devices[0] if devices else "cpu")


def load_weights(model, state: dict, where: str) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise NetError(f"the checkpoint does not fit this network: {first[0].strip()}", where) from None
