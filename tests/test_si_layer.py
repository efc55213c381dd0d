"""The torch backend's SI layer, si_conv2d as generated, against the contract's formula written out.

    pytest tests/test_si_layer.py

docs/language.md defines the layer as, for each scale s_i,
z_i = F.interpolate(conv(F.interpolate(x, scale_factor=s_i, **bl)), size=conv(x).shape[-2:], **bl)
with bl = dict(mode="bilinear", align_corners=False), and the output as the elementwise maximum over i;
reference.si_formula computes exactly that. The generated helper computes it on channels-last maps and
skips the identity resizes, so it must agree to rounding:
- outputs in float32 within TOLERANCE[float32] of the largest reference value (the conv, run on
  channels-last maps, sums in another order), and in bfloat16 within 2**-7 of it, a rounding or two;
- outputs and the gradients of input, weight and bias in float64 within TOLERANCE[float64]. A maximum
  of two maps within a rounding error of each other may go either way, and would send the gradient to
  another scale; in float64 such near-ties practically never occur, so gradients are compared there;
- on exact ties the gradient goes to the first scale only, as torch.stack(maps).max(dim=0) sends it.
Inputs are fresh random tensors each run (no fixed seed).
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netdsl
from reference import rel_err, si_formula

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 2 ** -7}  # of the largest value

ONE_SI_LAYER = """
[data]
type = data
shape = 1x9x9
[si]
type = siconv
filters = 2
size = 3
scales = 0.63, 1, 1.59
[prob]
type = softmax
"""


@pytest.fixture(scope="module")
def generated():
    """The module the torch backend generates for a network with an SI layer: si_conv2d and its helpers."""
    return netdsl.load_source(netdsl.generate_source(netdsl.parse_string(ONE_SI_LAYER), backend="torch"))


def formula(x, conv, scales):
    return si_formula(x, conv, scales, neuron=lambda z: z)


def si_conv2d(generated, x, conv, scales):
    """The generated helper, called as the generated forward calls it: the output size is the plain conv's."""
    with torch.no_grad():
        size = tuple(conv(x).shape[-2:])
    return generated.si_conv2d(x, conv, scales=scales, size=size)


# (N, C, H, W), conv (filters, size, stride, pad, groups), scales
CASES = {
    "odd_sizes": ((2, 3, 13, 11), (5, 3, 1, 1, 1), (0.63, 1.0, 1.59)),
    "mnist_scale_conv1": ((3, 1, 28, 28), (6, 7, 1, 0, 1), (1.0, 0.63, 0.7937, 1.2599, 1.5874, 2.0)),
    "mnist_scale_conv2": ((2, 6, 11, 11), (8, 5, 1, 0, 1), (1.0, 0.63, 0.7937, 1.2599, 1.5874, 2.0)),
    "no_scale_1_stride_2": ((2, 2, 12, 10), (4, 3, 2, 0, 1), (1.26, 0.794)),
    "grouped": ((2, 4, 10, 9), (6, 3, 1, 1, 2), (0.63, 1.0, 1.26)),
    "one_pixel_inputs": ((2, 2, 5, 5), (3, 3, 1, 1, 1), (0.25, 1.0, 2.0)),     # 0.25: a 1x1 map in, 1x1 out
    "one_pixel_conv_maps": ((2, 2, 6, 7), (3, 3, 1, 0, 1), (0.5, 1.0)),       # 0.5: 3x3 in, a 1x1 conv map
    "same_size_not_scale_1": ((1, 2, 13, 11), (3, 3, 1, 1, 1), (1.05, 1.0)),  # 1.05 keeps 13x11, yet resamples
    "same_height_only": ((1, 2, 10, 20), (3, 3, 1, 1, 1), (1.05, 1.0)),       # 1.05: 10x21, resized back to 10x20
    "one_scale": ((2, 3, 7, 8), (4, 3, 1, 0, 1), (1.0,)),
}


def case(name, dtype):
    shape, (filters, size, stride, pad, groups), scales = CASES[name]
    conv = nn.Conv2d(shape[1], filters, size, stride=stride, padding=pad, groups=groups).to(dtype)
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)  # not PyTorch's small default: a bias that matters
    return torch.randn(shape, dtype=dtype), conv, scales


@pytest.mark.parametrize("name", CASES)
def test_output_equals_the_formula_in_float32(generated, name):
    x, conv, scales = case(name, torch.float32)
    expected = formula(x, conv, scales)
    actual = si_conv2d(generated, x, conv, scales)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    assert rel_err(actual, expected) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("name", CASES)
def test_output_and_gradients_equal_the_formula_in_float64(generated, name):
    x, conv, scales = case(name, torch.float64)
    x.requires_grad_()
    expected = formula(x, conv, scales)
    actual = si_conv2d(generated, x, conv, scales)
    assert rel_err(actual, expected) < TOLERANCE[torch.float64]
    grad = torch.randn_like(expected)
    wrt = (x, conv.weight, conv.bias)
    for what, a, e in zip(("input", "weight", "bias"), torch.autograd.grad(actual, wrt, grad),
                          torch.autograd.grad(expected, wrt, grad)):
        assert rel_err(a, e) < TOLERANCE[torch.float64], f"gradient of the {what}"


def test_bfloat16_follows_the_input(generated):
    """The resizes run in the maps' dtype, as F.interpolate's do: a bfloat16 layer stays bfloat16."""
    x, conv, scales = case("odd_sizes", torch.bfloat16)
    actual = si_conv2d(generated, x, conv, scales)
    assert actual.dtype == torch.bfloat16
    assert rel_err(actual.float(), formula(x, conv, scales).float()) < TOLERANCE[torch.bfloat16]


def tied(scales):
    """A zero input and a 1x1 conv with bias 1: every scale's map is exactly 1 everywhere (the resizes of
    these sizes weigh by 1/4, 1/2, 3/4, exact in binary), so every output is a tie of all the scales."""
    conv = nn.Conv2d(3, 4, 1).double()
    with torch.no_grad():
        conv.bias.fill_(1.0)
    x = torch.zeros(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    maps = [F.interpolate(conv(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)),
                          size=(8, 8), mode="bilinear", align_corners=False) for s in scales]
    assert all(torch.equal(z, torch.ones_like(z)) for z in maps)
    return x, conv


@pytest.mark.parametrize("scales", [(2.0, 1.0, 0.5), (0.5, 2.0, 1.0)])
def test_ties_send_the_gradient_to_the_first_scale(generated, scales):
    """On ties the input's gradient is that of the first scale's path alone, as with torch.max(dim=0); a
    gradient split among the tied scales (torch.maximum's) or sent to another one differs."""
    x, conv = tied(scales)
    grad = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    actual = torch.autograd.grad(si_conv2d(generated, x, conv, scales), x, grad)[0]
    expected = torch.autograd.grad(formula(x, conv, scales), x, grad)[0]
    assert torch.allclose(actual, expected, rtol=0, atol=1e-12)
    first, *others = [torch.autograd.grad(formula(x, conv, (s,)), x, grad)[0] for s in scales]
    assert torch.allclose(actual, first, rtol=0, atol=1e-12)
    assert all(not torch.allclose(actual, other, rtol=0, atol=1e-3) for other in others)
