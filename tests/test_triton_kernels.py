"""The triton backend against the torch backend, with the kernels run by Triton's interpreter on the CPU.

    pytest tests/test_triton_kernels.py

TRITON_INTERPRET=1, set by conftest.py before triton is imported, runs the generated kernels in numpy,
so no GPU is needed. Inputs are fresh random tensors each run (no fixed seed). While a test runs,
torch.empty and torch.empty_like hand out tensors full of NaN (bytes: 255), so an output element a
kernel fails to write shows up as a mismatch. Sizes are small and odd on purpose: channel counts
that are not powers of two, maps that do not fill the last block, batch 1, padding, 1 to 3 groups.
"""
import contextlib
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import netdsl
from netdsl.codegen.load import load_source
from kernel_names import expected_kernels
from reference import rel_err
from rounding import assert_rounded_once

NETS = Path(__file__).resolve().parent.parent / "nets"
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}  # relative to the largest reference value


@pytest.fixture(autouse=True)
def poisoned(monkeypatch):
    """Make torch.empty and torch.empty_like return garbage (NaN, or the largest integer) and count them."""
    made = []
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(t):
        made.append(t)
        return t.fill_(float("nan") if t.is_floating_point() else torch.iinfo(t.dtype).max)

    monkeypatch.setattr(torch, "empty", lambda *args, **kw: poison(real_empty(*args, **kw)))
    monkeypatch.setattr(torch, "empty_like", lambda *args, **kw: poison(real_empty_like(*args, **kw)))
    return made


def both_backends(text, dtype=torch.float32):
    """The network in `text` compiled with the torch and the triton backend, sharing the same weights."""
    net = netdsl.parse_string(text)
    reference = netdsl.compile_net(net, backend="torch").eval().to(dtype)  # eval: no dropout
    model = netdsl.compile_net(net, backend="triton").eval().to(dtype)
    model.load_state_dict(reference.state_dict())
    return net, reference, model


def assert_same_as_torch(text, batch, dtype=torch.float32, scale=1.0, gradients=True):
    """Logits, and unless told otherwise the input's and every parameter's gradients, agree between backends.

    A max (max-pool, SI warp-max) between two values within a rounding error of each other may pick
    either; where the backends round differently (the LRN's power, the order of a bilinear sum) that
    sends a gradient elsewhere. Gradients through such layers are therefore compared in float64,
    where such near-ties practically never occur.
    """
    tolerance = TOLERANCE[dtype]
    net, reference, model = both_backends(text, dtype)
    x = (torch.randn(batch, *net.input_shape, dtype=dtype) * scale).requires_grad_()
    expected, actual = reference(x), model(x)
    assert rel_err(actual, expected) < tolerance, "logits"
    if not gradients:
        return
    grad = torch.randn_like(expected)
    inputs = [x, *reference.parameters()]
    expected_grads = torch.autograd.grad(expected, inputs, grad)
    actual_grads = torch.autograd.grad(actual, [x, *model.parameters()], grad)
    names = ["input"] + [name for name, _ in reference.named_parameters()]
    for name, a, e in zip(names, actual_grads, expected_grads):
        assert rel_err(a, e) < tolerance, f"gradient of {name}"


def one_layer_net(shape, layer, groups=1):
    """A network of one data layer of `shape`, the `layer` section given, and a softmax."""
    return f"""
[net]
name = one_layer
groups = {groups}
[data]
type = data
shape = {shape}
[layer]
{layer}
[prob]
type = softmax
"""


# ---- LRN ----

@pytest.mark.parametrize("shape, groups, size, batch", [
    ("7x5x9", 1, 5, 1),       # 7 channels, one chunk, maps well inside one block
    ("38x23x25", 2, 5, 2),    # 19 channels a group: a chunk of 16 and a partial one; 575 pixels, the last block partial
    ("9x4x3", 3, 3, 2),       # three groups of 3 channels
    ("6x3x5", 1, 9, 1),       # a window wider than the group
    ("5x6x2", 1, 1, 2),       # a window of one channel
])
def test_lrn_matches_torch(poisoned, shape, groups, size, batch):
    layer = f"type = lrn\nsize = {size}\nk = 1.5\nalpha = 0.02\nbeta = 0.75"
    assert_same_as_torch(one_layer_net(shape, layer, groups), batch, scale=3.0)
    assert poisoned, "the kernels' outputs were not allocated through torch.empty*"


def test_lrn_alexnet_constants(poisoned):
    """The paper's k = 2, alpha = 1e-4, on values the size of conv outputs."""
    layer = "type = lrn\nsize = 5\nk = 2\nalpha = 1e-4\nbeta = 0.75"
    assert_same_as_torch(one_layer_net("20x7x7", layer, groups=2), batch=2, scale=30.0)


# ---- max-pooling ----

@pytest.mark.parametrize("shape, pool, batch", [
    ("3x13x11", "size = 3\nstride = 2", 2),                 # overlapping, AlexNet's
    ("5x12x12", "size = 3\nstride = 2\npad = 1\nround = ceil", 1),
    ("4x9x10", "size = 2\nstride = 2\nround = ceil", 2),    # ceil: the last window hangs over the edge
    ("3x10x10", "size = 3\nstride = 3\npad = 1", 2),
    ("2x7x7", "size = 3\nstride = 1\npad = 1", 1),          # every input in nine windows
    ("2x8x9", "size = 2\nstride = 3", 2),                   # gaps: some inputs in no window
    ("6x33x35", "size = 3\nstride = 2", 2),                 # several blocks, the last one partial
])
def test_maxpool_matches_torch(poisoned, shape, pool, batch):
    assert_same_as_torch(one_layer_net(shape, "type = maxpool\n" + pool), batch)
    assert poisoned


@pytest.mark.parametrize("fill", ["ties", "minus_inf"])
def test_maxpool_ties_and_infinities(fill):
    """Many equal values (ReLU zeros, small integers) or -inf: the same winners as PyTorch, to the bit."""
    layer = "type = maxpool\nsize = 3\nstride = 2\npad = 1"
    _, reference, model = both_backends(one_layer_net("4x11x12", layer))
    x = torch.randint(0, 3, (2, 4, 11, 12)).float() * torch.randint(0, 2, (2, 4, 11, 12))
    if fill == "minus_inf":
        x = torch.where(torch.rand_like(x) < 0.7, float("-inf"), torch.randn_like(x))
    x.requires_grad_()
    expected, actual = reference(x), model(x)
    assert torch.equal(actual, expected)
    grad = torch.randn_like(expected)
    assert torch.equal(torch.autograd.grad(actual, x, grad)[0], torch.autograd.grad(expected, x, grad)[0])


# ---- SI warp-max ----

def si_net(shape, scales, extra="", groups=1):
    return one_layer_net(shape, f"type = siconv\nfilters = 6\nsize = 3\nscales = {scales}\n{extra}", groups)


@pytest.mark.parametrize("shape, scales, extra, batch", [
    ("2x11x13", "0.63, 1, 1.587", "", 2),        # scale 1 kept as it is, one smaller, one larger
    ("3x9x9", "0.7, 1.5, 2", "pad = 1", 1),      # no scale 1: every map warped
    ("1x12x10", "1.26, 1, 0.794", "stride = 2", 2),
    ("2x20x21", "0.63, 0.794, 1, 1.26, 1.587, 2", "pad = 1", 2),  # the paper's six scales; 2 * 6 * 400 outputs
    ("2x7x8", "1", "", 1),                       # one scale: a plain conv
])
def test_si_conv_matches_torch(poisoned, shape, scales, extra, batch):
    assert_same_as_torch(si_net(shape, scales, extra), batch, gradients=False)
    assert_same_as_torch(si_net(shape, scales, extra), batch, dtype=torch.float64)
    assert poisoned


def test_si_conv_grouped():
    assert_same_as_torch(si_net("4x10x9", "0.63, 1, 1.26", "connect = group", groups=2), 2, torch.float64)


def warp_max(module, layer):
    """The generated module's warp-max alone, on conv maps given: its si_warp_max operator with the layer's
    constants (those its line binds to si_conv2d, but the scales); the output, not the winners."""
    constants = {name: value for name, value in vars(module)[f"si_warp_max_{layer.name}"].keywords.items()
                 if name != "scales"}
    return lambda *zs: module.si_warp_max(list(zs), **constants)[0]


def test_si_warp_max_kernel_alone():
    """The warp-max in float32 on random conv maps, mostly zero so that many outputs tie exactly: the
    maximum of the warped maps, the first scale on ties, the gradient through the winner's bilinear weights."""
    net = netdsl.parse_string(si_net("2x15x13", "0.63, 0.794, 1, 1.26, 1.587, 2", "pad = 1"))
    layer = net.layer("layer")
    module = load_source(netdsl.generate_source(net, backend="triton"), net.name)
    out_size = (layer.out_shape.h, layer.out_shape.w)
    zs = [F.relu(torch.randn(2, 5, ch, cw) - 1).requires_grad_() for _, _, _, ch, cw in layer.derived["scale_maps"]]
    warped = torch.stack([F.interpolate(z, size=out_size, mode="bilinear", align_corners=False) for z in zs])
    expected = warped.max(dim=0).values
    actual = warp_max(module, layer)(*zs)
    assert rel_err(actual, expected) < TOLERANCE[torch.float32]
    # Where the two largest differ by a rounding error either may win, so those outputs carry no gradient
    top2 = warped.detach().topk(2, dim=0).values
    near_tie = (top2[0] - top2[1] > 0) & (top2[0] - top2[1] < 1e-5 * top2[0].abs())
    grad = torch.randn_like(expected).masked_fill(near_tie, 0.0)
    for z, a, e in zip(zs, torch.autograd.grad(actual, zs, grad), torch.autograd.grad(expected, zs, grad)):
        assert rel_err(a, e) < TOLERANCE[torch.float32], f"gradient of the {tuple(z.shape[2:])} map"


# ---- half precision ----
# float16 maps go through the kernels as PyTorch treats them: read, computed on in float32, each result
# rounded once to float16. The reference is the torch backend (or eager PyTorch) in float32 on the same
# values, so each element must be within half a float16 ulp of it. bfloat16, which the interpreter cannot
# compute with, takes the same code path; test_triton_compile.py compiles it for the GPU.

@pytest.mark.parametrize("shape, layer, groups", [
    ("38x23x25", "type = lrn\nsize = 5\nk = 1.5\nalpha = 0.02\nbeta = 0.75", 1),
    ("9x4x3", "type = lrn\nsize = 3\nk = 2\nalpha = 1e-4\nbeta = 0.75", 3),
    ("5x12x12", "type = maxpool\nsize = 3\nstride = 2\npad = 1\nround = ceil", 1),
    ("2x7x7", "type = maxpool\nsize = 3\nstride = 1\npad = 1", 1),   # every input's gradient a sum of up to nine
])
def test_half_precision_rounds_once(poisoned, shape, layer, groups):
    net, reference, model = both_backends(one_layer_net(shape, layer, groups))
    model.half()
    x = (torch.randn(2, *net.input_shape) * 30).half().requires_grad_()
    x32 = x.detach().float().requires_grad_()
    actual, expected = model(x), reference(x32)
    assert actual.dtype == torch.float16
    assert_rounded_once(actual, expected, "output")
    grad = torch.randn_like(actual)
    assert_rounded_once(torch.autograd.grad(actual, x, grad)[0],
                        torch.autograd.grad(expected, x32, grad.float())[0], "input gradient")


@pytest.mark.parametrize("scales", ["0.63, 0.794, 1, 1.26, 1.587, 2", "1, 1.5, 0.7"])  # float16 scale 1 first, then float32
def test_si_warp_max_half_precision(poisoned, scales):
    """float16 conv maps warped in float32 and the maximum rounded once; the backward adds each output's
    share into the float16 gradients one atomic add at a time, as PyTorch's CUDA kernel does, so a pixel
    that several outputs read is rounded once per add: within a few float16 ulps, not one."""
    net = netdsl.parse_string(si_net("2x15x13", scales, "pad = 1"))
    layer = net.layer("layer")
    module = load_source(netdsl.generate_source(net, backend="triton"), net.name)
    zs = [(torch.randn(2, 5, ch, cw) * 10).half().requires_grad_() for _, _, _, ch, cw in layer.derived["scale_maps"]]
    zs32 = [z.detach().float().requires_grad_() for z in zs]
    size = (layer.out_shape.h, layer.out_shape.w)
    expected = torch.stack([F.interpolate(z, size=size, mode="bilinear", align_corners=False) for z in zs32]).max(0).values
    actual = warp_max(module, layer)(*zs)
    assert_rounded_once(actual, expected, "warp-max")
    grad = torch.randn_like(actual)
    for z, a, e in zip(zs, torch.autograd.grad(actual, zs, grad), torch.autograd.grad(expected, zs32, grad.float())):
        assert a.dtype == torch.float16
        assert rel_err(a.float(), e) < 8 * 2**-11, f"gradient of the {tuple(z.shape[2:])} map"  # eight roundings


# ---- whole networks ----

def test_alexnet_batch_1():
    assert_same_as_torch((NETS / "alexnet.net").read_text(), batch=1, dtype=torch.float64, scale=50.0)


SI_ALEXNET_FIRST_LAYERS = """
# nets/si_alexnet.net's first layers (SI conv, LRN, overlapping max-pool, twice, over two groups,
# the second conv reading its own group) with its scales, at a reduced width and image size so
# that the interpreter gets through them in seconds.
[net]
name   = si_alexnet_head
groups = 2
[data]
type  = data
shape = 3x63x63
[conv1]
type    = siconv
filters = 16
size    = 11
stride  = 4
pad     = 2
scales  = 0.63, 1, 1.59
neuron  = relu
[rnorm1]
type = lrn
[pool1]
type   = maxpool
size   = 3
stride = 2
[conv2]
type    = siconv
filters = 24
size    = 5
pad     = 2
connect = group
scales  = 0.63, 1, 1.59
neuron  = relu
bias    = 1
[rnorm2]
type = lrn
[pool2]
type   = maxpool
size   = 3
stride = 2
[fc3]
type    = fc
outputs = 10
[prob]
type = softmax
"""


def test_si_alexnet_first_layers():
    assert_same_as_torch(SI_ALEXNET_FIRST_LAYERS, batch=2, scale=50.0, gradients=False)
    assert_same_as_torch(SI_ALEXNET_FIRST_LAYERS, batch=2, dtype=torch.float64, scale=50.0)


def test_si_alexnet_first_layers_one_device_per_group():
    """Placed over two (CPU) devices, each group calls the kernels on its own chunk of the channels."""
    net, reference, _ = both_backends(SI_ALEXNET_FIRST_LAYERS, torch.float64)
    model = netdsl.compile_net(net, backend="triton", devices=["cpu", "cpu"]).eval().to(torch.float64)
    model.load_state_dict(reference.state_dict())
    x = (torch.randn(2, *net.input_shape, dtype=torch.float64) * 50).requires_grad_()
    expected, actual = reference(x), model(x)
    assert rel_err(actual, expected) < TOLERANCE[torch.float64]
    grad = torch.randn_like(expected)
    actual_grad, expected_grad = torch.autograd.grad(actual, x, grad)[0], torch.autograd.grad(expected, x, grad)[0]
    assert rel_err(actual_grad, expected_grad) < TOLERANCE[torch.float64]


def test_si_alexnet_first_layers_under_autocast():
    """torch.autocast hands the kernels float16 conv maps: the two backends agree on the logits as closely as
    float16 allows. Their input gradients agree in norm only: in float16 many SI maxima are near-ties, which
    the kernel (comparing the warps in float32) and PyTorch (comparing them rounded to float16) may give to
    different scales; each kernel's own gradient is checked element by element above."""
    net, reference, model = both_backends(SI_ALEXNET_FIRST_LAYERS)
    x = (torch.randn(2, *net.input_shape) * 50).requires_grad_()
    with torch.autocast("cpu", dtype=torch.float16):
        expected, actual = reference(x), model(x)
    assert actual.dtype == expected.dtype == torch.float16
    assert rel_err(actual.float(), expected.float()) < 5e-3
    grad = torch.randn_like(expected)
    actual_grad, expected_grad = torch.autograd.grad(actual, x, grad)[0], torch.autograd.grad(expected, x, grad)[0]
    assert actual_grad.dtype == torch.float32
    assert ((actual_grad - expected_grad).norm() / expected_grad.norm()).item() < 0.25  # 0.06 at worst in 40 runs


def test_mnist_scale_si():
    """The SI paper's MNIST-scale network: two SI layers over six scales, max-pools, fc 150."""
    text = (NETS / "mnist_scale_si.net").read_text()
    assert_same_as_torch(text, batch=2, scale=50.0, gradients=False)
    assert_same_as_torch(text, batch=2, dtype=torch.float64, scale=50.0)


def test_every_launch_runs_on_its_tensors_device(monkeypatch):
    """Triton launches on the current CUDA device, not the tensors': with group 1 on cuda:1 (or a model
    on cuda:1 alone) a bare launch would run on cuda:0. So every launch, forward and backward, must sit
    inside torch.cuda.device_of(one of its own tensors)."""
    net = netdsl.parse_string(SI_ALEXNET_FIRST_LAYERS)  # SI warp-max, LRN and max-pool kernels
    module = load_source(netdsl.generate_source(net, backend="triton"), net.name)
    open_guards, launched, unguarded = [], [], []
    real_device_of = torch.cuda.device_of

    @contextlib.contextmanager
    def device_of(tensor):
        open_guards.append(tensor)
        try:
            with real_device_of(tensor):
                yield
        finally:
            open_guards.pop()

    class Watched:
        """A kernel that notes each launch, and whether the innermost device_of holds one of its tensors."""
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            def run(*args, **options):
                launched.append(self.name)
                if not (open_guards and any(arg is open_guards[-1] for arg in args)):
                    unguarded.append(self.name)
                return self.kernel[grid](*args, **options)
            return run

    monkeypatch.setattr(torch.cuda, "device_of", device_of)
    # The kernels are one per operation: each is launched once for each of its layers
    expected = Counter(kernel for _, kernel in expected_kernels(net))
    for name in expected:
        monkeypatch.setitem(vars(module), name, Watched(name, vars(module)[name]))
    model = module.build()
    x = torch.randn(1, *net.input_shape, requires_grad=True)
    logits = model(x)
    torch.autograd.grad(logits, x, torch.randn_like(logits))
    assert Counter(launched) == expected
    assert unguarded == []
