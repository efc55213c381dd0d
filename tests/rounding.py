"""What "computed in float32, rounded once" allows of a float16 or bfloat16 result.

A kernel that computes in float32 and stores float16 makes each element the float32 value rounded
to the nearest float16: within half a unit in the last place (ulp) of it. One that computes in
float16, or sums in float16, rounds at every step and drifts past that bound.
"""
import torch


def half_ulp(expected: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Half the spacing of `dtype` numbers at each element of the float32 tensor `expected`."""
    info = torch.finfo(dtype)
    _, exponent = torch.frexp(expected)  # expected = m * 2**exponent, 0.5 <= |m| < 1
    # eps * 2**(exponent - 1) is the spacing at |expected|; below the smallest normal it stays eps * tiny
    spacing = torch.ldexp(torch.full_like(expected, info.eps), exponent - 1).clamp_min(info.eps * info.tiny)
    return spacing / 2


def assert_rounded_once(actual: torch.Tensor, expected: torch.Tensor, what: str, slack: float = 1e-5) -> None:
    """Every element of `actual` (float16 or bfloat16) is the float32 `expected` rounded once: within half an
    ulp, plus `slack` of the largest element, as far as two float32 computations of it may differ (more than
    its own size where terms cancel), which can round the other way near a midpoint."""
    assert actual.dtype in (torch.float16, torch.bfloat16), what
    expected = expected.detach().float()
    bound = half_ulp(expected, actual.dtype) + slack * expected.abs().max()
    worst = ((actual.detach().float() - expected).abs() / bound).max().item()
    assert worst <= 1, f"{what}: off by {worst:.2f} times the bound of one rounding"  # NaN fails too
