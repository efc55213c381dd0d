"""The torch backend against plain PyTorch written from the papers, on fresh random inputs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netdsl
from reference import PaperAlexNet, images, lrn_formula, relative_error, si_formula
from rounding import assert_rounded_once


def strong_weights(model: nn.Module) -> None:
    """He-scaled weights, so activations reach the range where LRN really divides."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                fan_in = p[0].numel()
                p.normal_(0, (2 / fan_in) ** 0.5)
            else:
                p.uniform_(-1, 1)


def test_alexnet_logits_match_the_paper_built_by_hand():
    compiled = netdsl.compile_net("nets/alexnet.net").eval()
    strong_weights(compiled)
    paper = PaperAlexNet().eval()
    paper.load_state_dict(compiled.state_dict())  # same keys and shapes, or this raises
    x = images(2, 3, 224, 224)
    with torch.no_grad():
        got, want = compiled(x), paper(x)
    assert got.shape == (2, 1000)
    assert relative_error(got, want) < 1e-5


def _dropout_net(rescale: str, p: float):
    return netdsl.compile_net(netdsl.parse_string(
        "[data]\ntype = data\nshape = 4x8x8\n\n"
        f"[drop]\ntype = dropout\np = {p}\nrescale = {rescale}\n\n[prob]\ntype = softmax\n"))


@pytest.mark.parametrize("rescale, p", [("test", 0.5), ("train", 0.5), ("test", 0.25), ("train", 0.4)])
def test_dropout_zeroes_units_and_rescales_as_its_key_says(rescale, p):
    """`test` is the paper's section 4.2: units kept as they are in training, all of them times
    1 - p at test. `train` is inverted dropout: kept units divided by 1 - p in training."""
    model = _dropout_net(rescale, p)
    x = torch.rand(500, 4, 8, 8) + 0.5
    flat = x.flatten(1)
    kept_as = flat if rescale == "test" else flat / (1 - p)
    out = model.train()(x)
    dropped = out == 0
    # scaling by 1 / (1 - p), then by 1 - p, rounds twice: within 2 ulps of float32
    torch.testing.assert_close(out[~dropped], kept_as[~dropped], rtol=2.5e-7, atol=0)
    assert abs(dropped.float().mean().item() - p) < 0.01     # 128,000 units: 4 sigma is 0.006
    at_test = model.eval()(x)
    assert torch.equal(at_test, flat * (1 - p) if rescale == "test" else flat)


def test_alexnet_state_dict_lists_every_weighted_layer_in_file_order():
    keys = list(netdsl.compile_net("nets/alexnet.net").state_dict())
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert keys == [f"{name}.{part}" for name in layers for part in ("weight", "bias")]


def test_initial_weights_follow_the_paper():
    model = netdsl.compile_net("nets/alexnet.net")
    for name in ("conv1", "conv3", "fc8"):
        assert torch.all(getattr(model, name).bias == 0)
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert torch.all(getattr(model, name).bias == 1)
    weight = model.fc6.weight
    assert abs(weight.mean().item()) < 1e-4 and abs(weight.std().item() - 0.01) < 1e-4


LRN_NET = """
[net]
groups = {groups}
[data]
type = data
shape = {c}x{h}x{w}
[conv]
type = conv
filters = {c}
size = 1
[norm]
type = lrn
size = {n}
k = {k}
alpha = {alpha}
beta = {beta}
[prob]
type = softmax
"""


def _lrn_module(groups, c, h, w, n, k=2.0, alpha=1e-4, beta=0.75, dtype=torch.float32):
    net = netdsl.parse_string(LRN_NET.format(groups=groups, c=c, h=h, w=w, n=n, k=k, alpha=alpha, beta=beta))
    return netdsl.load_source(netdsl.generate_source(net), "lrn_test")


def test_lrn_forward_and_backward_match_the_formula():
    module = _lrn_module(2, 14, 5, 3, 5, k=2.0, alpha=1e-3, beta=0.75)
    for groups in (1, 2):
        a = (torch.randn(3, 14, 5, 3, dtype=torch.float64) * 20).requires_grad_()
        ref_a = a.detach().clone().requires_grad_()
        got = module.local_response_norm(a, size=5, k=2.0, alpha=1e-3, beta=0.75, groups=groups)
        want = torch.cat([lrn_formula(p, 5, 2.0, 1e-3, 0.75) for p in ref_a.chunk(groups, 1)], 1)
        grad = torch.randn_like(got)
        got.backward(grad)
        want.backward(grad)
        assert relative_error(got, want) < 1e-12
        assert relative_error(a.grad, ref_a.grad) < 1e-12


def test_lrn_gradient_passes_gradcheck_with_other_constants():
    module = _lrn_module(1, 7, 3, 3, 3)
    a = (torch.randn(2, 7, 3, 3, dtype=torch.float64) * 3).requires_grad_()
    fn = lambda x: module.local_response_norm(x, size=3, k=1.0, alpha=0.05, beta=0.6)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a,))


def test_lrn_float32_against_formula_and_pytorch():
    module = _lrn_module(1, 96, 8, 8, 5)
    a = F.relu(torch.randn(4, 96, 8, 8) * 60)
    got = module.local_response_norm(a, size=5, k=2.0, alpha=1e-4, beta=0.75)
    assert relative_error(got, lrn_formula(a, 5, 2.0, 1e-4, 0.75)) < 1e-5
    # PyTorch's own divides alpha by the size: the same LRN needs alpha * size there.
    torch_lrn = F.local_response_norm(a, 5, alpha=1e-4 * 5, beta=0.75, k=2.0)
    assert relative_error(got, torch_lrn) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lrn_half_precision_is_the_float32_result_rounded_once(dtype):
    """Half-precision maps are normalized in float32: the output and the gradient are the float32 formula's,
    rounded once (computed in float16 instead, the denominator and its power would each round again)."""
    module = _lrn_module(1, 24, 6, 5, 5)
    a = (torch.randn(2, 24, 6, 5) * 40).to(dtype).requires_grad_()
    a32 = a.detach().float().requires_grad_()
    got, want = module.local_response_norm(a, 5, 2.0, 1e-3, 0.75), lrn_formula(a32, 5, 2.0, 1e-3, 0.75)
    assert got.dtype == dtype
    assert_rounded_once(got, want, "output")
    grad = torch.randn_like(got)
    assert_rounded_once(torch.autograd.grad(got, a, grad)[0], torch.autograd.grad(want, a32, grad.float())[0], "gradient")


SI_NET = """
[net]
groups = {groups}
[data]
type = data
shape = 3x{h}x{w}
[pre]
type = conv
filters = 4
size = 1
[si]
type = siconv
filters = 6
size = 3
stride = {stride}
pad = 1
connect = {connect}
scales = {scales}
neuron = relu
[prob]
type = softmax
"""


def test_si_layer_matches_the_formula_written_out():
    cases = [(1, "all", 1, "0.63, 1, 1.59", 17, 13), (2, "group", 1, "0.5, 1, 2", 12, 12),
             (2, "all", 2, "0.794, 1.26", 15, 11)]
    for groups, connect, stride, scales, h, w in cases:
        net = netdsl.parse_string(SI_NET.format(groups=groups, connect=connect, stride=stride,
                                                scales=scales, h=h, w=w))
        model = netdsl.compile_net(net)
        strong_weights(model)
        pre = nn.Conv2d(3, 4, 1)
        pre.load_state_dict({"weight": model.pre.weight, "bias": model.pre.bias})
        conv = nn.Conv2d(4, 6, 3, stride=stride, padding=1, groups=groups if connect == "group" else 1)
        conv.load_state_dict({"weight": model.si.weight, "bias": model.si.bias})
        x = images(2, 3, h, w).requires_grad_()
        factors = [float(s) for s in scales.split(",")]
        got = model(x)
        want = torch.flatten(si_formula(pre(x), conv, factors), 1)
        assert got.shape == want.shape == (2, 6 * net.layer("si").out_shape.h * net.layer("si").out_shape.w)
        assert relative_error(got, want) < 1e-5
        grad = torch.randn_like(got)
        got_grads = torch.autograd.grad(got, (x, model.si.weight), grad)
        want_grads = torch.autograd.grad(want, (x, conv.weight), grad)
        for g, r in zip(got_grads, want_grads):
            assert relative_error(g, r) < 1e-5


def test_si_layer_adds_no_parameters():
    plain = netdsl.parse_file("nets/mnist_scale_cnn.net")
    si = netdsl.parse_file("nets/mnist_scale_si.net")
    assert plain.params == si.params == 147_524
    a = netdsl.compile_net(plain).state_dict()
    b = netdsl.compile_net(si).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
