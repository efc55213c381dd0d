"""`netdsl import caffe` and `netdsl import cuda-convnet` (netdsl/importers/): the same network or a refusal.

    python -m pytest tests/test_import.py

The files of tests/import_files/ were written for these tests, one of each format (Caffe's V2
and V1 syntax, deploy and train_val, solvers; cuda-convnet's layer and parameter files, and a
model-parallel pair file), covering each layer type. Each conversion is held, numerically,
against the original system's own formula, written here from its source (Caffe's
lrn_layer.cpp and pooling_layer.cpp; cuda-convnet's conv_util.cu and layer.py), on small maps
whose windows overhang, clip and pad. The public networks themselves are in docs/import.md.
"""
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netdsl
from netdsl import cli
from netdsl.errors import NetError
from netdsl.importers.caffe import convert_caffe
from netdsl.importers.cuda_convnet import convert_cuda_convnet
from netdsl.importers.netwriter import Refusal
from netdsl.importers.prototxt import parse_prototxt

FILES = Path(__file__).resolve().parent / "import_files"


def run_cli(*argv):
    """netdsl's exit status, stdout and stderr."""
    import contextlib
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def logits_of(imported, x, state=None):
    """The imported network's output before the softmax, for input x (eval mode)."""
    model = netdsl.compile_net(imported.net, backend="torch").eval()
    if state:
        model.load_state_dict(state, strict=False)
    with torch.no_grad():
        return model(x)


def caffe_net(layers: str, shape="1x3x7x7") -> bytes:
    dims = " ".join(f"dim: {d}" for d in shape.split("x"))
    return (f'name: "t"\ninput: "data"\ninput_shape {{ {dims} }}\n{layers}\n'
            'layer { name: "prob" type: "Softmax" bottom: "out" top: "prob" }\n').encode()


# ---------------------------------------------------------------- Caffe: the files


def test_every_caffe_layer_type_imports_and_compiles():
    imported = convert_caffe(FILES / "every_layer.prototxt")
    net = imported.net
    types = {layer.name: layer.type for layer in net.layers}
    assert types == {"data": "data", "conv1_3x3": "conv", "relu1": "neuron", "norm1": "lrn", "pool1": "maxpool",
                     "conv2": "conv", "bn2": "batchnorm", "relu2": "neuron", "branch_a": "conv",
                     "branch_a_sig": "neuron", "branch_b": "conv", "branch_b_tanh": "neuron", "sum": "sum",
                     "max": "max", "abs": "neuron", "bnll": "neuron", "power": "neuron", "bn_plain": "batchnorm",
                     "within": "lrn", "concat": "neuron", "pool2": "avgpool", "gap": "avgpool", "fc": "fc",
                     "drop": "dropout", "prob": "softmax"}
    o = {layer.name: layer.options for layer in net.layers}
    assert o["relu1"]["neuron"] == ("leaky", 0.1)
    assert o["conv1_3x3"]["init"] == ("normal", 0.0, 0.01) and o["conv1_3x3"]["bias"] == pytest.approx(0.1)
    assert o["conv1_3x3"]["lr_mult"] == (1, 2) and o["conv1_3x3"]["decay_mult"] == (1, 0)
    assert o["conv2"]["channel_groups"] == 2 and o["conv2"]["bias"] is None
    assert o["conv2"]["init"] == ("xavier", "out")
    assert o["branch_a"]["init"] == ("msra", "in") and o["branch_a"]["decay_mult"] == (1, 1)  # Caffe decays biases
    assert o["branch_b"]["init"] == ("uniform", -0.1, 0.1)
    assert o["bn2"]["affine"] is True and o["bn2"]["momentum"] == pytest.approx(0.1) and o["bn2"]["eps"] == 0.001
    assert o["bn_plain"]["affine"] is False and o["bn_plain"]["momentum"] == pytest.approx(0.001)
    assert o["norm1"]["k"] == 1 and o["norm1"]["alpha"] == pytest.approx(0.0001 / 5)
    assert o["within"]["region"] == "within" and o["within"]["alpha"] == pytest.approx(0.0005 / 9)
    assert o["pool1"]["round"] == "ceil" and o["gap"]["size"] == 4
    assert o["sum"]["coeffs"] == (1, -0.5)
    assert o["power"]["neuron"] == ("linear", 2.0, 1.0) and o["bnll"]["neuron"] == ("softrelu",)
    assert o["drop"]["p"] == pytest.approx(0.3) and o["drop"]["rescale"] == "train"
    assert net.layer("concat").inputs == ("within", "relu2")
    assert net.layer("fc").in_shape == (16, 1, 1)
    # in place layers read what came before them: the ReLU after the batchnorm, the concat after it
    assert net.layer("relu2").inputs == ("bn2",) and net.layer("branch_b").inputs == ("relu2",)
    assert "Caffe's layer 'conv1/3x3'" in imported.text and "# Caffe Convolution" in imported.text
    scale = next(o for o in imported.origins if o.name == "scale2")
    assert scale.netdsl == "bn2" and "folded" in scale.note


def test_the_train_val_file_keeps_the_train_phase_the_aux_head_and_the_transform():
    imported = convert_caffe(FILES / "train_val.prototxt", input_shape=(3, 16, 16))
    net, text = imported.net, imported.text
    assert [layer.name for layer in net.layers] == ["data", "conv1", "relu1", "aux_fc", "aux_loss", "fc", "loss"]
    assert net.layer("aux_loss").options["loss_weight"] == pytest.approx(0.3)
    assert net.layer("aux_fc").inputs == ("relu1",) and net.layer("fc").inputs == ("relu1",)   # through the Split
    assert net.train.mean == (123, 117, 104)   # Caffe's B, G, R as netdsl's R, G, B
    assert net.train.scale == 0.5 and net.train.flip is True and net.train.lighting == 0 and net.train.batch == 50
    assert "data (Data): TEST phase only" in text and "accuracy (Accuracy): TEST phase only" in text
    assert "split1 (Split)" in text
    assert net.layer("fc").options["bias"] == 1


def test_the_v1_syntax_with_enum_types_blobs_lr_and_input_dim():
    imported = convert_caffe(FILES / "v1_layers.prototxt")
    net = imported.net
    assert net.input_shape == (1, 12, 12)
    assert [layer.type for layer in net.layers] == ["data", "conv", "neuron", "maxpool", "dropout", "lrn", "fc", "softmax"]
    assert net.layer("conv1_a").options["lr_mult"] == (1, 2) and net.layer("conv1_a").options["decay_mult"] == (1, 0)
    assert net.layer("ip").options["decay_mult"] == (1, 1)
    assert net.layer("conv1_a").options["init"] == ("normal", 0.0, 0.05)
    assert "V1 `layers {}`" in imported.text and "Caffe's layer 'conv1-a'" in imported.text
    assert net.params == 4 * 25 + 4 + 3 * 4 * 16 + 3


def test_the_input_comes_from_the_flag_where_the_file_gives_only_a_crop():
    with pytest.raises(Refusal, match=r"train_val.prototxt:4: error: layer 'data' \(Data\): the file gives its "
                                      r"16x16 crop, not its channels .* give --input CxHxW"):
        convert_caffe(FILES / "train_val.prototxt")
    with pytest.raises(Refusal, match="the file gives the input .*x16x16, but --input says 3x20x20"):
        convert_caffe(FILES / "train_val.prototxt", input_shape=(3, 20, 20))


@pytest.mark.parametrize("solver, keys", [
    ("solver_step.prototxt", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "epochs": 15, "batch": 50,
                              "schedule": "multistep", "milestones": (5, 10), "gamma": 0.1, "optimizer": "sgd"}),
    ("solver_multistep.prototxt", {"optimizer": "nesterov", "lr": 0.1, "momentum": 0.95, "weight_decay": 0,
                                   "epochs": 10, "schedule": "multistep", "milestones": (2, 5), "gamma": 0.5}),
    ("solver_each_epoch.prototxt", {"schedule": "step", "gamma": 0.9, "batch": 100, "epochs": 10, "momentum": 0}),
    ("solver_fixed.prototxt", {"schedule": "none", "epochs": 3, "lr": 0.001, "weight_decay": 0.004}),
])
def test_a_solver_becomes_the_recipe_in_epochs(solver, keys):
    imported = convert_caffe(FILES / "train_val.prototxt", solver=FILES / solver, input_shape=(3, 16, 16),
                             train_images=1000)
    train = imported.net.train
    for key, value in keys.items():
        assert getattr(train, key) == pytest.approx(value) if isinstance(value, float) else getattr(train, key) == value, key


@pytest.mark.parametrize("solver, images, message", [
    ("solver_poly.prototxt", 1000, r"solver_poly.prototxt:3:1: error: lr_policy \"poly\" changes the learning rate at every iteration"),
    ("solver_adam.prototxt", 1000, r"solver_adam.prototxt:2:1: error: solver type Adam: Caffe's Adam adds delta"),
    ("solver_step.prototxt", 1010, r"1010 training images are not a whole number of batches of 50"),
    ("solver_step.prototxt", 1500, r"max_iter 300 iterations is 10 epochs|stepsize 100 iterations is 3.33333 epochs"),
    ("solver_step.prototxt", None, r"give --train-images N"),
])
def test_a_solver_netdsl_cannot_follow_exactly_is_refused(solver, images, message):
    with pytest.raises(NetError, match=message):
        convert_caffe(FILES / "train_val.prototxt", solver=FILES / solver, input_shape=(3, 16, 16), train_images=images)


def test_a_step_that_falls_inside_an_epoch_is_refused():
    solver = b'base_lr: 0.1\nlr_policy: "step"\ngamma: 0.1\nstepsize: 30\nmax_iter: 100\n'
    path = Path("/nonexistent/solver.prototxt")
    from netdsl.importers.caffe import CaffeImporter
    importer = CaffeImporter(str(FILES / "train_val.prototxt"), (FILES / "train_val.prototxt").read_bytes(),
                             (3, 16, 16), (str(path), solver), 1000)
    with pytest.raises(NetError, match=r"solver.prototxt:4:1: error: stepsize 30 iterations is 1.5 epochs"):
        importer.convert()


# ---------------------------------------------------------------- Caffe: each conversion, numerically


def caffe_lrn_across(x, size, alpha, beta, k):
    """lrn_layer.cpp CrossChannelForward_cpu: scale = k + alpha / size * sum over the window of x^2."""
    x = x.double()
    n, c, h, w = x.shape
    pre = (size - 1) // 2
    padded = F.pad(x * x, (0, 0, 0, 0, pre, size - pre - 1))
    total = sum(padded[:, i:i + c] for i in range(size))
    return x * (k + alpha / size * total) ** -beta


def caffe_lrn_within(x, size, alpha, beta):
    """WITHIN_CHANNEL: AVE pooling of x^2 (pad (size-1)/2, every window size^2 cells), then (1 + alpha avg)^-beta."""
    x = x.double()
    avg = F.avg_pool2d(x * x, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    return x * (1 + alpha * avg) ** -beta


def caffe_pool(x, kind, size, stride, pad):
    """pooling_layer.cpp Forward_cpu, rounding up: the windows, their cells clipped, AVE's divisor."""
    x = x.double()
    n, c, h, w = x.shape
    out_h = math.ceil((h + 2 * pad - size) / stride) + 1
    out_w = math.ceil((w + 2 * pad - size) / stride) + 1
    if pad and (out_h - 1) * stride >= h + pad:
        out_h -= 1
    if pad and (out_w - 1) * stride >= w + pad:
        out_w -= 1
    y = torch.zeros(n, c, out_h, out_w, dtype=torch.float64)
    for ph in range(out_h):
        for pw in range(out_w):
            hs, ws = ph * stride - pad, pw * stride - pad
            he, we = min(hs + size, h + pad), min(ws + size, w + pad)
            pool_size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            cells = x[:, :, hs:he, ws:we]
            y[:, :, ph, pw] = cells.amax((2, 3)) if kind == "MAX" else cells.sum((2, 3)) / pool_size
    return y


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_caffe_lrn_is_caffe_s_formula(region):
    layers = ('layer { name: "out" type: "LRN" bottom: "data" top: "out" lrn_param { local_size: 5 alpha: 0.3 '
              f'beta: 0.6 k: 2 norm_region: {region} }} }}')
    imported = convert_caffe("lrn.prototxt", data=caffe_net(layers, "1x6x7x7"))
    x = torch.randn(2, 6, 7, 7) * 3
    want = caffe_lrn_across(x, 5, 0.3, 0.6, 2) if region == "ACROSS_CHANNELS" else caffe_lrn_within(x, 5, 0.3, 0.6)
    torch.testing.assert_close(logits_of(imported, x).double(), want.flatten(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool, size, stride, pad, extent", [
    ("MAX", 3, 2, 0, 8), ("AVE", 3, 2, 0, 8), ("AVE", 3, 2, 1, 8), ("MAX", 3, 2, 1, 7), ("AVE", 2, 2, 1, 7),
    ("AVE", 3, 3, 1, 10), ("MAX", 2, 3, 0, 7),
])
def test_caffe_pooling_rounds_up_and_averages_as_caffe_does(pool, size, stride, pad, extent):
    layers = (f'layer {{ name: "out" type: "Pooling" bottom: "data" top: "out" pooling_param {{ pool: {pool} '
              f'kernel_size: {size} stride: {stride} pad: {pad} }} }}')
    imported = convert_caffe("pool.prototxt", data=caffe_net(layers, f"1x2x{extent}x{extent}"))
    x = torch.randn(2, 2, extent, extent)
    want = caffe_pool(x, pool, size, stride, pad)
    assert imported.net.layer("out").out_shape[1:] == tuple(want.shape[2:])
    torch.testing.assert_close(logits_of(imported, x).double(), want.flatten(1), rtol=1e-6, atol=1e-6)


def test_a_pool_whose_last_window_caffe_would_start_past_the_map_is_refused():
    layers = ('layer { name: "out" type: "Pooling" bottom: "data" top: "out" pooling_param { pool: MAX '
              'kernel_size: 1 stride: 3 } }')
    with pytest.raises(Refusal, match=r"pool.prototxt:4: error: layer 'out' \(Pooling\): Caffe pools the 5x5 map to 3x3"):
        convert_caffe("pool.prototxt", data=caffe_net(layers, "1x2x5x5"))


def test_caffe_dropout_rescales_in_training_and_scale_train_false_at_test():
    for scale_train, rescale in (("true", "train"), ("false", "test")):
        layers = ('layer { name: "out" type: "Dropout" bottom: "data" top: "out" dropout_param { dropout_ratio: 0.25 '
                  f'scale_train: {scale_train} }} }}')
        layer = convert_caffe("d.prototxt", data=caffe_net(layers)).net.layer("out")
        assert layer.options["p"] == 0.25 and layer.options["rescale"] == rescale


def test_caffe_batchnorm_and_scale_are_one_batchnorm_whose_eval_is_caffe_s():
    layers = ('layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" batch_norm_param { eps: 0.01 } }\n'
              'layer { name: "sc" type: "Scale" bottom: "bn" top: "out" scale_param { bias_term: true } }')
    imported = convert_caffe("bn.prototxt", data=caffe_net(layers, "1x3x4x4"))
    mean, var, gamma, beta = torch.randn(3), torch.rand(3) + 0.5, torch.randn(3), torch.randn(3)
    state = {"bn.running_mean": mean, "bn.running_var": var, "bn.weight": gamma, "bn.bias": beta}
    x = torch.randn(2, 3, 4, 4)
    model = netdsl.compile_net(imported.net, backend="torch").eval()
    own = {k: v for k, v in model.state_dict().items()}
    renamed = {next(k for k in own if k.endswith(name.split(".")[1]) and "bn" in k): v for name, v in state.items()}
    model.load_state_dict({**own, **renamed})
    with torch.no_grad():
        got = model(x)
    # Caffe: (x - mean) / sqrt(var + eps), then Scale: * gamma + beta
    want = ((x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 0.01)) * gamma[:, None, None] + beta[:, None, None]
    torch.testing.assert_close(got, want.flatten(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer, message", [
    ('layer { name: "out" type: "PReLU" bottom: "data" top: "out" }', r"\(PReLU\): its negative slope is learnt"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 2 '
     'kernel_size: 3 dilation: 2 } }', r"\(Convolution\): a dilated convolution"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 2 '
     'kernel_h: 3 kernel_w: 1 } }', r"kernel_size 3 x 1 is not square"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 2 '
     'kernel_size: 3 weight_filler { type: "constant" value: 1 } } }', r"its weight_filler is constant 1"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 2 '
     'kernel_size: 3 bias_filler { type: "gaussian" } } }', r"its bias_filler is `gaussian`"),
    ('layer { name: "out" type: "Pooling" bottom: "data" top: "out" pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
     r"stochastic pooling"),
    ('layer { name: "out" type: "Eltwise" bottom: "data" bottom: "data" top: "out" eltwise_param { operation: PROD } }',
     r"an elementwise product"),
    ('layer { name: "b" type: "BatchNorm" bottom: "data" top: "b" }\nlayer { name: "out" type: "Scale" bottom: "b" '
     'top: "out" }', r"layer 'out' \(Scale\): a Scale without bias_term"),
    ('layer { name: "out" type: "Scale" bottom: "data" top: "out" }', r"\(Scale\): netdsl scales only inside"),
    ('layer { name: "out" type: "LRN" bottom: "data" top: "out" lrn_param { local_size: 4 } }', r"local_size 4 is even"),
    ('layer { name: "out" type: "ReLU" bottom: "data" top: "out" convolution_param { num_output: 2 } '
     'propagate_down: false }', r"propagate_down: false"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" param { name: "shared" } '
     'convolution_param { num_output: 2 kernel_size: 1 } }', r"shared with another layer"),
    ('layer { name: "out" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 2 '
     'kernel_size: 3 engine: CUDNN cudnn_magic: 1 } }', r"convolution_param has the field `cudnn_magic`"),
])
def test_a_layer_netdsl_cannot_express_is_refused_in_one_line(layer, message):
    with pytest.raises(NetError) as caught:
        convert_caffe("net.prototxt", data=caffe_net(layer))
    assert "\n" not in str(caught.value) and caught.value.line
    assert str(caught.value).startswith("net.prototxt:")
    import re
    assert re.search(message, str(caught.value)), str(caught.value)


# ---------------------------------------------------------------- cuda-convnet


def test_every_cuda_convnet_layer_type_imports_and_compiles():
    imported = convert_cuda_convnet(FILES / "every_layer.cfg", FILES / "every_layer_params.cfg", (3, 15, 15))
    net = imported.net
    o = {layer.name: layer.options for layer in net.layers}
    assert [layer.name for layer in net.layers] == [
        "data", "conv1", "pool1", "pool1_neuron", "pool1_neuron_2", "pool1_neuron_3", "rnorm1", "rnorm2", "cnorm1",
        "conv2", "local3", "pool2", "square", "linear", "sum", "max", "cat", "drop", "fc_a", "drop2", "fc", "probs"]
    assert o["conv1"]["round"] == "ceil" and net.layer("conv1").out_shape == (16, 8, 8)   # 1 + ceil(14 / 2)
    assert o["conv1"]["neuron"] == ("relu",) and o["conv1"]["bias"] == 0.5 and o["conv1"]["init"] == ("normal", 0, 0.01)
    # tanh[1.7159,0.6666] is 1.7159 tanh(0.6666 x): the detached neuron, in three
    assert [o[n]["neuron"] for n in ("pool1_neuron", "pool1_neuron_2", "pool1_neuron_3")] == [
        ("linear", pytest.approx(0.6666), 0.0), ("tanh",), ("linear", pytest.approx(1.7159), 0.0)]
    assert o["rnorm1"]["k"] == 2 and o["rnorm1"]["alpha"] == pytest.approx(0.001 / 5)
    assert o["rnorm2"]["region"] == "within" and o["rnorm2"]["k"] == 1 and o["rnorm2"]["alpha"] == pytest.approx(0.0009 / 9)
    assert o["cnorm1"]["neuron"] == ("linear", pytest.approx(2 ** -0.75), 0.0)
    assert o["conv2"]["filters"] == 16 and o["conv2"]["channel_groups"] == 2 and o["conv2"]["neuron"] == ("brelu", 6.0)
    assert net.layer("local3").type == "local" and net.layer("local3").params == 16 * 16 * (16 * 9 + 1)
    assert o["sum"]["coeffs"] == (1, -0.5) and net.layer("cat").inputs == ("max", "pool2")
    assert o["drop"]["p"] == pytest.approx(0.2) and o["drop"]["rescale"] == "test"
    assert o["drop2"]["p"] == pytest.approx(0.4) and o["drop2"]["rescale"] == "train"
    assert net.layer("fc_a").inputs == ("drop", "pool2") and o["fc_a"]["neuron"] == ("softrelu",)
    train = net.train
    assert (train.lr, train.momentum, train.weight_decay, train.schedule) == (0.001, 0.9, 0.004, "none")
    assert o["conv1"]["lr_mult"] == (1, 2) and o["conv1"]["decay_mult"] == (1, 0)
    assert o["fc_a"]["decay_mult"] == (7.5, 0) and o["fc"]["lr_mult"] == (0.5, 2) and o["fc"]["decay_mult"] == (0, 0)
    assert "labels (data): the labels" in imported.text


def cc_conv(x, weight, bias, padding, stride):
    """filter_acts.cu: modulesX = 1 + ceil((2 padding + size - filterSize) / stride), windows from -padding,
    every pixel outside the image 0 (so the last window may reach past the padding)."""
    size, k = x.shape[-1], weight.shape[-1]
    modules = 1 + math.ceil((2 * padding + size - k) / stride)
    far = (modules - 1) * stride + k - padding - size
    padded = F.pad(x.double(), (padding, max(far, 0), padding, max(far, 0)))
    return F.conv2d(padded, weight.double(), bias.double(), stride=stride)[:, :, :modules, :modules]


def cc_avg_pool(x, size, stride):
    """conv_util.cu kLocalPool with AvgPooler: ceil((imgSize - sizeX) / stride) + 1 windows, each the mean
    of its cells inside the image (regionSize)."""
    n = x.shape[-1]
    out = math.ceil((n - size) / stride) + 1
    y = torch.zeros(*x.shape[:2], out, out, dtype=torch.float64)
    for i in range(out):
        for j in range(out):
            y[:, :, i, j] = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size].double().mean((2, 3))
    return y


def cc_cmrnorm(x, size, scale, power, min_div):
    """kFCNorm: window from f - size/2, clipped; denom = minDiv + scale / size * sum of squares."""
    x = x.double()
    c = x.shape[1]
    total = torch.zeros_like(x)
    for f in range(c):
        start = f - size // 2
        total[:, f] = (x[:, max(0, start):min(c, start + size)] ** 2).sum(1)
    return x * (min_div + scale / size * total) ** -power


def cc_rnorm(x, size, scale, power, min_div):
    """kCNorm: the size x size window from -size/2, clipped to the image; scale / size^2."""
    x = x.double()
    h = x.shape[-1]
    total = torch.zeros_like(x)
    for i in range(h):
        for j in range(h):
            si, sj = i - size // 2, j - size // 2
            total[:, :, i, j] = (x[:, :, max(0, si):min(h, si + size), max(0, sj):min(h, sj + size)] ** 2).sum((2, 3))
    return x * (min_div + scale / size ** 2 * total) ** -power


def cc_import(layers: str, params: str, shape):
    text = f"[data]\ntype=data\ndataIdx=0\n\n{layers}\n\n[probs]\ntype=softmax\ninputs=out\n"
    return convert_cuda_convnet("t.cfg", "t-params.cfg" if params else None, shape, data=text.encode(),
                                params_data=params.encode() if params else None)


@pytest.mark.parametrize("size, padding, stride, extent", [(5, 2, 2, 15), (3, 1, 2, 8), (5, 0, 3, 12), (4, 1, 3, 9)])
def test_cuda_convnet_conv_rounds_up_and_overhangs_into_zeros(size, padding, stride, extent):
    imported = cc_import(f"[out]\ntype=conv\ninputs=data\nchannels=3\nfilters=16\npadding={padding}\nstride={stride}\n"
                         f"filterSize={size}\npartialSum=1", "", (3, extent, extent))
    model = netdsl.compile_net(imported.net, backend="torch").eval()
    state = model.state_dict()
    weight_key = next(k for k in state if k.endswith("weight"))
    bias_key = next(k for k in state if k.endswith("bias"))
    weight, bias = torch.randn_like(state[weight_key]), torch.randn_like(state[bias_key])
    model.load_state_dict({**state, weight_key: weight, bias_key: bias})
    x = torch.randn(2, 3, extent, extent)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got.double(), cc_conv(x, weight, bias, padding, stride).flatten(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, stride, extent", [(3, 2, 8), (3, 2, 7), (2, 2, 7), (3, 3, 8)])
def test_cuda_convnet_avg_pool_divides_by_the_cells_inside_the_image(size, stride, extent):
    imported = cc_import(f"[out]\ntype=pool\npool=avg\ninputs=data\nchannels=2\nsizeX={size}\nstride={stride}",
                         "", (2, extent, extent))
    x = torch.randn(2, 2, extent, extent)
    torch.testing.assert_close(logits_of(imported, x).double(), cc_avg_pool(x, size, stride).flatten(1),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind, min_div", [("cmrnorm", None), ("cmrnorm", 2), ("rnorm", None), ("rnorm", 1.5)])
def test_cuda_convnet_norms_divide_scale_by_their_window(kind, min_div):
    params = "[out]\nscale=0.5\npow=0.75\n" + (f"minDiv={min_div}\n" if min_div else "")
    imported = cc_import(f"[out]\ntype={kind}\ninputs=data\nchannels=16\nsize=3", params, (16, 5, 5))
    x = torch.randn(2, 16, 5, 5)
    reference = cc_cmrnorm if kind == "cmrnorm" else cc_rnorm
    want = reference(x, 3, 0.5, 0.75, min_div or 1.0)
    torch.testing.assert_close(logits_of(imported, x).double(), want.flatten(1), rtol=1e-5, atol=1e-6)


def test_cuda_convnet_tanh_a_b_is_a_tanh_of_b_x():
    imported = cc_import("[out]\ntype=neuron\ninputs=data\nneuron=tanh[1.7,0.5]", "", (2, 3, 3))
    x = torch.randn(2, 2, 3, 3) * 3
    torch.testing.assert_close(logits_of(imported, x), (1.7 * torch.tanh(0.5 * x)).flatten(1), rtol=1e-6, atol=1e-6)


def test_the_model_parallel_pairs_are_one_layer_over_two_groups():
    imported = convert_cuda_convnet(FILES / "model_parallel.cfg", FILES / "model_parallel_params.cfg", (3, 8, 8),
                                    network_only=True)
    net = imported.net
    assert net.groups == 2
    assert [(layer.name, layer.type) for layer in net.layers] == [("data", "data"), ("conv1", "conv"), ("rnorm1", "lrn"),
                                                      ("conv2", "conv"), ("fc1", "fc"), ("fc2", "fc"), ("probs", "softmax")]
    assert net.layer("conv1").options["filters"] == 32 and net.layer("conv1").options["connect"] == "all"
    assert net.layer("conv2").options["connect"] == "group" and net.layer("conv2").options["filters"] == 32
    assert net.layer("fc1").options["connect"] == "all" and net.layer("fc1").options["outputs"] == 16
    # conv2a's 8x8 input, padding 1, stride 2: 1 + ceil(7 / 2) = 5 wide (floor would give 4)
    assert net.layer("conv2").out_shape == (32, 5, 5)
    # each of cuda-convnet's layers: conv1a 3*9*16+16, conv2a 16*9*16+16, fc1a (2*16*5*5)*8+8, fc2 16*4+4
    assert net.params == 2 * (3 * 9 * 16 + 16) + 2 * (16 * 9 * 16 + 16) + 2 * (2 * 16 * 25 * 8 + 8) + 16 * 4 + 4
    assert "different orders" in imported.text
    assert {o.name: o.netdsl for o in imported.origins}["conv2b"] == "conv2"


def test_a_schedule_in_the_parameter_file_is_refused_unless_the_layers_alone_are_asked_for():
    with pytest.raises(NetError, match=r"model_parallel_params.cfg:30:1: error: layer 'fc1a': epsw=dexp.* "
                                       r"--network-only"):
        convert_cuda_convnet(FILES / "model_parallel.cfg", FILES / "model_parallel_params.cfg", (3, 8, 8))


@pytest.mark.parametrize("layer, params, message", [
    ("[out]\ntype=neuron\ninputs=data\nneuron=sqrt", "", r"t.cfg:5: error: layer 'out' \(neuron\): neuron sqrt: netdsl has no square-root"),
    ("[out]\ntype=neuron\ninputs=data\nneuron=log[1]", "", r"netdsl has no logarithm neuron"),
    ("[out]\ntype=neuron\ninputs=data\nneuron=nrelu", "", r"noisy ReLU"),
    ("[out]\ntype=cnorm\ninputs=data\nchannels=4\nsize=3", "[out]\nscale=1\npow=0.5", r"contrast normalization over 3x3"),
    ("[out]\ntype=cmrnorm\ninputs=data\nchannels=4\nsize=4", "[out]\nscale=1\npow=0.5", r"size=4 is even"),
    ("[out]\ntype=cmrnorm\ninputs=data\nchannels=4\nsize=3\nblocked=1", "[out]\nscale=1\npow=0.5", r"blocked=1"),
    ("[out]\ntype=cmrnorm\ninputs=data\nchannels=4\nsize=3", "", r"give LAYER_PARAMS.cfg"),
    ("[out]\ntype=pool\npool=avg\ninputs=data\nchannels=4\nsizeX=3\nstride=2\nstart=-1", "", r"an average pool with start=-1"),
    ("[out]\ntype=pool\npool=maxabs\ninputs=data\nchannels=4\nsizeX=3\nstride=2", "", r"pool=maxabs"),
    ("[out]\ntype=conv\ninputs=data\nchannels=4\nfilters=16\nfilterSize=3\nsharedBiases=0", "", r"sharedBiases=0"),
    ("[out]\ntype=conv\ninputs=data\nchannels=3\nfilters=16\nfilterSize=3", "", r"channels=3 but its input has 4"),
    ("[out]\ntype=conv\ninputs=data\nchannels=4\nfilters=16\nfilterSize=3\nwhatever=1", "", r"`whatever` is not a key"),
    ("[out]\ntype=blur\ninputs=data\nchannels=4", "", r"netdsl has no Gaussian blur layer"),
])
def test_a_cuda_convnet_layer_netdsl_cannot_express_is_refused(layer, params, message):
    import re
    with pytest.raises(NetError) as caught:
        cc_import(layer, params, (4, 8, 8))
    assert "\n" not in str(caught.value) and caught.value.line and re.search(message, str(caught.value)), str(caught.value)


# ---------------------------------------------------------------- the command, malformed input, round trip


def test_the_command_writes_the_net_and_compile_gives_the_same_counts(tmp_path):
    out = tmp_path / "every.net"
    status, stdout, stderr = run_cli("import", "caffe", FILES / "every_layer.prototxt", "-o", out)
    assert status == 0 and stderr == "" and stdout.startswith(f"{out}: EveryLayer, 25 layers, 842 parameters")
    status, stdout, _ = run_cli("compile", out, "--json")
    report = json.loads(stdout)
    assert status == 0 and report["params"] == convert_caffe(FILES / "every_layer.prototxt").net.params == 842
    status, stdout, _ = run_cli("import", "cuda-convnet", FILES / "every_layer.cfg", FILES / "every_layer_params.cfg",
                                "--input", "3x15x15")
    assert status == 0 and "[probs]" in stdout and netdsl.parse_string(stdout).params == 41_544


@pytest.mark.parametrize("argv, message", [
    (["caffe", FILES / "malformed.prototxt"], "malformed.prototxt:6:1: error: the file ends inside a message"),
    (["caffe", FILES / "refused_prelu.prototxt"],
     "refused_prelu.prototxt:5: error: layer 'res2a' (PReLU): its negative slope is learnt"),
    (["cuda-convnet", FILES / "malformed.cfg", "--input", "3x8x8"],
     "malformed.cfg:8:1: error: neither a `key=value` line nor a [section] header"),
    (["cuda-convnet", FILES / "refused_sqrt.cfg", "--input", "3x8x8"],
     "refused_sqrt.cfg:5: error: layer 'conv1' (conv): neuron sqrt"),
    (["caffe", FILES / "every_layer.prototxt", "--input", "3x8"], "error: --input takes C x H x W"),
    (["caffe", FILES / "no_such.prototxt"], "no_such.prototxt: error: no such file"),
])
def test_a_bad_or_refused_file_is_one_line_exit_2_and_nothing_written(tmp_path, argv, message):
    out = tmp_path / "out.net"
    status, stdout, stderr = run_cli("import", *argv, "-o", out)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1 and message in stderr, stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_binary_file_is_refused_as_one():
    with pytest.raises(NetError, match="this is a binary file"):
        parse_prototxt(b"\x08\x01\x12\x00weights", "alexnet.caffemodel")


@pytest.mark.parametrize("argv, shape", [
    (["caffe", FILES / "v1_layers.prototxt"], (3, 1, 12, 12)),
    (["caffe", FILES / "every_layer.prototxt"], (3, 3, 13, 13)),
    (["cuda-convnet", FILES / "every_layer.cfg", FILES / "every_layer_params.cfg", "--input", "3x15x15"], (3, 3, 15, 15)),
])
def test_an_imported_network_exports_to_onnx_and_onnxruntime_runs_it(tmp_path, argv, shape):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "imported.net"
    assert run_cli("import", *argv, "-o", out)[0] == 0
    torch.manual_seed(0)
    model = netdsl.compile_net(str(out), backend="torch").eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    status, _, stderr = run_cli("export", out, "--checkpoint", tmp_path / "weights.pt", "-o", tmp_path / "net.onnx")
    assert status == 0, stderr
    x = torch.randn(*shape)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
