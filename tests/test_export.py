"""netdsl export: the ONNX model, run by onnxruntime on the CPU, against the torch backend and the
papers' formulas; and the exports it refuses."""
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

import netdsl
from netdsl.cli import main
from conftest import one_line_error
from reference import images, lrn_formula, lrn_per_group, relative_error, si_formula
from test_reference import strong_weights

TOLERANCE = 1e-4


def session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2   # the machine's cores are shared
    options.log_severity_level = 2     # a shape the graph declares but the run contradicts warns: see it
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run_onnx(model, x: torch.Tensor) -> torch.Tensor:
    s = session(model)
    return torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])


def with_weights(net, seed=0):
    """The torch-backend module in eval mode with He-scaled weights: LRN really divides, SI scales compete."""
    torch.manual_seed(seed)
    model = netdsl.compile_net(net, backend="torch").eval()
    strong_weights(model)
    return model


def save_checkpoint(model, path, runner: bool):
    """As netdsl train writes it (the state dict under `model`), or a plain state dict."""
    state = model.state_dict()
    torch.save({"model": state, "epoch": 1} if runner else state, path)
    return str(path)


def export(net_path, ckpt, out, *flags) -> int:
    return main(["export", str(net_path), "--checkpoint", str(ckpt), "-o", str(out), *flags])


def exported(text: str, tmp_path, *flags):
    """(the torch module, the ONNX model) for a network given as text."""
    path = tmp_path / "t.net"
    path.write_text(text)
    model = with_weights(netdsl.parse_file(path))
    assert export(path, save_checkpoint(model, tmp_path / "t.pt", True), tmp_path / "t.onnx", *flags) == 0
    return model, onnx.load(str(tmp_path / "t.onnx"))


# ---------------------------------------------------------------- the seed networks

@pytest.mark.parametrize("name, batch, runner", [
    ("alexnet", 1, True), ("si_alexnet", 1, False), ("euronet", 3, True), ("mnist_scale_si", 3, False)])
def test_exported_network_computes_what_the_torch_backend_does(name, batch, runner, tmp_path, capsys):
    net = netdsl.parse_file(f"nets/{name}.net")
    model = with_weights(net)
    ckpt = save_checkpoint(model, tmp_path / "w.pt", runner)
    out = tmp_path / f"{name}.onnx"
    assert export(f"nets/{name}.net", ckpt, out) == 0
    assert capsys.readouterr().out.startswith(f"{out}: {name} as ONNX opset 18")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)   # full: ONNX's shape inference agrees with the IR's
    x = images(batch, *net.input_shape)
    with torch.no_grad():
        want = model(x)
    got = run_onnx(proto, x)
    assert got.shape == want.shape == (batch, net.classes)
    assert relative_error(got, want) < TOLERANCE


def test_si_scales_compete_under_strong_weights():
    """The SI test above means something only if more than one scale wins the max."""
    net = netdsl.parse_file("nets/mnist_scale_si.net")
    model = with_weights(net)
    x = images(3, *net.input_shape)
    bl = dict(mode="bilinear", align_corners=False)
    with torch.no_grad():
        maps = torch.stack([torch.nn.functional.interpolate(
            model.conv1(torch.nn.functional.interpolate(x, scale_factor=s, **bl)), size=(22, 22), **bl)
            for s in net.layer("conv1").options["scales"]])
    winners = maps.argmax(0).unique()
    assert len(winners) >= 3


def test_dynamic_batch_takes_any_batch_and_a_fixed_one_only_its_own(tmp_path, capsys):
    net = netdsl.parse_file("nets/mnist_scale_si.net")
    model = with_weights(net)
    ckpt = save_checkpoint(model, tmp_path / "w.pt", True)
    assert export("nets/mnist_scale_si.net", ckpt, tmp_path / "any.onnx") == 0            # dynamic: the default
    assert export("nets/mnist_scale_si.net", ckpt, tmp_path / "two.onnx", "--batch", "2") == 0
    dynamic, fixed = onnx.load(str(tmp_path / "any.onnx")), onnx.load(str(tmp_path / "two.onnx"))
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    for batch in (1, 3):
        x = images(batch, *net.input_shape)
        with torch.no_grad():
            assert relative_error(run_onnx(dynamic, x), model(x)) < TOLERANCE
    x = images(2, *net.input_shape)
    with torch.no_grad():
        assert relative_error(run_onnx(fixed, x), model(x)) < TOLERANCE
    with pytest.raises(Exception, match="Got: 3 Expected: 2"):
        run_onnx(fixed, images(3, *net.input_shape))


# ---------------------------------------------------------------- LRN: alpha and groups

LRN_NET = """[net]
groups = {groups}
[data]
type = data
shape = 3x5x4
[mix]
type = conv
filters = 12
size = 1
[rnorm]
type = lrn
size = 5
k = 2
alpha = 1e-4
beta = 0.75
[prob]
type = softmax
"""


def lrn_input_and_output(model, x):
    with torch.no_grad():
        a = model.mix(x)
        return a, model(x)


def set_attribute(node, name, value):
    node.attribute.remove(next(a for a in node.attribute if a.name == name))
    node.attribute.append(helper.make_attribute(name, value))


def test_lrn_exports_alpha_times_size_and_the_check_sees_it(tmp_path):
    model, proto = exported(LRN_NET.format(groups=1), tmp_path)
    x = images(2, 3, 5, 4)
    a, want = lrn_input_and_output(model, x)
    formula = torch.flatten(lrn_formula(a, 5, 2.0, 1e-4, 0.75), 1)
    assert relative_error(want, formula) < 1e-6          # the torch backend is the paper's formula
    got = run_onnx(proto, x)
    assert relative_error(got, formula) < TOLERANCE
    (lrn,) = [n for n in proto.graph.node if n.op_type == "LRN"]
    assert helper.get_attribute_value(next(at for at in lrn.attribute if at.name == "alpha")) == \
        pytest.approx(5e-4)
    set_attribute(lrn, "alpha", 1e-4)                    # ONNX's alpha / size without the correction
    assert relative_error(run_onnx(proto, x), formula) > 100 * TOLERANCE


def test_lrn_window_stays_inside_each_group_and_the_check_sees_it(tmp_path):
    model, proto = exported(LRN_NET.format(groups=2), tmp_path)
    x = images(2, 3, 5, 4)
    a, want = lrn_input_and_output(model, x)
    per_group = torch.flatten(lrn_per_group(a, 2), 1)
    assert relative_error(want, per_group) < 1e-6
    assert relative_error(run_onnx(proto, x), per_group) < TOLERANCE
    nodes = list(proto.graph.node)
    assert [n.op_type for n in nodes] == ["Conv", "Reshape", "LRN", "Reshape", "Flatten"]
    # one LRN over all 12 channels, as if the net had one group: the channels by the group edge differ
    conv, before, lrn, after, flatten = nodes
    lrn.input[0], lrn.output[0] = before.input[0], after.output[0]
    proto.graph.node.remove(before)
    proto.graph.node.remove(after)
    assert relative_error(run_onnx(proto, x), per_group) > 10 * TOLERANCE


# ---------------------------------------------------------------- SI: resize semantics

SI_NET = """[data]
type = data
shape = 2x10x9
[si]
type = siconv
scales = 0.7, 1, 1.3, 0.45, 1.05
filters = 4
size = 3
neuron = relu
[prob]
type = softmax
"""


def test_si_layer_resizes_as_pytorch_does_and_the_check_sees_a_wrong_scale(tmp_path):
    model, proto = exported(SI_NET, tmp_path)
    x = images(2, 2, 10, 9)
    with torch.no_grad():
        want = torch.flatten(si_formula(x, model.si, [0.7, 1, 1.3, 0.45, 1.05]), 1)
        assert relative_error(model(x), want) < 1e-6
    assert relative_error(run_onnx(proto, x), want) < TOLERANCE
    # float32(0.7) * 10 is 7 in onnxruntime's float32 but 6.99999988 in double, as ONNX's own shape
    # inference computes it: the factor exported sizes the map to PyTorch's 7 x 6 in both
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][2:] for v in inferred.graph.value_info}
    assert dims["si/x0.7"] == [7, 6] and dims["si/x1.3"] == [13, 11] and dims["si/x0.45"] == [4, 4]
    assert dims["si/x1.05"] == [10, 9]   # the size kept, yet resampled at (i + 0.5) / 1.05 - 0.5
    # Resize by `sizes` would sample at the size ratio 7/10, not at PyTorch's factor 0.7
    resize = next(n for n in proto.graph.node if n.op_type == "Resize" and n.output[0] == "si/x0.45")
    proto.graph.initializer.append(numpy_helper.from_array(np.array([4, 4], np.int64), "by_size"))
    resize.input[:] = [resize.input[0], "", "", "by_size"]
    assert relative_error(run_onnx(proto, x), want) > 10 * TOLERANCE


def test_si_layer_resized_back_to_one_pixel_samples_as_pytorch_does(tmp_path):
    """A 1-pixel map is where ONNX's pytorch_half_pixel is not PyTorch's: it samples pixel 0,
    PyTorch (and half_pixel) the point (0 + 0.5) * in / out - 0.5, between pixels."""
    model, proto = exported(SI_NET.replace("2x10x9", "2x3x3").replace("0.7, 1, 1.3, 0.45, 1.05", "1, 1.5, 2"), tmp_path)
    x = images(2, 2, 3, 3)
    with torch.no_grad():
        want = torch.flatten(si_formula(x, model.si, [1, 1.5, 2]), 1)
    assert want.shape == (2, 4)
    assert relative_error(run_onnx(proto, x), want) < TOLERANCE


# ---------------------------------------------------------------- every layer type and form

EVERY_LAYER = """[net]
groups = 2
[data]
type = data
shape = 3x13x12
[c1]
type = conv
filters = 8
size = 3
pad = 1
neuron = tanh
[p1]
type = maxpool
size = 3
stride = 2
pad = 1
round = ceil
[a1]
type = avgpool
input = c1
size = 3
stride = 2
pad = 1
round = ceil
[both]
type = neuron
input = p1, a1
neuron = sigmoid
[c2]
type = conv
filters = 8
size = 3
connect = group
neuron = relu
[a2]
type = avgpool
size = 2
stride = 1
pad = 1
[l1]
type = lrn
size = 3
[s1]
type = siconv
scales = 0.5, 1.4
filters = 4
size = 3
pad = 1
connect = group
[f1]
type = fc
outputs = 6
connect = group
neuron = relu
[d1]
type = dropout
p = 0.25
[f2]
type = fc
outputs = 8
[l2]
type = lrn
size = 999999
k = 1
alpha = 0.01
[d2]
type = dropout
rescale = train
[prob]
type = sigmoid
"""


def test_every_layer_type_and_form_exports_exactly(tmp_path):
    """Pads, ceil rounding (avgpool's divisor too), group concatenation, grouped conv and fc, the
    dropouts at test time, an LRN on an fc's output, its window far wider than the group's 4
    channels (exported as 7 wide, which covers them all): the torch backend's numbers."""
    model, proto = exported(EVERY_LAYER, tmp_path)
    onnx.checker.check_model(proto, full_check=True)
    x = images(2, 3, 13, 12)
    with torch.no_grad():
        want = model(x)
    assert relative_error(run_onnx(proto, x), want) < TOLERANCE
    assert {n.op_type for n in proto.graph.node} >= {
        "Conv", "Tanh", "MaxPool", "Pad", "AveragePool", "Split", "Concat", "Sigmoid", "Relu",
        "Reshape", "LRN", "Resize", "Max", "Flatten", "Mul", "Gemm", "Unsqueeze"}
    assert proto.graph.output[0].name == "logits"
    l2 = next(n for n in proto.graph.node if n.op_type == "LRN" and n.output[0].startswith("l2/"))
    assert {a.name: helper.get_attribute_value(a) for a in l2.attribute}["size"] == 7


# ---------------------------------------------------------------- refusals: one line, exit 2, no file

@pytest.fixture
def mnist_ckpt(tmp_path):
    return save_checkpoint(with_weights(netdsl.parse_file("nets/mnist_scale_si.net")), tmp_path / "m.pt", True)


def test_missing_damaged_and_foreign_checkpoints_are_refused(tmp_path, capsys, mnist_ckpt):
    out = tmp_path / "x.onnx"
    one_line_error(capsys, export("nets/mnist_scale_si.net", tmp_path / "none.pt", out), "no such checkpoint")
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    one_line_error(capsys, export("nets/mnist_scale_si.net", tmp_path / "bad.pt", out), "bad.pt", "cannot read the checkpoint")
    one_line_error(capsys, export("nets/euronet.net", mnist_ckpt, out), "does not fit this network")   # another network's weights
    assert not out.exists()


def test_bad_output_paths_and_nets_are_refused(tmp_path, capsys, mnist_ckpt):
    one_line_error(capsys, export("nets/mnist_scale_si.net", mnist_ckpt, tmp_path / "no" / "dir" / "x.onnx"), "cannot write it")
    one_line_error(capsys, export("nets/mnist_scale_si.net", mnist_ckpt, tmp_path), "is a directory")
    one_line_error(capsys, export("nets/no_such.net", mnist_ckpt, tmp_path / "x.onnx"), "no such file")
    for batch in ("0", "some"):
        with pytest.raises(SystemExit) as exit_info:
            export("nets/mnist_scale_si.net", mnist_ckpt, tmp_path / "x.onnx", "--batch", batch)
        one_line_error(capsys, exit_info.value.code, "--batch")
    assert list(tmp_path.iterdir()) == [tmp_path / "m.pt"]


def test_without_onnx_it_says_how_to_install_it(tmp_path, capsys, monkeypatch, mnist_ckpt):
    monkeypatch.setitem(sys.modules, "onnx", None)   # import onnx raises ImportError
    one_line_error(capsys, export("nets/mnist_scale_si.net", mnist_ckpt, tmp_path / "x.onnx"), 'pip install -e ".[onnx]"')


def test_a_layer_without_an_exact_form_is_refused_and_nothing_written(tmp_path, capsys, monkeypatch, mnist_ckpt):
    from netdsl.layers.base import LayerType
    from netdsl.layers.registry import REGISTRY

    # as a new layer type without an ONNX form
    monkeypatch.setattr(type(REGISTRY["siconv"]), "onnx", LayerType.onnx)
    one_line_error(capsys, export("nets/mnist_scale_si.net", mnist_ckpt, tmp_path / "x.onnx"), "nets/mnist_scale_si.net:", "cannot export `conv1` to ONNX exactly")
    assert not (tmp_path / "x.onnx").exists()
