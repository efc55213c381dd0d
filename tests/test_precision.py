"""Precision (bf16, fp16 with a loss scaler, fp32 weights) and torch.compile (netdsl/runner/precision.py).

    pytest tests/test_precision.py

Training in bf16 on the CPU learns the built-in data, and its checkpoint is float32 and evaluates in
fp32 as its weights do by hand; an fp16 step whose scaled loss overflows leaves the weights alone and
halves the scale; an fp16 run resumed goes on with its loss scale.

torch.compile: every seed network on the torch backend, and a small network with every kernel on the
triton backend (in Triton's interpreter, set by conftest.py), compile into one graph with no break
(fullgraph=True, the graphs counted), and the compiled model's logits and gradients are eager's, in
float64 (why: above the tests). Every seed network traces whole on the triton backend at full size,
each kernel an operator in the forward and backward graphs; running them all at full size is
tests/compile_seed_networks.py's job. A network over two devices compiles with breaks and gives
eager's results. The numerical check compiles with backend="aot_eager": Dynamo and AOT autograd
trace the same graph as inductor would (the triton operators through their fake forms), but run it
with PyTorch's own kernels rather than generating C++. Inductor builds here (g++ is installed) but
took 80 s for fashion_tiny alone, cold, too long for the suite; bench/precision.py runs it on
AlexNet.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from functorch.compile import make_boxed_func
from torch._dynamo.backends.registry import lookup_backend
from torch._functorch.aot_autograd import aot_module_simplified

import netdsl
from netdsl import cli
from netdsl.datasets import synthetic
from netdsl.devices.distributed import SINGLE
from netdsl.runner import data, precision, train
from reference import rel_err
from test_data import SMALL_NET, make_folder, tiny_net
from test_distributed import model_of, torchrun
from conftest import SEED_NETS, cli_train as run_train  # run_train(net, data folder or None, out, *flags)
from test_runner import metrics
from test_triton_kernels import SI_ALEXNET_FIRST_LAYERS

NETS = Path(__file__).resolve().parent.parent / "nets"


# ---------------------------------------------------------------- the key and the flag

def test_the_precision_key_the_flag_and_diff(tmp_path, capsys):
    a, b = tiny_net(tmp_path, name="a.net"), tiny_net(tmp_path, extra="precision = bf16", name="b.net")
    assert netdsl.parse_file(a).train.precision == "fp32" and netdsl.parse_file(b).train.precision == "bf16"
    assert cli.main(["diff", str(a), str(b)]) == 0
    assert "recipe: precision fp32 -> bf16" in capsys.readouterr().out.splitlines()
    bad = tiny_net(tmp_path, extra="precision = fp8", name="bad.net")
    assert cli.main(["compile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fp8" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit:
        run_train(a, None, tmp_path / "run", "--precision", "fp8")
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--precision" in err and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- bf16

SMALL = SMALL_NET + "precision = bf16\n"


def test_bf16_learns_the_builtin_data_and_its_checkpoint_is_float32(tmp_path, monkeypatch, capsys):
    """test_runner.py's built-in data test in bf16, at 4 epochs rather than 6; then the checkpoint
    evaluated with --precision fp32, against its weights run in float32 by hand."""
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "small.net"
    path.write_text(SMALL)
    assert run_train(path, None, tmp_path / "run", "--epochs", 4) == 0
    records = metrics(tmp_path / "run")
    assert [r["precision"] for r in records] == ["bf16"] * 4
    assert min(r["val_top1_err"] for r in records) < 0.7   # chance: 0.9
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in state["model"].values())
    assert all(v["velocity"].dtype == torch.float32 for v in state["optimizer"]["state"].values())

    root = synthetic.builtin_dataset(netdsl.parse_file(path))
    capsys.readouterr()
    assert cli.main(["eval", str(path), "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(root),
                     "--precision", "fp32", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    net = netdsl.parse_file(path)
    model = netdsl.compile_net(net).eval()
    model.load_state_dict(state["model"])
    recipe = data.Recipe.of(net)
    val = data.open_val(root, recipe, state["classes"], "val")
    wrong1 = wrong5 = 0
    for image, label in data.EvalSet(val, recipe, state["mean"].numpy(), False):
        with torch.no_grad():
            logits = model(torch.as_tensor(image))
        assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
        ranked = logits[0].argsort(descending=True).tolist()
        wrong1 += ranked[0] != label
        wrong5 += label not in ranked[:5]
    images = len(val.samples)
    assert f"top-1 error {wrong1 / images:.2%}, top-5 error {wrong5 / images:.2%} on {images} images" in printed


# ---------------------------------------------------------------- fp16's loss scaler

def trainer(tmp_path, *flags):
    """A Trainer as `netdsl train` sets it up, on a tiny folder, and one training batch."""
    net = tiny_net(tmp_path)
    argv = ["train", str(net), "--data", str(make_folder(tmp_path / "data")), "--out", str(tmp_path / "run"),
            "--workers", "0", "--batch", "8", *flags]
    args = cli.build_parser(argv).parse_args(argv)
    options = train.Options.of_flags(args)
    parsed = netdsl.parse_file(net)
    (tmp_path / "run").mkdir()
    t = train._setup(options, parsed, tmp_path / "run", None, 0, SINGLE, None)
    batches, _ = t.loaders()
    batches.sampler.set_epoch(1, 0)
    return t, next(iter(batches))


def set_scale(scaler: torch.amp.GradScaler, scale: float) -> None:
    scaler.load_state_dict({**scaler.state_dict(), "scale": scale})


def test_an_fp16_step_whose_scaled_loss_overflows_is_skipped_and_the_scale_halved(tmp_path):
    t, batch = trainer(tmp_path, "--precision", "fp16")
    assert t.scaler.is_enabled()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    set_scale(t.scaler, 2.0 ** 127)  # the largest power of 2 a float32 holds: the loss (a sum of 8) times it is inf
    loss, images, _ = t.step(batch, 1)
    assert np.isfinite(loss) and images == 8                 # the loss itself is fine: no NaN-loss stop
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not t.optimizer.state   # no velocity: the optimizer never stepped
    assert t.scaler.get_scale() == 2.0 ** 126
    # At a scale that fits, the same step updates the weights
    set_scale(t.scaler, 2.0 ** 10)
    t.step(batch, 2)
    assert not all(torch.equal(before[k], t.model.state_dict()[k]) for k in before)
    assert t.scaler.get_scale() == 2.0 ** 10


def test_an_fp16_run_resumed_goes_on_with_its_loss_scale(tmp_path, monkeypatch, capsys):
    """A scale that grows every step and halves at each overflow, so that one not restored would differ."""
    monkeypatch.setattr(precision, "grad_scaler", lambda kind, devices: torch.amp.GradScaler(
        "cpu", init_scale=2.0 ** 14, growth_interval=1, enabled=kind == "fp16"))
    net, folder = tiny_net(tmp_path, extra="precision = fp16"), make_folder(tmp_path / "data")
    assert run_train(net, folder, tmp_path / "whole", "--epochs", 3) == 0
    assert "warning: fp16 on the CPU" in capsys.readouterr().err   # allowed, and slow
    assert run_train(net, folder, tmp_path / "split", "--epochs", 2) == 0
    assert run_train(net, folder, tmp_path / "split", "--epochs", 3, "--resume") == 0
    whole, split = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("whole", "split"))
    assert whole["scaler"] == split["scaler"] and whole["scaler"]["scale"] != 2.0 ** 14
    assert all(torch.equal(whole["model"][k], split["model"][k]) for k in whole["model"])
    assert [r["loss_scale"] for r in metrics(tmp_path / "split")] == [r["loss_scale"] for r in metrics(tmp_path / "whole")]


def test_fp16_under_torchrun_the_processes_step_alike(tmp_path):
    """Two processes (gloo), the second with no image in the epoch's last step: DDP hands both the same
    gradients, so their scalers skip and scale alike and the ranks end with the same weights."""
    folder = make_folder(tmp_path / "data", classes=4, train=5, val=3)
    net = tiny_net(tmp_path, classes=4, extra="precision = fp16")
    net.write_text(net.read_text().replace("[drop]\ntype = dropout\np = 0.25\n", ""))  # each process its own masks
    result = torchrun(net, folder, tmp_path / "run", tmp_path / "ranks", "--epochs", 1)
    assert result.returncode == 0, result.stderr
    rank0, rank1 = (model_of(tmp_path / "ranks" / f"rank{rank}.pt") for rank in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    record, = metrics(tmp_path / "run")
    assert record["precision"] == "fp16" and record["loss_scale"] > 0


# ---------------------------------------------------------------- torch.compile

def assert_compiles(model: torch.nn.Module, x: torch.Tensor, tolerance: float = 1e-5,
                    whole: bool = True) -> dict[str, float]:
    """One graph, no break, in training mode: fullgraph=True makes any graph break an error, and the backend
    counts the graphs it is given (what torch._dynamo.explain reports, without tracing twice); with
    whole=False, several graphs. Then the compiled model's logits and gradients (input and weights)
    against eager's on the same input, dropout seeded alike, each within `tolerance` of the largest eager
    value. Returns each one's largest difference over its largest eager value."""
    torch._dynamo.reset()
    graphs, aot_eager = [], lookup_backend("aot_eager")

    def counting(graph, example_inputs):
        graphs.append(graph)
        return aot_eager(graph, example_inputs)

    compiled = torch.compile(model, backend=counting, fullgraph=whole)
    params = list(model.parameters())
    upstream = None

    def logits_and_gradients(run):
        nonlocal upstream
        inputs = x.clone().requires_grad_()
        torch.manual_seed(0)
        logits = run(inputs)
        upstream = torch.randn_like(logits) if upstream is None else upstream
        return logits, *torch.autograd.grad(logits, [inputs, *params], upstream)

    eager, got = logits_and_gradients(model), logits_and_gradients(compiled)
    assert len(graphs) == 1 if whole else len(graphs) > 1
    names = ["logits", "input gradient", *(n for n, _ in model.named_parameters())]
    relative = {name: rel_err(g, e) for name, e, g in zip(names, eager, got)}
    for name, difference in relative.items():
        assert difference <= tolerance, name
    torch._dynamo.reset()
    return relative


# In float64. Compiled float32 code rounds some operations differently from eager's (AOT autograd runs
# si_alexnet's first SI convolution on another memory layout: its output differs by 1.2e-6 of its
# largest value), and where two maxima nearly tie (an SI layer's scales, a max-pool window) that can
# move the winner, each a valid subgradient, and the gradient with it: in float32 si_alexnet's input
# gradient differed by 2 to 3% on one random image of three while the logits agreed to 3e-7, and on
# that image by 1e-15 in float64. In float64 no winner moved in 18 random images of si_alexnet,
# mnist_scale_si and alexnet, so each run draws its own image and checks every gradient.

@pytest.mark.parametrize("name", SEED_NETS)
def test_seed_networks_compile_whole_on_the_torch_backend(name):
    """At full size, one image (two where a batch norm needs a batch to normalise in training)."""
    net = netdsl.parse_file(NETS / f"{name}.net")
    images = 2 if any(layer.type == "batchnorm" for layer in net.layers) else 1
    x = torch.randn(images, *net.input_shape, dtype=torch.float64) * 50
    assert_compiles(netdsl.compile_net(net, backend="torch").double(), x, tolerance=1e-9)


# The triton backend at full size: tracing only. Its kernels run in Triton's interpreter here, too slowly
# to run each seed network's full-size kernels in the suite (AlexNet's forward and backward for one image
# take 85 s; tests/compile_seed_networks.py runs them, its figures in docs/benchmarks.md). Tracing runs
# no kernel: Dynamo, then AOT autograd, trace the graphs with fake tensors through the operators' fake
# forms, and a backend that returns empty tensors of the traced outputs' shapes stands in for running them.

KERNEL_OPS = {"lrn": "lrn", "maxpool": "maxpool", "siconv": "si_warp_max"}   # layer type -> its operator


def placeholder(value):
    return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype) if isinstance(value, torch.Tensor) else value


def trace_only(graphs: dict[str, list]):
    """A torch.compile backend that keeps Dynamo's graph and AOT autograd's forward and backward graphs and
    runs none of them: each compiled graph returns empty tensors shaped as its traced outputs."""
    def keep(kind):
        def compiler(graph, example_inputs):
            graphs[kind].append(graph)
            outputs = next(node for node in graph.graph.nodes if node.op == "output").args[0]
            return make_boxed_func(lambda *args: [None if o is None else placeholder(o.meta["val"]) for o in outputs])
        return compiler

    def backend(graph, example_inputs):
        graphs["dynamo"].append(graph)
        return aot_module_simplified(graph, example_inputs, fw_compiler=keep("forward"), bw_compiler=keep("backward"))
    return backend


def operators_called(graph) -> Counter:
    """The generated module's operators that `graph` calls, by name; a mutating one (the SI backward) is
    called through auto_functionalized, its operator the first argument."""
    called = Counter()
    for node in graph.graph.nodes:
        if node.op == "call_function":
            target = node.args[0] if "auto_functionalized" in str(node.target) else node.target
            if str(target).startswith("netdsl_"):
                called[str(target).split(".")[1]] += 1
    return called


@pytest.mark.parametrize("name", SEED_NETS)
def test_seed_networks_trace_whole_on_the_triton_backend(name):
    """At full size: one Dynamo graph, and a forward and a backward graph that call each LRN, max-pool and
    SI layer's operator, and its backward's, once per layer."""
    net = netdsl.parse_file(NETS / f"{name}.net")
    model = netdsl.compile_net(net, backend="triton")
    graphs = {"dynamo": [], "forward": [], "backward": []}
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=trace_only(graphs), fullgraph=True)
    x = torch.randn(2, *net.input_shape, requires_grad=True)
    logits = compiled(x)
    torch.autograd.grad(logits, [x, *model.parameters()], torch.ones_like(logits))
    torch._dynamo.reset()
    assert [len(graphs[kind]) for kind in ("dynamo", "forward", "backward")] == [1, 1, 1]
    assert logits.shape == (2, net.classes)
    kernels = Counter(KERNEL_OPS[layer.type] for layer in net.layers if layer.type in KERNEL_OPS)
    assert operators_called(graphs["forward"][0]) == kernels
    assert operators_called(graphs["backward"][0]) == Counter({f"{op}_backward": n for op, n in kernels.items()})


def test_triton_kernels_compile_whole_in_the_interpreter():
    """si_alexnet's first layers at a reduced size (test_triton_kernels.py): every kernel type, the SI conv
    over two groups, LRN and overlapping max-pool, run by the compiled graph through their operators."""
    net = netdsl.parse_string(SI_ALEXNET_FIRST_LAYERS)
    x = torch.randn(2, *net.input_shape, dtype=torch.float64) * 50
    assert_compiles(netdsl.compile_net(net, backend="triton").double(), x, tolerance=1e-9)


TWO_GROUPS = """
# Two groups, the second conv reading its own group's maps, then LRN and max-pool: what a network
# spread over two devices runs, small enough that Dynamo's many graphs compile in seconds
[net]
groups = 2
[data]
type  = data
shape = 3x12x12
[conv1]
type    = conv
filters = 8
size    = 3
neuron  = relu
[conv2]
type    = conv
filters = 8
size    = 3
connect = group
[rnorm2]
type = lrn
[pool2]
type   = maxpool
size   = 3
stride = 2
[fc3]
type    = fc
outputs = 4
[prob]
type = softmax
"""


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_a_network_over_two_devices_compiles_with_breaks_and_agrees(backend):
    """A SplitNet (devices/placement.py) evaluates each layer's code per group, which Dynamo cannot trace
    whole: it compiles in several graphs, and its logits and gradients are still eager's."""
    net = netdsl.parse_string(TWO_GROUPS)
    model = netdsl.compile_net(net, backend=backend, devices=["cpu", "cpu"]).double()
    x = torch.randn(2, *net.input_shape, dtype=torch.float64)
    assert_compiles(model, x, tolerance=1e-9, whole=False)
