"""The layer types and keys of issue 20, each held against an independent reference.

    python -m pytest tests/test_layer_types.py -x -q

batchnorm, sum, max, local, lrn `region = within`, conv `channel_groups`, `round = ceil` and
`bias = none`, fc `bias = none`, the xavier and msra inits, every neuron, and auxiliary heads
(`loss_weight`). Each reference is plain PyTorch or numpy written here from the formulas of
/tmp/coord/SPEC.md and of the layer modules' docstrings (netdsl/layers/*.py), never netdsl's own
helpers; it reads the generated module's weights (set to fresh random values first) and runs on
fresh random inputs each run (no fixed seed: the seed is in every failure message). Then every
new type through the rest of the pipeline: placement over two CPU "devices" against the fused
module, ONNX export run by onnxruntime, `netdsl draw`'s layout, `netdsl time` and `netdsl diff`.
The Triton kernels of `region = within` run in Triton's interpreter (TRITON_INTERPRET=1, set by
conftest.py before triton is first imported, as tests/test_triton_kernels.py relies on).
Shapes are tiny and nothing trains: the file runs in seconds.
"""
from __future__ import annotations

import io
import math
import os
import re
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netdsl
from netdsl.codegen.drawing import layout
from netdsl.language.netdiff import diff
from netdsl.runner.timing import time_net
from netdsl.runner.train import train_loss

NEURON_CASES = [  # (written, reference formula on float64 tensors)
    ("none", lambda x: x),
    ("relu", lambda x: torch.where(x > 0, x, torch.zeros_like(x))),
    ("tanh", lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))),
    ("sigmoid", lambda x: 1 / (1 + torch.exp(-x))),
    ("leaky(0.1)", lambda x: torch.where(x > 0, x, 0.1 * x)),
    ("leaky(0.3)", lambda x: torch.where(x > 0, x, 0.3 * x)),
    ("elu", lambda x: torch.where(x > 0, x, torch.exp(x) - 1)),
    ("gelu", lambda x: x * (1 + torch.special.erf(x / math.sqrt(2))) / 2),
    ("silu", lambda x: x / (1 + torch.exp(-x))),
    ("abs", lambda x: torch.where(x < 0, -x, x)),
    ("square", lambda x: x * x),
    ("softrelu", lambda x: torch.log(1 + torch.exp(x))),
    ("brelu(1.5)", lambda x: torch.where(x < 0, torch.zeros_like(x), torch.where(x > 1.5, torch.full_like(x, 1.5), x))),
    ("linear(2, 1)", lambda x: 2 * x + 1),
    ("linear(-0.5, 0.25)", lambda x: -0.5 * x + 0.25),
]


# ---------------------------------------------------------------- helpers

def net_text(body: str, shape: str = "3x6x5", groups: int = 1, output: str = "[prob]\ntype = softmax\n",
             name: str = "t") -> str:
    """A network: [net], a data layer of `shape`, the sections of `body`, then the output."""
    return (f"[net]\nname = {name}\ngroups = {groups}\n[data]\ntype = data\nshape = {shape}\n"
            f"{textwrap.dedent(body).strip()}\n{output}")


def build(text: str):
    """(the checked net, its torch-backend module)."""
    net = netdsl.parse_string(text, "t.net")
    return net, netdsl.compile_net(net, backend="torch")


def randomize(model, scale: float = 0.5) -> None:
    """Fresh random parameters of every layer (biases too), and running statistics far from their
    initial 0 and 1, so no layer computes something that would also hold of its initial state."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, scale)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2)


def close(actual, expected, tol=1e-5, what=""):
    """The largest difference within tol of the largest reference value."""
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().clamp_min(1e-30)
    error = ((actual - expected).abs().max() / scale).item()
    assert error < tol, f"{what}: relative error {error:.3g} (tolerance {tol:g}), seed {SEED}"


SEED = None


@pytest.fixture(autouse=True)
def fresh_seed():
    """A fresh seed each test, kept for failure messages."""
    global SEED
    SEED = torch.seed()
    np.random.seed(SEED % 2 ** 32)
    yield


def error_of(text: str) -> netdsl.NetError:
    with pytest.raises(netdsl.NetError) as info:
        netdsl.parse_string(text, "t.net")
    return info.value


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line number of the nth line of `text` that contains `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def ce_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy from its definition: log sum_j e^z_j - z_y, image by image."""
    z = logits.double()
    top = z.max(1, keepdim=True).values
    log_total = top.squeeze(1) + torch.log(torch.exp(z - top).sum(1))
    return (log_total - z[torch.arange(len(y)), y]).sum()


def plain_conv(x, weight, bias=None, stride=1):
    """Cross-correlation by loops over the kernel offsets (x already padded), groups of one."""
    n, c, h, w = x.shape
    f, _, k, _ = weight.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = x.new_zeros(n, f, oh, ow)
    for dy in range(k):
        for dx in range(k):
            patch = x[:, :, dy:dy + stride * (oh - 1) + 1:stride, dx:dx + stride * (ow - 1) + 1:stride]
            out += torch.einsum("nchw,fc->nfhw", patch, weight[:, :, dy, dx])
    return out if bias is None else out + bias[None, :, None, None]


# ---------------------------------------------------------------- batchnorm

BN_MAPS = """
[c1]
type = conv
filters = 4
size = 3
pad = 1
[bn]
type = batchnorm
eps = 0.001
momentum = 0.25
{extra}
"""


def bn_reference_train(x, weight, bias, eps):
    """Batch statistics: the mean and the biased variance of each channel over N (x H x W)."""
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    view = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
    x = x.double()
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight.double().view(view) + bias.double().view(view)
    count = x.numel() // x.shape[1]
    return y, mean.flatten(), var.flatten() * count / (count - 1)


def bn_reference_eval(x, weight, bias, running_mean, running_var, eps):
    view = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
    y = (x.double() - running_mean.double().view(view)) / torch.sqrt(running_var.double().view(view) + eps)
    if weight is not None:
        y = y * weight.double().view(view) + bias.double().view(view)
    return y


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_train_and_eval_against_the_formula(affine):
    """Train mode: batch mean and biased variance; running stats by PyTorch's momentum rule with the
    unbiased variance, over three batches; eval mode: the running stats."""
    extra = "" if affine else "affine = no"
    net, model = build(net_text(BN_MAPS.format(extra=extra), shape="3x5x4"))
    bn = model.bn
    assert isinstance(bn, torch.nn.BatchNorm2d) and not isinstance(bn, torch.nn.SyncBatchNorm)
    assert bn.eps == 0.001 and bn.momentum == 0.25 and bn.affine == affine
    assert net.layer("bn").params == (8 if affine else 0)
    assert sum(p.numel() for p in model.parameters()) == net.params
    randomize(model)
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1)
    weight, bias = (bn.weight, bn.bias) if affine else (None, None)
    mean, var = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    model.train()
    for step in range(3):
        x = torch.randn(5, 3, 5, 4) * 3 + step
        a = plain_conv(F.pad(x, (1, 1, 1, 1)), model.c1.weight, model.c1.bias)
        with torch.no_grad():
            got = model(x)
        want, batch_mean, batch_var = bn_reference_train(a, weight, bias, 0.001)
        close(got, want.flatten(1), 1e-5, f"train mode, batch {step}")
        mean = 0.75 * mean + 0.25 * batch_mean
        var = 0.75 * var + 0.25 * batch_var
    close(bn.running_mean, mean, 1e-5, "running mean")
    close(bn.running_var, var, 1e-5, "running variance (unbiased)")
    assert bn.num_batches_tracked.item() == 3
    model.eval()
    x = torch.randn(2, 3, 5, 4) * 3
    a = plain_conv(F.pad(x, (1, 1, 1, 1)), model.c1.weight, model.c1.bias)
    with torch.no_grad():
        got = model(x)
    close(got, bn_reference_eval(a, weight, bias, mean, var, 0.001).flatten(1), 1e-5, "eval mode")


def test_batchnorm_buffers_are_in_the_state_dict_and_round_trip():
    net, model = build(net_text(BN_MAPS.format(extra="neuron = relu"), shape="3x5x4"))
    state = model.state_dict()
    assert {k for k in state if k.startswith("bn.")} == {
        "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    _, plain = build(net_text(BN_MAPS.format(extra="affine = no"), shape="3x5x4"))
    assert {k for k in plain.state_dict() if k.startswith("bn.")} == {
        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    assert [name for name, _ in plain.named_parameters() if name.startswith("bn")] == []
    # a few train-mode batches, then a checkpoint's round trip
    model.train()
    for _ in range(2):
        model(torch.randn(4, 3, 5, 4))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    _, other = build(net_text(BN_MAPS.format(extra="neuron = relu"), shape="3x5x4"))
    other.load_state_dict(torch.load(buffer))
    assert other.bn.num_batches_tracked.item() == 2
    x = torch.randn(3, 3, 5, 4)
    model.eval(), other.eval()
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
        # eval mode with a relu: the running statistics, then max(0, .)
        a = plain_conv(F.pad(x, (1, 1, 1, 1)), model.c1.weight, model.c1.bias)
        want = bn_reference_eval(a, model.bn.weight, model.bn.bias, model.bn.running_mean,
                                 model.bn.running_var, 0.001).clamp_min(0)
        close(model(x), want.flatten(1), 1e-5, "eval with relu")


def test_batchnorm1d_after_an_fc():
    text = net_text("""
        [fc1]
        type = fc
        outputs = 6
        [bn]
        type = batchnorm
        momentum = 0.5
        neuron = tanh
    """, shape="2x3x3")
    net, model = build(text)
    assert isinstance(model.bn, torch.nn.BatchNorm1d)
    assert model.bn.num_features == 6 and model.bn.eps == 1e-5 and model.bn.momentum == 0.5
    assert net.layer("bn").out_shape == (6, 1, 1) and net.layer("bn").params == 12
    randomize(model)
    with torch.no_grad():
        model.bn.running_mean.zero_()
        model.bn.running_var.fill_(1)
    x = torch.randn(7, 2, 3, 3)
    a = x.flatten(1).double() @ model.fc1.weight.double().T + model.fc1.bias.double()
    model.train()
    with torch.no_grad():
        got = model(x)
    y, batch_mean, batch_var = bn_reference_train(a, model.bn.weight, model.bn.bias, 1e-5)
    close(got, torch.tanh(y), 1e-5, "BatchNorm1d, train")
    close(model.bn.running_mean, 0.5 * batch_mean, 1e-5, "running mean")
    close(model.bn.running_var, 0.5 + 0.5 * batch_var, 1e-5, "running variance")
    model.eval()
    with torch.no_grad():
        got = model(x)
    want = bn_reference_eval(a, model.bn.weight, model.bn.bias, 0.5 * batch_mean, 0.5 + 0.5 * batch_var, 1e-5)
    close(got, torch.tanh(want), 1e-5, "BatchNorm1d, eval")


def test_batchnorm_multipliers_reach_the_optimizer_groups():
    """lr_mult and decay_mult for the scale and the shift, default 1, 1 for both (decayed)."""
    from netdsl.runner.optim import parameter_groups
    for extra, want in (("", [(1, 1), (1, 1)]), ("lr_mult = 2, 3\ndecay_mult = 0, 0.5", [(2, 0), (3, 0.5)])):
        net, model = build(net_text(BN_MAPS.format(extra=extra), shape="3x5x4"))
        groups = {id(g["params"][0]): (g["lr_mult"], g["decay_mult"]) for g in parameter_groups(model, net)}
        assert [groups[id(model.bn.weight)], groups[id(model.bn.bias)]] == want
        assert groups[id(model.c1.bias)] == (1, 0)   # conv's defaults stay the AlexNet paper's


def test_batchnorm_sync_is_a_sync_batch_norm():
    net, model = build(net_text(BN_MAPS.format(extra="sync = yes"), shape="3x5x4"))
    assert isinstance(model.bn, torch.nn.SyncBatchNorm)
    assert model.bn.eps == 0.001 and model.bn.momentum == 0.25


BN_GROUPS = """
[c1]
type = conv
filters = 6
size = 3
pad = 1
[bn1]
type = batchnorm
momentum = 0.3
neuron = relu
[c2]
type = conv
filters = 4
size = 1
connect = group
[bn2]
type = batchnorm
affine = no
eps = 0.01
[fc1]
type = fc
outputs = 6
connect = group
[bn3]
type = batchnorm
[fc2]
type = fc
outputs = 4
"""


def saved(state) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


def test_batchnorm_over_two_groups_split_equals_fused_in_train_and_eval():
    net = netdsl.parse_string(net_text(BN_GROUPS, shape="3x5x4", groups=2), "t.net")
    fused = netdsl.compile_net(net, backend="torch")
    randomize(fused)
    split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"])
    split.load_state_dict(fused.state_dict())
    assert list(split.state_dict()) == list(fused.state_dict())
    fused.train(), split.train()
    for step in range(2):
        x = torch.randn(6, 3, 5, 4) * 2
        with torch.no_grad():
            close(split(x), fused(x), 1e-5, f"train mode, batch {step}")
    fused_state, split_state = fused.state_dict(), split.state_dict()
    for key in fused_state:
        close(split_state[key], fused_state[key], 1e-6, f"state {key} after training batches")
    assert split_state["bn1.num_batches_tracked"].item() == 2
    fused.eval(), split.eval()
    x = torch.randn(3, 3, 5, 4) * 2
    with torch.no_grad():
        want = fused(x)
        close(split(x), want, 1e-5, "eval mode")
        # the state dict round-trips: split -> fused and fused -> split
        again = netdsl.compile_net(net, backend="torch").eval()
        again.load_state_dict(saved(split.state_dict()))
        close(again(x), want, 1e-6, "split's state in a fused module")
        other = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"]).eval()
        other.load_state_dict(saved(fused.state_dict()))
        close(other(x), want, 1e-6, "fused state in a split module")


# ---------------------------------------------------------------- conv and fc: bias, channel_groups, round

def test_conv_and_fc_without_bias():
    text = net_text("""
        [c1]
        type = conv
        filters = 5
        size = 3
        bias = none
        [f1]
        type = fc
        outputs = 4
        bias = none
        [f2]
        type = fc
        outputs = 3
        bias = 0.5
    """, shape="3x6x5")
    net, model = build(text)
    assert model.c1.bias is None and model.f1.bias is None
    assert torch.equal(model.f2.bias, torch.full((3,), 0.5))
    assert set(model.state_dict()) == {"c1.weight", "f1.weight", "f2.weight", "f2.bias"}
    assert net.layer("c1").params == 5 * 3 * 3 * 3
    assert net.layer("f1").params == 4 * 5 * 4 * 3
    assert net.layer("f2").params == 3 * 4 + 3
    assert sum(p.numel() for p in model.parameters()) == net.params
    source = netdsl.generate_source(net)
    assert "model.c1.bias" not in source and "model.f1.bias" not in source
    randomize(model)
    x = torch.randn(2, 3, 6, 5)
    a = plain_conv(x.double(), model.c1.weight.double())
    h = a.flatten(1) @ model.f1.weight.double().T
    want = h @ model.f2.weight.double().T + model.f2.bias.double()
    with torch.no_grad():
        close(model(x), want, 1e-5, "no bias")


@pytest.mark.parametrize("groups, channels, filters", [(2, 4, 6), (4, 4, 8), (3, 6, 3)])
def test_channel_groups_are_separate_convs_on_channel_slices(groups, channels, filters):
    text = net_text(f"""
        [c1]
        type = conv
        filters = {filters}
        size = 3
        pad = 1
        stride = 2
        channel_groups = {groups}
        neuron = leaky(0.2)
    """, shape=f"{channels}x7x6")
    net, model = build(text)
    per_in, per_out = channels // groups, filters // groups
    assert model.c1.weight.shape == (filters, per_in, 3, 3)
    assert net.layer("c1").params == filters * per_in * 9 + filters
    assert net.layer("c1").out_shape == (filters, 4, 3)
    randomize(model)
    x = torch.randn(2, channels, 7, 6).double()
    xp = F.pad(x, (1, 1, 1, 1))
    w, b = model.c1.weight.double(), model.c1.bias.double()
    parts = [plain_conv(xp[:, g * per_in:(g + 1) * per_in], w[g * per_out:(g + 1) * per_out],
                        b[g * per_out:(g + 1) * per_out], stride=2) for g in range(groups)]
    want = torch.cat(parts, 1)
    want = torch.where(want > 0, want, 0.2 * want)
    with torch.no_grad():
        close(model(x.float()), want.flatten(1), 1e-5, "channel groups")


def test_channel_groups_refused_with_net_groups():
    text = net_text("""
        [c1]
        type = conv
        filters = 4
        size = 3
        [c2]
        type = conv
        filters = 4
        size = 1
        channel_groups = 2
    """, groups=2)
    err = error_of(text)
    assert err.line == line_of(text, "channel_groups") and err.col == 1, str(err)
    assert "[c2]" in err.message and "channel_groups" in err.message and "groups" in err.message


def test_channel_groups_must_divide_channels_and_filters():
    for shape, filters in (("3x6x5", 4), ("4x6x5", 3)):
        text = net_text(f"[c1]\ntype = conv\nfilters = {filters}\nsize = 1\nchannel_groups = 2\n", shape=shape)
        err = error_of(text)
        assert err.line == line_of(text, "channel_groups") and "not divisible by `channel_groups` 2" in err.message


@pytest.mark.parametrize("h, w, size, stride, pad", [(8, 9, 3, 2, 0), (8, 9, 3, 2, 1), (7, 10, 4, 3, 1), (6, 6, 3, 2, 0)])
def test_conv_round_ceil_is_cuda_convnets_size_with_zeros_at_the_far_side(h, w, size, stride, pad):
    text = net_text(f"""
        [c1]
        type = conv
        filters = 3
        size = {size}
        stride = {stride}
        pad = {pad}
        round = ceil
    """, shape=f"2x{h}x{w}")
    net, model = build(text)
    out_h = 1 + math.ceil((h + 2 * pad - size) / stride)
    out_w = 1 + math.ceil((w + 2 * pad - size) / stride)
    assert net.layer("c1").out_shape == (3, out_h, out_w)
    floor = netdsl.parse_string(text.replace("round = ceil", "round = floor"))
    assert floor.layer("c1").out_shape == (3, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
    randomize(model)
    x = torch.randn(2, 2, h, w).double()
    far_h = (out_h - 1) * stride + size - (h + 2 * pad)   # how far the last window overhangs
    far_w = (out_w - 1) * stride + size - (w + 2 * pad)
    assert far_h >= 0 and far_w >= 0
    xp = F.pad(x, (pad, pad + far_w, pad, pad + far_h))
    want = plain_conv(xp, model.c1.weight.double(), model.c1.bias.double(), stride)
    assert want.shape[-2:] == (out_h, out_w)
    with torch.no_grad():
        close(model(x.float()), want.flatten(1), 1e-5, "round = ceil")


# ---------------------------------------------------------------- inits

INIT_NET = """
[c1]
type = conv
filters = 64
size = 3
init = {init}
{extra}
[f1]
type = fc
outputs = 200
init = {init}
"""


def init_line(source: str, module: str) -> str:
    lines = [line for line in source.splitlines() if f"model.{module}.weight" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("init, extra", [
    ("xavier", ""), ("xavier(in)", ""), ("xavier(out)", ""), ("xavier(avg)", ""),
    ("msra", ""), ("msra(in)", ""), ("msra(out)", ""), ("msra(avg)", ""),
    ("xavier", "channel_groups = 4"), ("msra(avg)", "channel_groups = 4"), ("msra(out)", "channel_groups = 2")])
def test_xavier_and_msra_bounds_and_stds(init, extra):
    """xavier: uniform(-sqrt(3/n), sqrt(3/n)); msra: normal(0, sqrt(2/n)); n the fan-in unless
    written. The fans are PyTorch's (torch.nn.init._calculate_fan_in_and_fan_out of the weight):
    fan-in C/channel_groups * size^2, fan-out filters * size^2 (the weight's dims 1 and 0)."""
    text = net_text(INIT_NET.format(init=init, extra=extra), shape="16x6x6")
    net, model = build(text)
    source = netdsl.generate_source(net)
    kind, _, fan = init.partition("(")
    fan = fan.rstrip(")") or "in"
    cg = int(extra.split("=")[1]) if extra else 1
    fans = {"c1": (16 // cg * 9, 64 * 9), "f1": (64 * 4 * 4, 200)}
    for module, (fan_in, fan_out) in fans.items():
        weight = getattr(model, module).weight.detach().double()
        assert (fan_in, fan_out) == torch.nn.init._calculate_fan_in_and_fan_out(getattr(model, module).weight)
        n = {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[fan]
        line = init_line(source, module)
        if kind == "xavier":
            bound = math.sqrt(3 / n)
            found = re.search(r"uniform_\(model\.\w+\.weight, a=([^,]+), b=([^)]+)\)", line)
            assert found, line
            assert float(found[1]) == pytest.approx(-bound, rel=1e-12), line
            assert float(found[2]) == pytest.approx(bound, rel=1e-12), line
            assert weight.abs().max() <= bound and weight.abs().max() > 0.97 * bound, (module, seed_note())
            # five standard errors: a uniform's sample std is within 0.45 / sqrt(n) of its own (relative)
            assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=5 * 0.45 / weight.numel() ** 0.5), \
                (module, seed_note())
        else:
            std = math.sqrt(2 / n)
            found = re.search(r"normal_\(model\.\w+\.weight, mean=([^,]+), std=([^)]+)\)", line)
            assert found, line
            assert float(found[1]) == 0 and float(found[2]) == pytest.approx(std, rel=1e-12), line
            # five standard errors: 1 / sqrt(2 n) for a normal's sample std, 1 / sqrt(n) for its mean
            assert weight.std().item() == pytest.approx(std, rel=5 / (2 * weight.numel()) ** 0.5), (module, seed_note())
            assert abs(weight.mean().item()) < 5 * std / weight.numel() ** 0.5, (module, seed_note())


def seed_note() -> str:
    return f"seed {SEED}"


def test_local_msra_scales_by_its_fan_in():
    text = net_text("""
        [l1]
        type = local
        filters = 8
        size = 3
        init = msra
    """, shape="6x7x7")
    net, model = build(text)
    std = math.sqrt(2 / (6 * 9))
    assert model.l1.weight.numel() == 8 * 25 * 6 * 9
    assert model.l1.weight.std().item() == pytest.approx(std, rel=5 / (2 * model.l1.weight.numel()) ** 0.5), seed_note()


@pytest.mark.parametrize("written", ["xavier(fan)", "msra(in, out)", "xavier(2)", "kaiming"])
def test_a_bad_init_is_a_positioned_error(written):
    text = net_text(f"[c1]\ntype = conv\nfilters = 4\nsize = 3\ninit = {written}\n")
    err = error_of(text)
    assert err.line == line_of(text, "init =") and err.col == 8, str(err)


# ---------------------------------------------------------------- neurons

@pytest.mark.parametrize("written, formula", NEURON_CASES, ids=[w for w, _ in NEURON_CASES])
def test_every_neuron_against_its_formula(written, formula):
    """As a `neuron` layer, and on a conv, an fc and a batchnorm."""
    text = net_text(f"""
        [n0]
        type = neuron
        neuron = {written}
        [c1]
        type = conv
        filters = 3
        size = 1
        neuron = {written}
        [bn]
        type = batchnorm
        neuron = {written}
        [f1]
        type = fc
        outputs = 5
        neuron = {written}
    """, shape="2x3x4")
    net, model = build(text)
    randomize(model)
    model.eval()
    x = torch.randn(3, 2, 3, 4)
    f = formula
    with torch.no_grad():
        a = f(x.double())
        a = f(plain_conv(a, model.c1.weight.double(), model.c1.bias.double()))
        a = f(bn_reference_eval(a, model.bn.weight, model.bn.bias, model.bn.running_mean, model.bn.running_var, 1e-5))
        want = f(a.flatten(1) @ model.f1.weight.double().T + model.f1.bias.double())
        close(model(x), want, 1e-5, written)
    # the neuron layer alone, element by element (float32: gelu's 1 + erf cancels to about 1e-7 of x),
    # with zero, both far tails and brelu's bound among the values
    single = netdsl.compile_net(netdsl.parse_string(net_text(f"[n0]\ntype = neuron\nneuron = {written}\n",
                                                             shape="2x3x4")), backend="torch")
    x = torch.randn(3, 2, 3, 4) * 3
    x[0, 0, 0, :] = torch.tensor([0.0, -30.0, 30.0, 1.5])
    with torch.no_grad():
        got = single(x).double()
    want = f(x.double()).flatten(1)
    assert torch.allclose(got, want, rtol=1e-6, atol=2e-6), \
        f"{written}: largest difference {(got - want).abs().max().item():.3g}, seed {SEED}"


@pytest.mark.parametrize("written, phrase", [
    ("leaky", "`leaky` takes 1 number"),
    ("leaky(0.1, 2)", "`leaky` takes 1 number"),
    ("linear(2)", "`linear` takes 2 numbers"),
    ("gelu(1)", "`gelu` takes no number"),
    ("brelu(0)", "a must be above 0"),
    ("brelu(-1)", "a must be above 0"),
    ("swish", "expected a neuron"),
    ("lekay(0.1)", "(did you mean `leaky`?)"),
    ("leaky(1e40)", "float32"),
])
def test_a_bad_neuron_is_a_positioned_error(written, phrase):
    text = net_text(f"[c1]\ntype = conv\nfilters = 4\nsize = 3\nneuron = {written}\n")
    err = error_of(text)
    at = 16 if written == "leaky(1e40)" else 10   # the argument itself, or the value
    assert err.line == line_of(text, "neuron =") and err.col == at, str(err)
    assert phrase in err.message, err.message


# ---------------------------------------------------------------- sum and max

ELTWISE = """
[a]
type = conv
filters = 4
size = 3
pad = 1
[b]
type = conv
input = data
filters = 4
size = 3
pad = 1
[c]
type = conv
input = data
filters = 4
size = 1
[e]
type = {kind}
input = a, b, c
{extra}
"""


def three_maps(model, x):
    x = x.double()
    xp = F.pad(x, (1, 1, 1, 1))
    return (plain_conv(xp, model.a.weight.double(), model.a.bias.double()),
            plain_conv(xp, model.b.weight.double(), model.b.bias.double()),
            plain_conv(x, model.c.weight.double(), model.c.bias.double()))


@pytest.mark.parametrize("kind, extra, formula", [
    ("sum", "", lambda a, b, c: a + b + c),
    ("sum", "coeffs = 0.5, -2, 1", lambda a, b, c: 0.5 * a - 2 * b + c),
    ("sum", "coeffs = 1, 1, 3\nneuron = relu", lambda a, b, c: (a + b + 3 * c).clamp_min(0)),
    ("sum", "coeffs = 0.5, -2, 1\nneuron = linear(2, -1)", lambda a, b, c: 2 * (0.5 * a - 2 * b + c) - 1),
    ("max", "neuron = linear(-1, 0.5)", lambda a, b, c: 0.5 - torch.maximum(torch.maximum(a, b), c)),
    ("max", "", lambda a, b, c: torch.maximum(torch.maximum(a, b), c)),
    ("max", "neuron = square", lambda a, b, c: torch.maximum(torch.maximum(a, b), c) ** 2),
])
def test_sum_and_max_values(kind, extra, formula):
    net, model = build(net_text(ELTWISE.format(kind=kind, extra=extra), shape="3x5x4"))
    assert net.layer("e").out_shape == (4, 5, 4) and net.layer("e").params == 0
    randomize(model)
    x = torch.randn(2, 3, 5, 4)
    with torch.no_grad():
        close(model(x), formula(*three_maps(model, x)).flatten(1), 1e-5, f"{kind} {extra}")


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_shapes_that_differ_are_an_error_naming_both(kind):
    text = net_text(ELTWISE.format(kind=kind, extra="").replace("filters = 4\nsize = 1", "filters = 5\nsize = 1"),
                    shape="3x5x4")
    err = error_of(text)
    assert "[e]" in err.message and "4x5x4" in err.message and "5x5x4" in err.message, err.message
    assert "`a`" in err.message and "`c`" in err.message, err.message
    section, key = line_of(text, "[e]"), line_of(text, "input = a, b, c")
    assert err.line in (section, key), str(err)
    # the same map size, other channel counts / sizes
    text = net_text(ELTWISE.format(kind=kind, extra="").replace("size = 1", "size = 2"), shape="3x5x4")
    err = error_of(text)
    assert "4x5x4" in err.message and "4x4x3" in err.message, err.message


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_sum_and_max_of_an_fc_and_a_conv_of_one_shape(kind):
    """An fc's output (N x C, flat) and a conv's (N x C x 1 x 1, maps) of the same C x 1 x 1 combine."""
    text = net_text(f"""
        [c]
        type = conv
        filters = 6
        size = 3
        [f]
        type = fc
        input = data
        outputs = 6
        [e]
        type = {kind}
        input = c, f
        [c2]
        type = conv
        filters = 4
        size = 1
    """, shape="2x3x3")
    net, model = build(text)
    randomize(model)
    x = torch.randn(3, 2, 3, 3)
    c = plain_conv(x.double(), model.c.weight.double(), model.c.bias.double()).flatten(1)
    f = x.double().flatten(1) @ model.f.weight.double().T + model.f.bias.double()
    e = c + f if kind == "sum" else torch.maximum(c, f)
    want = e @ model.c2.weight.double().flatten(1).T + model.c2.bias.double()
    with torch.no_grad():
        close(model(x), want, 1e-5, kind)


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_fewer_than_two_inputs_are_refused(kind):
    for extra in ("", "input = a\n"):
        text = net_text(f"[a]\ntype = conv\nfilters = 4\nsize = 3\n[e]\ntype = {kind}\n{extra}")
        err = error_of(text)
        assert "two or more inputs" in err.message, err.message
        # at the `input` entry where one is written, else at the section
        assert err.line == line_of(text, "input = a" if extra else "[e]") and err.col == 1, str(err)


def test_coeffs_count_must_match_the_inputs():
    text = net_text(ELTWISE.format(kind="sum", extra="coeffs = 1, 2"), shape="3x5x4")
    err = error_of(text)
    assert err.line == line_of(text, "coeffs") and "`coeffs` has 2 factors for 3 inputs" in err.message, str(err)
    text = net_text(ELTWISE.format(kind="max", extra="coeffs = 1, 2, 3"), shape="3x5x4")
    err = error_of(text)
    assert err.line == line_of(text, "coeffs") and "`coeffs` is a key of sum layers; a `max` layer has none" in err.message, str(err)


ELTWISE_GROUPS = """
[a]
type = conv
filters = 4
size = 3
pad = 1
neuron = relu
[b]
type = conv
filters = 4
size = 3
pad = 1
connect = group
[s]
type = sum
input = a, b
coeffs = 0.5, 2
[m]
type = max
input = s, a
neuron = tanh
[w]
type = lrn
region = within
size = 3
k = 1
alpha = 0.1
[f]
type = fc
outputs = 4
"""


def test_sum_and_max_over_two_groups_split_equals_fused():
    net = netdsl.parse_string(net_text(ELTWISE_GROUPS, shape="3x5x4", groups=2), "t.net")
    fused = netdsl.compile_net(net, backend="torch")
    randomize(fused)
    fused.eval()
    x = torch.randn(3, 3, 5, 4)
    a = F.relu(plain_conv(F.pad(x.double(), (1, 1, 1, 1)), fused.a.weight.double(), fused.a.bias.double()))
    ap = F.pad(a, (1, 1, 1, 1))
    wb, bb = fused.b.weight.double(), fused.b.bias.double()
    b = torch.cat([plain_conv(ap[:, :2], wb[:2], bb[:2]), plain_conv(ap[:, 2:], wb[2:], bb[2:])], 1)
    m = torch.tanh(torch.maximum(0.5 * a + 2 * b, a)).detach()
    w = lrn_within_numpy(m.numpy(), 3, 1.0, 0.1, 0.75)
    want = torch.from_numpy(w).flatten(1) @ fused.f.weight.double().T + fused.f.bias.double()
    with torch.no_grad():
        close(fused(x), want, 1e-5, "fused")
        split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"]).eval()
        split.load_state_dict(fused.state_dict())
        close(split(x), fused(x), 1e-5, "split")


# ---------------------------------------------------------------- local

def local_reference(x, weight, bias, size, stride, pad, out_h, out_w, groups=1):
    """y[n, f, i, j] = sum over (c, dy, dx) of W[f, i * out_w + j, (c, dy, dx)] x[n, c, i s + dy - p, j s + dx - p]
    + b[f, i, j], x zero outside the map; with groups, filter f reads only its group's channels."""
    x = x.detach().double().numpy()
    weight = weight.detach().double().numpy()
    n, c, h, w = x.shape
    filters = weight.shape[0]
    cg, fg = c // groups, filters // groups
    far_h, far_w = max(0, (out_h - 1) * stride + size - h - pad), max(0, (out_w - 1) * stride + size - w - pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, far_h), (pad, far_w)))
    y = np.zeros((n, filters, out_h, out_w))
    for f in range(filters):
        g = f // fg
        for i in range(out_h):
            for j in range(out_w):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + size, j * stride:j * stride + size]
                y[:, f, i, j] = patch.reshape(n, -1) @ weight[f, i * out_w + j]
    if bias is not None:
        y += bias.detach().double().numpy()[None]
    return torch.from_numpy(y)


@pytest.mark.parametrize("shape, size, stride, pad, ceil, bias", [
    ("3x6x5", 3, 1, 1, False, True),
    ("2x7x8", 3, 2, 0, True, True),      # ceil: 1 + ceil(4/2) = 3, 1 + ceil(5/2) = 4, zeros at the far side
    ("2x8x7", 2, 3, 1, True, False),
    ("1x5x5", 5, 1, 0, False, True),     # a single position
])
def test_local_against_a_loop_over_positions(shape, size, stride, pad, ceil, bias):
    c, h, w = map(int, shape.split("x"))
    text = net_text(f"""
        [l1]
        type = local
        filters = 4
        size = {size}
        stride = {stride}
        pad = {pad}
        round = {"ceil" if ceil else "floor"}
        bias = {"0.1" if bias else "none"}
    """, shape=shape)
    net, model = build(text)
    rounding = math.ceil if ceil else math.floor
    out_h = 1 + rounding((h + 2 * pad - size) / stride)
    out_w = 1 + rounding((w + 2 * pad - size) / stride)
    assert net.layer("l1").out_shape == (4, out_h, out_w)
    assert net.layer("l1").params == out_h * out_w * 4 * (c * size * size + (1 if bias else 0))
    assert sum(p.numel() for p in model.parameters()) == net.params
    if bias:
        assert torch.equal(model.l1.bias, torch.full((4, out_h, out_w), 0.1))
    else:
        assert model.l1.bias is None and "l1.bias" not in model.state_dict()
    randomize(model)
    x = torch.randn(2, c, h, w)
    want = local_reference(x, model.l1.weight.reshape(4, out_h * out_w, -1), model.l1.bias,
                           size, stride, pad, out_h, out_w)
    with torch.no_grad():
        close(model(x), want.flatten(1), 1e-5, "local")


def test_local_weights_differ_by_position():
    """Unshared: changing the filters of one output position changes that position's outputs only."""
    net, model = build(net_text("[l1]\ntype = local\nfilters = 2\nsize = 3\npad = 1\n", shape="2x4x4"))
    randomize(model)
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        before = model(x).reshape(1, 2, 4, 4)
        model.l1.weight.view(2, 16, -1)[:, 5] += 1.0   # position (1, 1)
        after = model(x).reshape(1, 2, 4, 4)
    changed = (before - after).abs().sum((0, 1)) > 0
    assert changed[1, 1] and changed.sum() == 1


LOCAL_GROUPS = """
[c1]
type = conv
filters = 4
size = 2
stride = 2
round = ceil
bias = none
[l1]
type = local
filters = 6
size = 3
stride = 2
pad = 1
round = ceil
connect = group
neuron = relu
[l2]
type = local
filters = 4
size = 2
bias = none
[f1]
type = fc
outputs = 4
"""


def test_local_over_two_groups_fused_and_split():
    net = netdsl.parse_string(net_text(LOCAL_GROUPS, shape="3x11x9", groups=2), "t.net")
    l1, l2 = net.layer("l1"), net.layer("l2")
    assert net.layer("c1").out_shape == (4, 6, 5)             # 1 + ceil(9/2), 1 + ceil(7/2)
    assert l1.out_shape == (6, 4, 3)                       # 1 + ceil(5/2), 1 + ceil(4/2)
    assert l1.params == 4 * 3 * 6 * (2 * 9 + 1)           # each filter reads its group's 2 channels
    assert l2.out_shape == (4, 3, 2) and l2.params == 3 * 2 * 4 * 6 * 4   # connect = all, no bias
    fused = netdsl.compile_net(net, backend="torch")
    assert sum(p.numel() for p in fused.parameters()) == net.params
    randomize(fused)
    fused.eval()
    x = torch.randn(2, 3, 11, 9)
    assert fused.c1.bias is None
    with torch.no_grad():
        a = plain_conv(F.pad(x.double(), (0, 1, 0, 1)), fused.c1.weight.double(), stride=2)
        b = local_reference(a.float(), fused.l1.weight.reshape(6, 12, -1), fused.l1.bias, 3, 2, 1, 4, 3, groups=2)
        b = b.clamp_min(0)
        c = local_reference(b.float(), fused.l2.weight.reshape(4, 6, -1), fused.l2.bias, 2, 1, 0, 3, 2)
        want = c.flatten(1) @ fused.f1.weight.double().T + fused.f1.bias.double()
        close(fused(x), want, 1e-5, "fused")
        split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"]).eval()
        split.load_state_dict(fused.state_dict())
        assert list(split.state_dict()) == list(fused.state_dict())
        close(split(x), want, 1e-5, "split")
    # gradients agree too
    xs = x.clone().requires_grad_()
    xf = x.clone().requires_grad_()
    g = torch.randn(2, 4)
    (split(xs) * g).sum().backward()
    (fused(xf) * g).sum().backward()
    close(xs.grad, xf.grad, 1e-5, "input gradient, split vs fused")


# ---------------------------------------------------------------- lrn within

def lrn_within_numpy(a, size, k, alpha, beta):
    """b = a / (k + alpha * sum of a^2 over the size x size window around the pixel, clipped)^beta."""
    a = np.asarray(a, dtype=np.float64)
    n, c, h, w = a.shape
    half = size // 2
    b = np.empty_like(a)
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for x in range(w):
                    window = a[i, ch, max(0, y - half):min(h, y + half + 1), max(0, x - half):min(w, x + half + 1)]
                    b[i, ch, y, x] = a[i, ch, y, x] / (k + alpha * (window ** 2).sum()) ** beta
    return b


def lrn_within_autograd(a, size, k, alpha, beta):
    """The same formula as differentiable torch ops: the window sum by shifted slices of the zero-padded squares."""
    half = size // 2
    h, w = a.shape[-2:]
    squares = F.pad(a * a, (half, half, half, half))
    total = sum(squares[:, :, dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size))
    return a / (k + alpha * total) ** beta


LRN_WITHIN = """
[w]
type = lrn
region = within
size = {size}
k = {k}
alpha = {alpha}
beta = {beta}
"""

LRN_CASES = [(3, 1.5, 0.05, 0.75), (5, 2.0, 0.01, 0.75), (9, 1.0, 0.2, 0.5), (1, 1.0, 0.3, 1.0)]


def lrn_net(size, k, alpha, beta, shape="3x7x6"):
    return netdsl.parse_string(net_text(LRN_WITHIN.format(size=size, k=k, alpha=alpha, beta=beta), shape=shape))


def test_the_two_references_agree():
    a = torch.randn(2, 2, 5, 6, dtype=torch.float64) * 2
    assert np.allclose(lrn_within_autograd(a, 3, 1.5, 0.1, 0.75).numpy(), lrn_within_numpy(a.numpy(), 3, 1.5, 0.1, 0.75))


@pytest.mark.parametrize("size, k, alpha, beta", LRN_CASES)
def test_lrn_within_torch_backend_forward_and_gradient(size, k, alpha, beta):
    net = lrn_net(size, k, alpha, beta)
    assert net.layer("w").out_shape == (3, 7, 6) and net.layer("w").params == 0
    model = netdsl.compile_net(net, backend="torch")
    x = torch.randn(2, 3, 7, 6) * 3
    with torch.no_grad():
        got = model(x)
    close(got, torch.from_numpy(lrn_within_numpy(x.numpy(), size, k, alpha, beta)).flatten(1), 1e-5, "forward")
    # the gradient, in float64, against autograd through the reference
    x = (torch.randn(2, 3, 7, 6, dtype=torch.float64) * 3).requires_grad_()
    model = model.double()
    g = torch.randn(2, 3 * 7 * 6, dtype=torch.float64)
    got = torch.autograd.grad(model(x), x, g)[0]
    want = torch.autograd.grad(lrn_within_autograd(x, size, k, alpha, beta).flatten(1), x, g)[0]
    close(got, want, 1e-10, "gradient")


def test_lrn_within_even_size_is_refused():
    text = net_text(LRN_WITHIN.format(size=4, k=2, alpha=0.1, beta=0.75))
    err = error_of(text)
    assert err.line == line_of(text, "size = 4") and "`size` must be odd" in err.message, str(err)


def test_lrn_bad_region_is_refused():
    text = net_text("[w]\ntype = lrn\nregion = inside\n")
    err = error_of(text)
    assert err.line == line_of(text, "region") and err.col == 10 and "`across`, `within`" in err.message, str(err)


@pytest.mark.parametrize("size, k, alpha, beta, dtype", [
    (*LRN_CASES[0], torch.float32), (*LRN_CASES[1], torch.float32), (*LRN_CASES[0], torch.float64),
    (7, 1.0, 0.2, 0.5, torch.float32),   # a 7 x 7 window: the whole 7 x 6 map from its centre, past every edge
])
def test_lrn_within_triton_kernels_in_the_interpreter(size, k, alpha, beta, dtype):
    """The triton backend's forward and backward kernels (run by Triton's interpreter) on 2x3x7x6."""
    assert os.environ.get("TRITON_INTERPRET") == "1"
    net = lrn_net(size, k, alpha, beta)
    source = netdsl.generate_source(net, backend="triton")
    assert "lrn_within_forward_kernel" in source and "lrn_within_backward_kernel" in source
    model = netdsl.compile_net(net, backend="triton").to(dtype)
    x = (torch.randn(2, 3, 7, 6, dtype=dtype) * 3).requires_grad_()
    y = model(x)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    xd = x.detach().double().requires_grad_()
    want = lrn_within_autograd(xd, size, k, alpha, beta).flatten(1)
    close(y.detach(), want.detach(), tol, "triton forward")
    close(y.detach(), lrn_within_numpy(x.detach().double().numpy(), size, k, alpha, beta).reshape(2, -1), tol,
          "triton forward against the loop")
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, x, g)[0]
    expected = torch.autograd.grad(want, xd, g.double())[0]
    close(got, expected, tol, "triton backward")


def test_lrn_within_triton_split_over_two_devices():
    """With [net] groups = 2 on two (CPU) devices each group launches the kernels on its own chunk."""
    net = netdsl.parse_string(net_text(ELTWISE_GROUPS, shape="3x5x4", groups=2))
    reference = netdsl.compile_net(net, backend="torch")
    randomize(reference)
    model = netdsl.compile_net(net, backend="triton", devices=["cpu", "cpu"])
    model.load_state_dict(reference.state_dict())
    reference.eval(), model.eval()
    x = (torch.randn(2, 3, 5, 4) * 2).requires_grad_()
    want, got = reference(x), model(x)
    close(got, want, 1e-5, "forward")
    g = torch.randn_like(want)
    close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], 1e-5, "input gradient")


# ---------------------------------------------------------------- auxiliary heads

AUX = """
[c1]
type = conv
filters = 4
size = 3
neuron = relu
[aux_fc]
type = fc
outputs = 5
input = c1
[aux]
type = softmax
loss_weight = 0.3
[fc]
type = fc
outputs = 5
input = c1
"""


def test_aux_head_trains_and_eval_reads_the_main_output():
    net, model = build(net_text(AUX, shape="3x6x6"))
    assert [layer.name for layer in net.aux_outputs] == ["aux"]
    assert net.output.name == "prob" and net.layer("aux").options["loss_weight"] == 0.3
    randomize(model)
    x, y = torch.randn(4, 3, 6, 6), torch.randint(5, (4,))
    c1 = F.relu(plain_conv(x.double(), model.c1.weight.double(), model.c1.bias.double())).flatten(1)
    main = c1 @ model.fc.weight.double().T + model.fc.bias.double()
    aux = c1 @ model.aux_fc.weight.double().T + model.aux_fc.bias.double()
    model.train()
    outputs = model(x)
    assert isinstance(outputs, tuple) and len(outputs) == 2
    close(outputs[0], main, 1e-5, "main head, train mode")
    close(outputs[1], aux, 1e-5, "aux head, train mode")
    loss = train_loss(net, outputs, y)
    want = ce_sum(main, y) + 0.3 * ce_sum(aux, y)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor)
    close(logits, main, 1e-5, "eval mode")
    assert train_loss(net, logits, y).item() == pytest.approx(ce_sum(main, y).item(), rel=1e-5)


def test_aux_head_default_weight_is_one_and_sigmoid_heads_work():
    text = net_text(AUX.replace("loss_weight = 0.3\n", "").replace("type = softmax", "type = sigmoid"), shape="3x6x6",
                    output="[prob]\ntype = sigmoid\n")
    net, model = build(text)
    randomize(model)
    x, y = torch.randn(3, 3, 6, 6), torch.randint(5, (3,))
    outputs = model.train()(x)
    targets = F.one_hot(y, 5).double()

    def bce(z):
        z = z.double()
        return (torch.log(1 + torch.exp(-z)) * targets + torch.log(1 + torch.exp(z)) * (1 - targets)).sum()
    assert train_loss(net, outputs, y).item() == pytest.approx((bce(outputs[0]) + bce(outputs[1])).item(), rel=1e-5)


def test_reading_an_aux_output_from_a_later_layer_is_refused():
    text = net_text(AUX + "[fc2]\ntype = fc\noutputs = 5\ninput = aux\n", shape="3x6x6")
    err = error_of(text)
    assert "only the loss reads an output" in err.message and "`aux`" in err.message, err.message
    assert err.line == line_of(text, "input = aux"), str(err)


def test_negative_loss_weight_is_refused():
    text = net_text(AUX.replace("0.3", "-1"), shape="3x6x6")
    err = error_of(text)
    assert err.line == line_of(text, "loss_weight") and "at least 0" in err.message, str(err)


# ---------------------------------------------------------------- every new type through export, draw, time, diff

EVERY_NEW = """
[c1]
type = conv
filters = 6
size = 3
stride = 2
round = ceil
bias = none
init = msra
[bn1]
type = batchnorm
neuron = leaky(0.1)
[c2]
type = conv
filters = 6
size = 3
pad = 1
channel_groups = 3
init = xavier(avg)
neuron = elu
[s]
type = sum
input = bn1, c2
coeffs = 0.5, 1.5
[c3]
type = conv
input = bn1
filters = 6
size = 1
neuron = gelu
[m]
type = max
input = s, c3
neuron = silu
[w]
type = lrn
region = within
size = 3
k = 1
alpha = 0.05
[l1]
type = local
filters = 4
size = 2
pad = 1
stride = 2
round = ceil
neuron = softrelu
[bn2]
type = batchnorm
affine = no
neuron = brelu(2)
[f1]
type = fc
outputs = 8
bias = none
neuron = linear(0.5, 0.1)
[bn3]
type = batchnorm
eps = 0.01
neuron = abs
[auxf]
type = fc
input = bn3
outputs = 4
[aux]
type = softmax
loss_weight = 0.3
[f2]
type = fc
input = bn3
outputs = 4
neuron = square
[n]
type = neuron
neuron = tanh
"""

NEW_TYPES = {"batchnorm", "sum", "max", "local", "lrn", "conv", "fc", "neuron", "softmax"}


def every_new_net():
    return netdsl.parse_string(net_text(EVERY_NEW, shape="3x9x8", name="every_new"), "every_new.net")


def onnx_run(proto, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def onnx_agrees(net, model, x, what):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from netdsl.codegen.onnx_export import to_onnx
    model.eval()
    proto = to_onnx(net, model.state_dict())
    onnx.checker.check_model(proto, full_check=True)
    with torch.no_grad():
        want = model(x)
    got = onnx_run(proto, x)
    assert got.shape == want.shape
    error = ((got - want).norm() / want.norm()).item()
    assert error < 1e-4, f"{what}: onnxruntime differs by {error:.3g}, seed {SEED}"
    return proto


def test_every_new_type_exports_to_onnx():
    net = every_new_net()
    model = netdsl.compile_net(net, backend="torch")
    randomize(model, 0.4)
    proto = onnx_agrees(net, model, torch.randn(3, 3, 9, 8), "every new type")
    ops = {node.op_type for node in proto.graph.node}
    assert {"BatchNormalization", "Sum", "Max", "Einsum", "Pow", "Conv", "Gemm"} <= ops, ops
    # the auxiliary head is training only: not in the graph
    assert not any(node.name.startswith(("aux/", "auxf/")) or "auxf" in node.output[0] for node in proto.graph.node)


@pytest.mark.parametrize("written", [w for w, _ in NEURON_CASES])
def test_every_neuron_exports_to_onnx(written):
    net, model = build(net_text(f"[c1]\ntype = conv\nfilters = 3\nsize = 3\npad = 1\nneuron = {written}\n",
                                shape="2x4x4"))
    randomize(model)
    onnx_agrees(net, model, torch.randn(2, 2, 4, 4) * 2, written)


ONNX_CASES = [
    (BN_GROUPS, "3x5x4", 2),
    (ELTWISE_GROUPS, "3x5x4", 2),
    (LOCAL_GROUPS, "3x11x9", 2),
    (BN_MAPS.format(extra="affine = no"), "3x5x4", 1),
    (LRN_WITHIN.format(size=5, k=2, alpha=0.1, beta=0.75), "3x7x6", 1),
    (LRN_WITHIN.format(size=9, k=1, alpha=0.1, beta=0.5), "2x4x3", 1),   # the window past every edge
    (AUX.replace("outputs = 5", "outputs = 6"), "3x6x6", 2),              # the head is left out
]


@pytest.mark.parametrize("body, shape, groups", ONNX_CASES, ids=["bn_groups", "eltwise_groups", "local_groups",
                                                                  "bn_plain", "lrn_within_5", "lrn_within_9",
                                                                  "aux_groups"])
def test_new_types_over_groups_export_to_onnx(body, shape, groups):
    net, model = build(net_text(body, shape=shape, groups=groups))
    randomize(model)
    onnx_agrees(net, model, torch.randn(2, *net.input_shape) * 2, body.split("]")[0])


def test_every_new_type_draws():
    net = every_new_net()
    drawing = layout(net)
    by_layer = {box.layer: box for box in drawing.boxes}
    assert set(by_layer) == {layer.name for layer in net.layers}
    for layer in net.layers:
        assert by_layer[layer.name].type == layer.type
        assert f"{layer.name}\\n{layer.type}\\n{layer.out_shape}" == by_layer[layer.name].label
    assert {box.type for box in drawing.boxes} >= NEW_TYPES
    heads = {(a.tail, a.head, a.order, a.of) for a in drawing.arrows}
    assert ("bn1", "s", 1, 2) in heads and ("c2", "s", 2, 2) in heads
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return
    from netdsl.codegen.drawing import to_dot
    dot = to_dot(drawing)
    for layer in net.layers:
        assert f"{layer.name}\\n{layer.type}\\n" in dot


def test_every_new_type_draws_over_groups():
    net = netdsl.parse_string(net_text(ELTWISE_GROUPS, shape="3x5x4", groups=2))
    drawing = layout(net)
    assert {box.id for box in drawing.boxes if box.layer == "s"} == {"s@0", "s@1"}
    assert all(box.shape.c == 2 for box in drawing.boxes if box.layer in ("s", "m", "w"))
    # sum and max read inside each group: no copies between groups
    assert not any(a.kind == "cross" for a in drawing.arrows if a.head.split("@")[0] in ("s", "m", "w"))


def test_time_has_a_row_for_every_layer():
    net = every_new_net()
    timing = time_net(net, 2, "torch", None, repeats=1, warmup=0)
    assert [(row.name, row.type) for row in timing.layers] == [(layer.name, layer.type) for layer in net.layers[1:]]
    assert all(row.forward_ms >= 0 and row.backward_ms >= 0 for row in timing.layers)
    assert timing.step_ms > 0


AUX_GROUPS = AUX.replace("outputs = 5", "outputs = 6")


@pytest.mark.parametrize("body, shape", [(BN_GROUPS, "3x5x4"), (ELTWISE_GROUPS, "3x5x4"), (LOCAL_GROUPS, "3x11x9"),
                                         (AUX_GROUPS, "3x6x6")], ids=["batchnorm", "sum_max_lrn", "local", "aux_head"])
def test_time_split_over_two_devices(body, shape):
    """`netdsl time --devices cpu,cpu`: every layer timed over both groups, an auxiliary head too."""
    net = netdsl.parse_string(net_text(body, shape=shape, groups=2))
    timing = time_net(net, 2, "torch", ["cpu", "cpu"], repeats=1, warmup=0)
    assert [(row.name, row.type) for row in timing.layers] == [(layer.name, layer.type) for layer in net.layers[1:]]


def test_time_fused_with_an_aux_head_over_groups():
    net = netdsl.parse_string(net_text(AUX_GROUPS, shape="3x6x6", groups=2))
    timing = time_net(net, 2, "torch", None, repeats=1, warmup=0)
    assert [row.name for row in timing.layers] == [layer.name for layer in net.layers[1:]]


def test_aux_head_over_groups_split_equals_fused():
    net = netdsl.parse_string(net_text(AUX_GROUPS, shape="3x6x6", groups=2))
    fused = netdsl.compile_net(net, backend="torch")
    randomize(fused)
    split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"])
    split.load_state_dict(fused.state_dict())
    x, y = torch.randn(3, 3, 6, 6), torch.randint(6, (3,))
    fused.train(), split.train()
    want, got = fused(x), split(x)
    assert isinstance(got, tuple) and len(got) == 2
    for a, b, what in zip(got, want, ("main", "aux")):
        close(a, b, 1e-5, what)
    assert train_loss(net, got, y).item() == pytest.approx(train_loss(net, want, y).item(), rel=1e-5)
    fused.eval(), split.eval()
    with torch.no_grad():
        close(split(x), fused(x), 1e-5, "eval")


def test_the_triton_backend_computes_every_new_type_as_the_torch_backend():
    """Only lrn within has kernels of its own; the rest is the torch backend's code in the triton module."""
    net = every_new_net()
    reference = netdsl.compile_net(net, backend="torch")
    randomize(reference, 0.4)
    model = netdsl.compile_net(net, backend="triton")
    model.load_state_dict(reference.state_dict())
    x = torch.randn(3, 3, 9, 8)
    reference.train(), model.train()
    with torch.no_grad():
        for got, want, what in zip(model(x), reference(x), ("main", "aux")):
            close(got, want, 1e-5, f"train mode, {what}")
    reference.eval(), model.eval()
    with torch.no_grad():
        close(model(x), reference(x), 1e-5, "eval mode")


def test_compile_and_diff_commands_on_every_new_type(tmp_path, capsys):
    from netdsl.cli import main
    net = every_new_net()
    a, b = tmp_path / "a.net", tmp_path / "b.net"
    a.write_text(net.text)
    b.write_text(net.text.replace("type = max", "type = sum").replace("region = within", "region = across"))
    assert main(["compile", str(a)]) == 0
    report = capsys.readouterr().out
    for layer in net.layers:
        row = next(line.split() for line in report.splitlines() if line.split()[:1] == [layer.name])
        assert row[1] == layer.type and row[2] == str(layer.out_shape) and row[3] == f"{layer.params:,}"
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "~ [m] type max -> sum" in out and "~ [w] region within -> across" in out, out


DIFF_CASES = [  # (section text, what it becomes, the change netdsl diff must show)
    ("momentum = 0.1", "momentum = 0.2", "~ [bn1] momentum 0.1 -> 0.2"),
    ("eps = 0.01", "eps = 0.001", "~ [bn3] eps 0.01 -> 0.001"),
    ("affine = no", "affine = yes", "~ [bn2] affine no -> yes"),
    ("channel_groups = 3", "channel_groups = 1", "~ [c2] channel_groups 3 -> 1"),
    ("stride = 2\nround = ceil\nbias = none", "stride = 2\nround = floor\nbias = none", "~ [c1] round ceil -> floor"),
    ("bias = none\ninit = msra", "bias = 0.5\ninit = msra", "~ [c1] bias none -> 0.5"),
    ("init = msra", "init = xavier(out)", "~ [c1] init msra(in) -> xavier(out)"),
    ("coeffs = 0.5, 1.5", "coeffs = 2, 1.5", "~ [s] coeffs 0.5, 1.5 -> 2, 1.5"),
    ("neuron = silu", "neuron = leaky(0.2)", "~ [m] neuron silu -> leaky(0.2)"),
    ("region = within", "region = across", "~ [w] region within -> across"),
    ("filters = 4\nsize = 2", "filters = 8\nsize = 2", "~ [l1] filters 4 -> 8"),
    ("loss_weight = 0.3", "loss_weight = 0.5", "~ [aux] loss_weight 0.3 -> 0.5"),
    ("type = max", "type = sum", "~ [m] type max -> sum"),
    ("neuron = linear(0.5, 0.1)", "neuron = brelu(6)", "~ [f1] neuron linear(0.5, 0.1) -> brelu(6)"),
]


@pytest.mark.parametrize("before, after, change", DIFF_CASES, ids=[c for _, _, c in DIFF_CASES])
def test_diff_shows_a_changed_key_of_every_new_type(before, after, change):
    text = net_text(EVERY_NEW.replace("[bn1]\ntype = batchnorm\n", "[bn1]\ntype = batchnorm\nmomentum = 0.1\n"),
                    shape="3x9x8", name="every_new")
    assert text.count(before) == 1, before
    a = netdsl.parse_string(text, "a.net")
    b = netdsl.parse_string(text.replace(before, after), "b.net")
    lines = diff(a, b)
    assert any(line.startswith(change) for line in lines), lines
    assert diff(a, a) == []


def test_diff_writes_values_as_a_net_file_does():
    """`bias = none` and an unwritten `coeffs` are not Python's None in what `netdsl diff` prints."""
    text = net_text(ELTWISE.format(kind="sum", extra=""), shape="3x5x4").replace("pad = 1\n[b]", "pad = 1\nbias = none\n[b]")
    a = netdsl.parse_string(text, "a.net")
    b = netdsl.parse_string(text.replace("bias = none\n", "").replace("input = a, b, c", "input = a, b, c\ncoeffs = 1, 2, 1"),
                            "b.net")
    lines = diff(a, b)
    assert any(line.startswith("~ [a] bias ") for line in lines) and any(line.startswith("~ [e] coeffs ") for line in lines)
    assert not any("None" in line for line in lines), lines


def test_a_synced_batchnorm_is_refused_in_several_cpu_processes_pointing_at_it():
    """SyncBatchNorm exchanges its statistics on CUDA only: torchrun on the CPU would stop at the first
    step with PyTorch's ValueError; the run is refused before it starts, at the layer."""
    from netdsl.runner.model import check_layers_run

    text = ("[data]\ntype = data\nshape = 3x8x8\n[c]\ntype = conv\nfilters = 4\nsize = 3\n"
            "[bn]\ntype = batchnorm\nsync = yes\n[fc]\ntype = fc\noutputs = 3\n[prob]\ntype = softmax\n")
    net = netdsl.parse_string(text, "synced.net")
    with pytest.raises(netdsl.NetError) as refused:
        check_layers_run(net, None, 2)
    assert (refused.value.line, refused.value.col) == (8, 1) and "SyncBatchNorm" in str(refused.value)   # [bn]
    check_layers_run(net, None, 1)                                      # one process: plain batch norm
    check_layers_run(netdsl.parse_string(text.replace("sync = yes", "sync = no")), None, 2)
