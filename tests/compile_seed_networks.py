"""torch.compile of every seed network at full size on the triton backend, its kernels in Triton's interpreter.

    python tests/compile_seed_networks.py                 # all of nets/
    python tests/compile_seed_networks.py alexnet euronet

The suite traces each seed network at full size (test_precision.py: one graph, each kernel an operator,
nothing run) and runs the compiled kernels on si_alexnet's first layers at a reduced size; running every
network's kernels at full size in the interpreter takes too long for it (AlexNet's forward and backward
for one image: 85 s). This runs that check, test_precision.assert_compiles, on one image of each
network in float64: one graph with no break, and the compiled logits and gradients against eager's
within 1e-9 of each one's largest value. It prints each network's largest difference and its time, and
exits 1 if any network fails. docs/benchmarks.md holds its last output.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported, as tests/conftest.py sets it

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netdsl  # noqa: E402
from test_precision import NETS, assert_compiles  # noqa: E402


def check(name: str) -> bool:
    net = netdsl.parse_file(NETS / f"{name}.net")
    torch.manual_seed(0)
    x = torch.randn(1, *net.input_shape, dtype=torch.float64) * 50
    model = netdsl.compile_net(net, backend="triton").double()
    started = time.perf_counter()
    try:
        relative = assert_compiles(model, x, tolerance=1e-9)
    except AssertionError as failure:
        print(f"{name:16} FAILED {failure}", flush=True)
        return False
    worst = max(relative, key=relative.get)
    print(f"{name:16} one graph; logits {relative['logits']:.1e}, input gradient {relative['input gradient']:.1e}, "
          f"worst of {len(relative)} {relative[worst]:.1e} ({worst}); {time.perf_counter() - started:.0f} s", flush=True)
    return True


def main(names: list[str]) -> int:
    print(f"torch {torch.__version__}, triton interpreter, float64, one image, tolerance 1e-9")
    results = [check(name) for name in names or sorted(path.stem for path in NETS.glob("*.net"))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
