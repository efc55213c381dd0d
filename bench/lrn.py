"""LRN forward+backward: netdsl's torch backend against torch.nn.functional.local_response_norm.

    python bench/lrn.py                 # 32x96x55x55 float32, the size of AlexNet's rnorm1 at batch 32
    python bench/lrn.py --repeats 15

Both compute the same thing (PyTorch's divides alpha by the size, so it is given alpha * size);
the outputs are checked equal first. Timed side by side in one process, alternating, and the
median of the repeats reported with the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import netdsl

NET = """
[data]
type = data
shape = {c}x{h}x{w}
[norm]
type = lrn
[prob]
type = softmax
"""


def netdsl_lrn(shape):
    n, c, h, w = shape
    module = netdsl.load_source(netdsl.generate_source(netdsl.parse_string(NET.format(c=c, h=h, w=w))))
    return lambda x: module.local_response_norm(x, size=5, k=2.0, alpha=1e-4, beta=0.75)


def pytorch_lrn(x):
    return F.local_response_norm(x, 5, alpha=1e-4 * 5, beta=0.75, k=2.0)


def time_forward_backward(fn, x, grad) -> float:
    x = x.detach().requires_grad_()
    start = time.perf_counter()
    fn(x).backward(grad)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="32x96x55x55")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split("x"))
    torch.manual_seed(0)
    x = torch.relu(torch.randn(shape) * 50)  # post-ReLU activations, the size where LRN divides
    grad = torch.randn(shape)
    ours = netdsl_lrn(shape)
    assert torch.allclose(ours(x), pytorch_lrn(x), rtol=1e-5, atol=1e-6)
    times = {"netdsl": [], "pytorch": []}
    for _ in range(2):  # warm-up
        time_forward_backward(ours, x, grad), time_forward_backward(pytorch_lrn, x, grad)
    for _ in range(args.repeats):
        times["netdsl"].append(time_forward_backward(ours, x, grad))
        times["pytorch"].append(time_forward_backward(pytorch_lrn, x, grad))
    ours_ms = statistics.median(times["netdsl"]) * 1e3
    theirs_ms = statistics.median(times["pytorch"]) * 1e3
    print(f"LRN forward+backward, {args.shape} float32, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"  netdsl torch backend          {ours_ms:8.1f} ms")
    print(f"  F.local_response_norm         {theirs_ms:8.1f} ms")
    print(f"  speed-up                      {theirs_ms / ours_ms:8.2f}x")


if __name__ == "__main__":
    main()
