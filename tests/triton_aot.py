"""A network's generated Triton kernels through Triton's real compiler, for a GPU this machine need not have.

    python tests/triton_aot.py nets/alexnet.net nets/si_alexnet.net   # a line per kernel: grid, registers, ...
    python tests/triton_aot.py --json nets/alexnet.net                  # the same as JSON (tests/test_triton_compile.py)
    python tests/triton_aot.py --dtype bfloat16 nets/si_alexnet.net     # a model and input in bfloat16

The interpreter (TRITON_INTERPRET=1, how the other tests run the kernels) executes them in numpy and
accepts code that the compiler would reject or compile badly. Here every kernel a network launches
goes through Triton's own pipeline (TTIR, TTGIR, LLVM, PTX, ptxas) down to the cubin of an H100 or
H200 (sm_90), with no GPU and no CUDA driver:

1. load the generated module with real @triton.jit kernels;
2. build the model on the meta device (no memory, no arithmetic) and run a forward and a backward at
   full batch size with every kernel swapped for a recorder, which keeps each launch's grid, arguments
   and options instead of running it, and the layer it ran for (the kernels are one per operation, so
   each layer's function, `lrn_rnorm1`, ..., is watched to say which layer's forward or backward runs);
   the PyTorch operators that launch the kernels run their own code on the meta device, not the fake
   form torch.compile traces with;
3. compile each recorded launch as Triton's launcher would: the same argument types (a tuple of
   tensors as a tuple of pointers), 16-byte-aligned pointers (as PyTorch allocates them), integers
   divisible by 16 marked so, the layer's tl.constexpr arguments, the same num_warps and
   enable_fp_fusion;
4. read the cubin's resource use with cuobjdump (shipped with Triton): registers a thread, and the
   local memory and stack that register spills would need.

It runs as a process of its own: whether triton.language's own functions (tl.zeros, ...) are
compiled or interpreted is fixed when Triton is first imported, so a process cannot do both.
"""
from __future__ import annotations

import os

os.environ.pop("TRITON_INTERPRET", None)  # before Triton is imported: real kernels, not the interpreter's

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction
from torch._library.custom_ops import CustomOpDef

import netdsl
from netdsl.language.ir import Net
from netdsl.layers.registry import REGISTRY
from netdsl.codegen.load import load_source

HOPPER = GPUTarget("cuda", 90, 32)  # H100 and H200: compute capability 9.0, 32-thread warps
POINTER_TYPES = {torch.float32: "*fp32", torch.float64: "*fp64", torch.float16: "*fp16", torch.bfloat16: "*bf16",
                 torch.uint8: "*u8", torch.int32: "*i32"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
ALIGNED = [["tt.divisibility", 16]]  # what Triton's launcher marks on a pointer or integer divisible by 16


@dataclass(frozen=True)
class Launch:
    """One kernel launch as the generated code made it, for `layer`."""
    layer: str
    kernel: JITFunction
    grid: tuple[int, ...]
    args: tuple
    kwargs: dict   # the kernel's tl.constexpr arguments and the launch's options (num_warps, ...)

    @property
    def constexprs(self) -> dict:
        return {name: value for name, value in self.kwargs.items() if name in self.kernel.arg_names}

    @property
    def options(self) -> dict:
        return {name: value for name, value in self.kwargs.items() if name not in self.kernel.arg_names}

    @property
    def name(self) -> str:
        return self.kernel.__name__


@dataclass(frozen=True)
class Compiled:
    """A kernel compiled for the target, and what its cubin needs of each thread."""
    ttir: str      # Triton's IR, before any lowering
    ptx: str
    shared: int    # bytes of shared memory a program uses
    registers: int
    local: int     # bytes of local memory a thread uses: register spills, when not 0
    stack: int


def launches(net: Net, batch: int, dtype: torch.dtype = torch.float32) -> list[Launch]:
    """Every kernel launch of one training step (forward, then backward) of `net` at `batch` images,
    with the model and its input in `dtype`."""
    module = load_source(netdsl.generate_source(net, backend="triton"), net.name)
    kernels = {name: value for name, value in vars(module).items() if isinstance(value, JITFunction)}
    recorded: list[Launch] = []
    running = [""]  # the layer whose kernels launch now

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: recorded.append(Launch(running[0], self.kernel, tuple(grid), args, kwargs))

    def watched(layer: str, function):
        """The layer's function, noting the layer while its forward runs and when autograd starts its backward."""
        def run(*args):
            running[0] = layer
            out = function(*args)
            out.grad_fn.register_prehook(lambda grad_outputs: running.__setitem__(0, layer))
            return out
        return run

    layers = {f"{template}_{layer.name}": layer.name for layer in net.layers for template in REGISTRY[layer.type].kernels_of(layer)}
    bindings = {name: vars(module)[name] for name in layers}
    for op in vars(module).values():
        if isinstance(op, CustomOpDef):  # the operator's own code (_init_fn), where it launches the kernels
            op.register_kernel("meta", op._init_fn)
    vars(module).update({name: Recorder(kernel) for name, kernel in kernels.items()})
    vars(module).update({name: watched(layers[name], function) for name, function in bindings.items()})
    try:
        with torch.device("meta"):
            model = module.build().train().to(dtype)
            x = torch.randn(batch, *net.input_shape, dtype=dtype, requires_grad=True)
            logits = model(x)
            torch.autograd.grad(logits, x, torch.ones_like(logits))
    finally:
        vars(module).update(kernels)  # the kernels call their helpers through the module's globals
        vars(module).update(bindings)
    return recorded


def signature(launch: Launch) -> tuple[dict[str, str | tuple], dict[str, Any], dict[tuple[int, ...], list]]:
    """The argument types, tl.constexpr values and alignment attributes Triton's launcher would give
    these arguments (an attribute's key is the argument's path: (index,), or (index, i) in a tuple)."""
    types, attributes = {}, {}

    def argument_type(name: str, path: tuple[int, ...], value) -> str | tuple:
        if isinstance(value, tuple):
            return tuple(argument_type(name, (*path, i), item) for i, item in enumerate(value))
        if isinstance(value, torch.Tensor):
            attributes[path] = ALIGNED
            return POINTER_TYPES[value.dtype]
        assert isinstance(value, int) and -2**31 <= value < 2**31, f"{launch.name}: argument {name} = {value!r}"
        if value % 16 == 0:
            attributes[path] = ALIGNED
        return "i32"

    constexprs = launch.constexprs
    for index, param in enumerate(launch.kernel.params):
        if param.is_constexpr:
            assert param.name in constexprs, f"{launch.name}: no value for tl.constexpr {param.name}"
            types[param.name] = "constexpr"
        else:
            types[param.name] = argument_type(param.name, (index,), launch.args[index])
    return types, constexprs, attributes


def compile_launch(launch: Launch, target: GPUTarget = HOPPER) -> Compiled:
    """The launch compiled to a cubin for `target`, with the cubin's resource use."""
    types, constexprs, attributes = signature(launch)
    kernel = triton.compile(ASTSource(launch.kernel, types, constexprs, attributes), target=target,
                            options=launch.options)
    usage = resource_usage(kernel.asm["cubin"])
    return Compiled(kernel.asm["ttir"], kernel.asm["ptx"], kernel.metadata.shared,
                    usage["REG"], usage["LOCAL"], usage["STACK"])


def resource_usage(cubin: bytes) -> dict[str, int]:
    """cuobjdump's 'REG:40 STACK:0 SHARED:0 LOCAL:0 ...' line for the cubin's one kernel, as numbers."""
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        report = subprocess.run([str(cuobjdump), "--dump-resource-usage", file.name],
                                capture_output=True, text=True, check=True, timeout=300).stdout
    line = next(line for line in report.splitlines() if "REG:" in line)
    return {key: int(value) for key, value in re.findall(r"(\w+):(\d+)", line)}


def compile_net_kernels(net: Net, batch: int, dtype: torch.dtype = torch.float32,
                        done: dict | None = None) -> list[tuple[Launch, Compiled]]:
    """Each kernel `net` launches in a training step, compiled once per layer (a layer's forward and backward
    are two) and once per specialisation: layers with the same constants share a compile, and `done` keeps
    what was compiled across networks (alexnet's LRN kernels are si_alexnet's too)."""
    done = {} if done is None else done
    compiled = {}
    for launch in launches(net, batch, dtype):
        types, constexprs, attributes = signature(launch)
        key = (launch.kernel.src, str(types), str(sorted(constexprs.items())), str(attributes),
               str(sorted(launch.options.items())))
        if key not in done:
            done[key] = compile_launch(launch)
        compiled.setdefault((launch.layer, launch.name), (launch, done[key]))
    return list(compiled.values())


def report(launch: Launch, compiled: Compiled) -> dict:
    """What tests/test_triton_compile.py checks of one kernel launched for one layer."""
    return {"layer": launch.layer, "kernel": launch.name, "grid": launch.grid,
            "num_warps": launch.options.get("num_warps", 4),
            "registers": compiled.registers, "shared": compiled.shared, "local": compiled.local,
            "stack": compiled.stack, "libdevice": "tt.extern_elementwise" in compiled.ttir,
            "target": re.search(r"\.target (\w+)", compiled.ptx).group(1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="the model's and input's dtype (float32)")
    parser.add_argument("--json", action="store_true", help="print {net file: [kernel, ...]} as JSON")
    args = parser.parse_args()
    done = {}
    dtype = DTYPES[args.dtype]
    reports = {str(path): [report(*kernel) for kernel in compile_net_kernels(netdsl.parse_file(path), args.batch, dtype, done)]
               for path in args.nets}
    if args.json:
        print(json.dumps(reports))
        return 0
    print(f"triton {triton.__version__}, target sm_{HOPPER.arch}, batch {args.batch}, {args.dtype}")
    print(f"{'layer':10s} {'kernel':28s} {'grid':>15s} {'warps':>5s} {'registers':>9s} {'shared':>6s} {'spills':>6s}")
    for path, kernels in reports.items():
        print(f"{path}:")
        for k in kernels:
            print(f"  {k['layer']:8s} {k['kernel']:28s} {str(tuple(k['grid'])):>15s} {k['num_warps']:5d} "
                  f"{k['registers']:9d} {k['shared']:6d} {k['local'] + k['stack']:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
