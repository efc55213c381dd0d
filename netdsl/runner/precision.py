"""Precision and compilation: what `--precision` (the [train] `precision` key) and `--compile`
do to a run of `netdsl train` or `netdsl eval`.

    with autocast("bf16", devices):        # the forward in bfloat16 where autocast takes it
        logits = model(x)
    scaler = grad_scaler("fp16", devices)  # torch.amp.GradScaler, enabled for fp16 alone
    model = compiled(model, True)          # torch.compile(model)

`fp32` is plain float32. `bf16` and `fp16` run the forward under torch.autocast for the type
of each device the model is on (both a cpu and a cuda autocast where a network's groups are
spread over the two): convolutions and matrix products in the lower precision, what needs the
range in float32, as autocast chooses. The parameters stay float32, the master weights: their
gradients are float32, the optimizer (netdsl/runner/optim.py) updates them in float32 and a
checkpoint holds float32 tensors whatever the precision it was trained in, so it resumes or
evaluates in any precision. The loss is taken on the logits in float32.

fp16's range stops at 65504 and its smallest normal number is 6e-5, so small gradients vanish:
the gradient scaler multiplies the loss by a scale (2^16 at first) before the backward and
divides the gradients by it before the update; a step whose gradients overflow (inf or NaN) is
skipped, the weights untouched, and the scale halved; after 2000 steps without one the scale
doubles. The scaler's state goes into the checkpoint, so a resumed run goes on exactly. bf16
has float32's range and needs no scaler.

fp16 on the CPU is allowed, and works (torch 2.13's CPU autocast takes float16; the tests train in
it), but PyTorch's float16 convolution backward takes a slow path there (98% of fashion_tiny's
step): an AlexNet training step was 30 to 45 times slower than in fp32 on a Xeon with AVX512-FP16
(docs/benchmarks.md), so `netdsl train` warns. bf16 is the CPU's half precision.

`--compile` runs the model through torch.compile (inductor: on the CPU it needs a C++ compiler).
The model itself stays as it is, so its state dict, and a checkpoint, have the usual names.
Every seed network compiles into one graph on the torch backend, and so do the triton backend's
kernels, PyTorch operators to the compiler (codegen_templates/module.py.j2; tests/test_precision.py).
A network spread over several devices (netdsl/devices/placement.py) compiles with graph breaks
where each layer's code is evaluated for a group, and gives eager's logits and gradients (tested).
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def device_types(devices) -> list[str]:
    """The device types of a run's devices (None: the CPU), in the order first met."""
    return list(dict.fromkeys(torch.device(name).type for name in devices or ["cpu"]))


def autocast(precision: str, devices) -> contextlib.AbstractContextManager:
    """The forward's context: nothing for fp32, else torch.autocast to `precision` on every device type."""
    if precision == "fp32":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for kind in device_types(devices):
        stack.enter_context(torch.autocast(device_type=kind, dtype=DTYPES[precision]))
    return stack


def grad_scaler(precision: str, devices) -> torch.amp.GradScaler:
    """The loss scaler: enabled for fp16, on the device the loss is computed on (the first);
    disabled, it leaves the loss and the step as they are."""
    return torch.amp.GradScaler(device_types(devices)[0], enabled=precision == "fp16")


def cpu_fp16_warning(precision: str, devices) -> str | None:
    """The warning line for training in fp16 on the CPU; None elsewhere."""
    if precision == "fp16" and "cpu" in device_types(devices):
        return ("warning: fp16 on the CPU: PyTorch's float16 convolution backward takes a slow path there (an "
                "AlexNet step 30 to 45 times slower than fp32, docs/benchmarks.md); bf16 is the CPU's half precision")
    return None


def compiled(model: torch.nn.Module, compile: bool) -> torch.nn.Module:
    """torch.compile(model) for --compile, else the model."""
    return torch.compile(model) if compile else model
