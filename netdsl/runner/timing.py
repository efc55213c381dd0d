"""Where a training step's time goes, in the spirit of `caffe time`: each layer's forward and
backward time, its share of the step and the activation memory it keeps for its backward, beside
the whole step timed on its own. `netdsl time` (netdsl/commands/time.py) prints it:

    netdsl time nets/alexnet.net --batch 32 --repeats 5 [--json]

    timing = time_net(net, batch=32, backend="torch", devices=None, repeats=5)
    print(table(timing))                  # or json.dumps(as_json(timing))

How one layer runs alone. The generated forward() is one line a layer; netdsl/codegen/interpret.py
compiles each line as a step and evaluates it in the namespace of the generated module the model
was loaded from, with `self` bound to the model, reading the earlier layers' outputs by name: the
layers run in order compute exactly forward()'s output (tests/test_time.py holds it with
torch.equal). With several --devices the model is a SplitNet (netdsl/devices/placement.py), whose
forward runs the same steps once a group: a layer is then its step over every group at once, the
copies between devices that a `connect = all` layer makes included. (netdsl/runner/activations.py
reads layers through the same interpreter, but from a torch-backend copy in eval mode without
gradients; a step is timed on the model itself: its backend, its placement, training mode.)

What is timed: `repeats` rounds after `warmup` rounds (WARMUP), each round every layer once in
network order and then the whole step once, and the median of each figure over the rounds. The
rounds interleave so that a shared machine's changing load slows the layers and the step alike.
- a layer's forward: its expression on its inputs, which are detached copies of one whole
  forward's values, requiring grad where they did there, so that it builds its graph as in
  training;
- its backward: torch.autograd.grad of that output, for a fixed random output gradient, with
  respect to those of its inputs that need a gradient and its parameters (so the first layer
  computes no gradient for the data, as in a step), on that round's fresh graph;
- an output layer (softmax or sigmoid, the main one or an auxiliary head) is the logits plus
  its loss as the runner takes it (train_loss of netdsl/runner/train.py: cross-entropy or binary
  cross-entropy, times its loss_weight), divided by the batch as the runner divides it;
- the whole step: model(x), that loss and loss.backward(), the gradients set to None first, as
  a training step without the optimizer's update; its forward and backward are timed apart too,
  and its total is the median of whole steps, not the sum of the two medians.
The model is in training mode: dropout draws its masks as it does in a step. The shares are of
the layers' sum, so they add up to 100%.

Clocks: on one CUDA device, CUDA events recorded around the work (read after a synchronize); on
the CPU, time.perf_counter, since every CPU op has finished when it returns; on several CUDA
devices, perf_counter between synchronizations of all of them (one device's events cannot time
another's work).

Memory: a layer's saved_bytes is the size of the distinct storages that autograd saves for the
backward while the layer's forward runs (torch.autograd.graph.saved_tensors_hooks), for the whole
batch. Parameters do not count: a weight is not activation memory (a Linear saves `weight.t()`,
a view of the weight's storage, which is excluded too). A layer's input counts where the layer
saves it (a conv keeps its input for the weight gradient, a max-pool its input and its int64
indices, a ReLU its output), since the layer's backward needs it kept; so a tensor that two
layers save, a ReLU's output that the next LRN keeps too, counts in both rows, and the column can
add up to more than the step keeps. The summary's saved_bytes is the whole step's: the distinct
storages saved in one forward and loss. A view counts as its whole storage, once.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable, Union

import torch

from ..codegen.interpret import Interpreter, layer_steps
from ..devices.placement import SplitNet
from ..language.ir import Layer, Net
from ..layers.registry import REGISTRY
from .model import build_model
from .train import train_loss

WARMUP = 2          # rounds before the measured ones: the first builds oneDNN primitives, caches, ...
INPUT_STD = 64.0    # the random input's spread, about that of 0..255 pixels minus their mean

Value = Union[torch.Tensor, list]   # a layer's output: one tensor, or one chunk a group (SplitNet)


# ---------------------------------------------------------------- the forward, a layer at a time

@dataclasses.dataclass(frozen=True)
class LayerRun:
    """One layer runnable alone: run(values) is its output, as forward() computes it, from
    `values`, the outputs of the layers before it by name (the data's included)."""
    layer: Layer
    run: Callable[[dict], Value]
    params: tuple[torch.nn.Parameter, ...]


class Decomposed:
    """A compiled model's forward as one LayerRun a layer after data, in network order.

    layers.outputs(x)[net.output.name] is model(x) exactly: the same code in the same order,
    drawing dropout's masks in the same order. Set the model's mode (train() or eval()) first:
    a SplitNet's layers see the mode it had when this was built, as its forward's do."""

    def __init__(self, net: Net, model: torch.nn.Module, backend: str):
        self.net, self.model = net, model
        self.split = isinstance(model, SplitNet)
        self.runs = self._split_runs() if self.split else self._fused_runs(backend)

    def _fused_runs(self, backend: str) -> list[LayerRun]:
        # the module the model's class came from: its helpers, kernels and imports
        interpreter = Interpreter(type(self.model).forward.__globals__)
        return [LayerRun(step.layer, _evaluator(interpreter, step, self.model), self._params(step.layer))
                for step in layer_steps(self.net, backend)]

    def _split_runs(self) -> list[LayerRun]:
        views = self.model.group_views()
        runs = []
        for step in self.model.steps:
            output = REGISTRY[step.layer.type].role == "output"   # the main output or an auxiliary head
            run = _step_runner(self.model, step, views, output)
            runs.append(LayerRun(step.layer, run, self._params(step.layer)))
        return runs

    def _params(self, layer: Layer) -> tuple[torch.nn.Parameter, ...]:
        """A layer module's parameters (a SplitNet's Shards: every group's)."""
        if not REGISTRY[layer.type].holds_module:
            return ()
        return tuple(getattr(self.model, layer.name).parameters())

    def start(self, x: torch.Tensor) -> dict[str, Value]:
        """The values before the first layer: the data, on every group's device for a SplitNet."""
        return {self.net.data.name: self.model.scatter(x) if self.split else x}

    def outputs(self, x: torch.Tensor) -> dict[str, Value]:
        """Every layer's output for input x, the layers run one by one."""
        values = self.start(x)
        for run in self.runs:
            values[run.layer.name] = run.run(values)
        return values


def _evaluator(interpreter: Interpreter, step, model: torch.nn.Module) -> Callable[[dict], torch.Tensor]:
    return lambda values: interpreter(step, values, model)


def _step_runner(model: SplitNet, step, views, output: bool) -> Callable[[dict], Value]:
    """A SplitNet step; an output's gathers its logits onto devices[0], as forward() does."""
    if output:
        return lambda values: model.logits(model.run_step(step, values, views), step.layer)
    return lambda values: model.run_step(step, values, views)


def tensors(value: Value) -> list[torch.Tensor]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _leaf(value: Value, needs_grad: bool) -> Value:
    """A detached copy (sharing storage) that starts a graph of its own."""
    if isinstance(value, list):
        return [t.detach().requires_grad_(needs_grad) for t in value]
    return value.detach().requires_grad_(needs_grad)


# ---------------------------------------------------------------- clocks

class CpuClock:
    """time.perf_counter: a CPU op has finished when it returns."""
    name = "perf_counter"

    def mark(self):
        return time.perf_counter()

    def ms(self, start, end) -> float:
        return (end - start) * 1e3


class CudaEventClock:
    """CUDA events on one device's current stream, read once the later one has completed."""
    name = "cuda events"

    def __init__(self, device: torch.device):
        self.device = device

    def mark(self):
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def ms(self, start, end) -> float:
        end.synchronize()
        return start.elapsed_time(end)


class SyncedClock:
    """perf_counter between synchronizations of every CUDA device the model uses."""
    name = "perf_counter after cuda synchronize"

    def __init__(self, devices: list[torch.device]):
        self.devices = devices

    def mark(self):
        for device in self.devices:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def ms(self, start, end) -> float:
        return (end - start) * 1e3


def clock_for(devices) -> CpuClock | CudaEventClock | SyncedClock:
    cuda = list(dict.fromkeys(torch.device(d) for d in devices or [] if torch.device(d).type == "cuda"))
    if not cuda:
        return CpuClock()
    return CudaEventClock(cuda[0]) if len(cuda) == 1 else SyncedClock(cuda)


# ---------------------------------------------------------------- memory

def _storage_key(tensor: torch.Tensor) -> tuple:
    return tensor.device, tensor.untyped_storage().data_ptr()


def saved_storages(work: Callable[[], object], params) -> dict[tuple, int]:
    """The bytes of each distinct storage, parameters' excluded, that autograd saves while work()
    runs. Its result is kept until the count is done, so no saved storage is freed and its
    address reused meanwhile."""
    excluded = {_storage_key(p) for p in params}
    saved: dict[tuple, int] = {}

    def pack(tensor):
        key = _storage_key(tensor)
        if key not in excluded:
            saved[key] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = work()
    del result
    return saved


# ---------------------------------------------------------------- timing

@dataclasses.dataclass(frozen=True)
class LayerTime:
    name: str
    type: str
    output: tuple[int, int, int]
    forward_ms: float
    backward_ms: float
    share: float          # of the layers' summed forward and backward time
    saved_bytes: int


@dataclasses.dataclass(frozen=True)
class Timing:
    name: str
    layers: list[LayerTime]
    step_forward_ms: float    # the whole step timed on its own: model(x) and the loss
    step_backward_ms: float   # its loss.backward()
    step_ms: float            # median of the whole steps (not the sum of the two medians)
    saved_bytes: int          # the distinct storages the whole step saves
    batch: int
    backend: str
    devices: list[str]
    repeats: int
    clock: str

    @property
    def sum_forward_ms(self) -> float:
        return sum(layer.forward_ms for layer in self.layers)

    @property
    def sum_backward_ms(self) -> float:
        return sum(layer.backward_ms for layer in self.layers)

    @property
    def sum_ms(self) -> float:
        return self.sum_forward_ms + self.sum_backward_ms


def time_net(net: Net, batch: int, backend: str, devices, repeats: int, seed: int = 0,
             warmup: int = WARMUP) -> Timing:
    """Every layer's times and saved bytes, and the whole step's, on random input of the
    network's shape (the seed draws it and the labels)."""
    import netdsl

    resolved = netdsl.resolve_backend(backend, devices)
    model, device = build_model(net, resolved, devices)
    model.train()
    layers = Decomposed(net, model, resolved)
    x, y = random_batch(net, batch, device, seed)
    params = list(model.parameters())
    timed = timed_layers(layers, layers.outputs(x), y)
    saved = [sum(saved_storages(lambda: layer.compute(layer.inputs), params).values()) for layer in timed]
    step = WholeStep(model, x, y, net)
    step_saved = saved_storages(step.loss, params)
    forward, backward, whole = measure(timed, step, clock_for(devices), repeats, warmup)
    total = sum(forward) + sum(backward) or 1.0
    rows = [LayerTime(layer.run.layer.name, layer.run.layer.type, tuple(layer.run.layer.out_shape),
                      layer_forward, layer_backward, (layer_forward + layer_backward) / total, layer_saved)
            for layer, layer_forward, layer_backward, layer_saved in zip(timed, forward, backward, saved)]
    return Timing(net.name, rows, *whole, sum(step_saved.values()), batch, resolved,
                  [str(d) for d in devices] if devices else ["cpu"], repeats, clock_for(devices).name)


def random_batch(net: Net, batch: int, device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N x C x H x W normal input times INPUT_STD and the file's scale, and N labels."""
    generator = torch.Generator().manual_seed(seed)
    shape = net.input_shape
    x = torch.randn(batch, shape.c, shape.h, shape.w, generator=generator) * (INPUT_STD * net.train.scale)
    y = torch.randint(net.classes, (batch,), generator=generator)
    return x.to(device), y.to(device)


class TimedLayer:
    """One layer ready to time: its inputs as leaves of a graph of its own (detached copies of a
    whole forward's values, requiring grad where they did there), what it computes (the output
    layer: the logits and the runner's loss on them), and what its backward differentiates."""

    def __init__(self, layers: Decomposed, run: LayerRun, values: dict, needs_grad: dict, y: torch.Tensor):
        self.run = run
        self.inputs = {name: _leaf(values[name], needs_grad[name]) for name in run.layer.inputs}
        self.compute = run.run
        kind = REGISTRY[run.layer.type]
        if kind.role == "output":   # the main output or an auxiliary head: its logits and its loss
            weight = run.layer.options["loss_weight"]
            self.compute = lambda inputs: weight * kind.loss(run.run(inputs), y) / len(y)
        # its inputs that need a gradient, then its parameters: what a step's backward computes here
        self.wrt = [t for value in self.inputs.values() for t in tensors(value) if t.requires_grad]
        self.wrt += [p for p in run.params if p.requires_grad]
        self.grads: list[torch.Tensor] | None = None

    def output_grads(self, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """A fixed random gradient for each output (1 for the loss), drawn once."""
        if self.grads is None:
            generator = torch.Generator().manual_seed(1)
            self.grads = [torch.ones_like(t) if t.dim() == 0 else torch.randn(t.shape, generator=generator).to(t)
                          for t in outputs]
        return self.grads

    def backward(self, output: Value, grads: list[torch.Tensor] | None = None) -> tuple | None:
        """The gradients of self.wrt through this layer's graph (for `grads`, else the fixed random
        ones); None where nothing needs one (a layer before every weight)."""
        outputs = [t for t in tensors(output) if t.requires_grad]
        if not outputs or not self.wrt:
            return None
        grads = self.output_grads(outputs) if grads is None else grads
        return torch.autograd.grad(outputs, self.wrt, grads, allow_unused=True)

    def once(self, clock) -> tuple[float, float]:
        """(forward ms, backward ms) of one run on a fresh graph, as a step runs it."""
        start = clock.mark()
        output = self.compute(self.inputs)
        middle = clock.mark()
        if self.backward(output) is None:
            return clock.ms(start, middle), 0.0
        return clock.ms(start, middle), clock.ms(middle, clock.mark())


def timed_layers(layers: Decomposed, values: dict[str, Value], y: torch.Tensor) -> list[TimedLayer]:
    """Each layer ready to time, its inputs taken from one whole forward's `values`
    (layers.outputs(x)); y are the labels of the loss."""
    needs_grad = {name: any(t.requires_grad for t in tensors(value)) for name, value in values.items()}
    values = {name: _leaf(value, False) for name, value in values.items()}  # the whole graph let go
    return [TimedLayer(layers, run, values, needs_grad, y) for run in layers.runs]


class WholeStep:
    """The training step as the runner takes it, the optimizer's update aside: model(x), the loss
    (train_loss divided by the batch), loss.backward(), the gradients set to None first."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, net: Net):
        self.model, self.x, self.y, self.net = model, x, y, net

    def loss(self) -> torch.Tensor:
        return train_loss(self.net, self.model(self.x), self.y) / len(self.y)

    def once(self, clock) -> tuple[float, float, float]:
        """(forward ms, backward ms, whole ms) of one step."""
        self.model.zero_grad(set_to_none=True)
        start = clock.mark()
        loss = self.loss()
        middle = clock.mark()
        loss.backward()
        end = clock.mark()
        return clock.ms(start, middle), clock.ms(middle, end), clock.ms(start, end)


def measure(timed: list[TimedLayer], step: WholeStep, clock, repeats: int,
            warmup: int = WARMUP) -> tuple[list[float], list[float], tuple[float, float, float]]:
    """Each layer's forward and backward medians, and the whole step's (forward, backward, whole).

    The runs interleave: a round is every layer once, in network order, then one whole step. So
    a machine whose load changes during the measurement (a shared CPU) slows the layers and the
    step alike, and the layers run in the order, and with the caches, of a step."""
    layer_runs: list[list[tuple[float, float]]] = [[] for _ in timed]
    step_runs = []
    for _ in range(warmup + repeats):
        for runs, layer in zip(layer_runs, timed):
            runs.append(layer.once(clock))
        step_runs.append(step.once(clock))
    forward = [statistics.median(f for f, _ in runs[warmup:]) for runs in layer_runs]
    backward = [statistics.median(b for _, b in runs[warmup:]) for runs in layer_runs]
    whole = tuple(statistics.median(run[i] for run in step_runs[warmup:]) for i in range(3))
    return forward, backward, whole


# ---------------------------------------------------------------- output

def as_json(timing: Timing) -> dict:
    """What `--json` prints: one object a layer in network order, and the summary."""
    return {
        "name": timing.name,
        "layers": [{"name": layer.name, "type": layer.type, "output": list(layer.output),
                    "forward_ms": layer.forward_ms, "backward_ms": layer.backward_ms, "share": layer.share,
                    "saved_bytes": layer.saved_bytes} for layer in timing.layers],
        "summary": {"step_ms": timing.step_ms, "step_forward_ms": timing.step_forward_ms,
                    "step_backward_ms": timing.step_backward_ms, "sum_ms": timing.sum_ms,
                    "sum_forward_ms": timing.sum_forward_ms, "sum_backward_ms": timing.sum_backward_ms,
                    "saved_bytes": timing.saved_bytes, "batch": timing.batch, "backend": timing.backend,
                    "device": ",".join(timing.devices), "repeats": timing.repeats, "clock": timing.clock},
    }


def table(timing: Timing) -> str:
    """The timing as an aligned text table: a row a layer, then the layers' sum and the whole step."""
    header = ("layer", "type", "output", "forward ms", "backward ms", "total ms", "share", "saved")
    rows = [(layer.name, layer.type, "x".join(map(str, layer.output)), *_times(layer.forward_ms, layer.backward_ms),
             f"{layer.share:.1%}", _size(layer.saved_bytes))
            for layer in timing.layers]
    totals = [("layers (sum)", "", "", *_times(timing.sum_forward_ms, timing.sum_backward_ms), "100.0%", ""),
              ("whole step", "", "", *_times(timing.step_forward_ms, timing.step_backward_ms, timing.step_ms),
               "", _size(timing.saved_bytes))]
    widths = [max(len(row[i]) for row in [header, *rows, *totals]) for i in range(len(header))]

    def line(row):
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = (f"{timing.name}: one training step at batch {timing.batch}, {timing.backend} backend on "
             f"{','.join(timing.devices)}, {_runs(timing.repeats)} ({timing.clock})")
    notes = ["share: of the layers' sum. saved: the activation memory a layer keeps for its backward, for the "
             "batch;", "a tensor two layers keep counts in both rows, and once in the whole step's."]
    return "\n".join([title, line(header), rule, *map(line, rows), rule, *map(line, totals), "", *notes])


def _runs(repeats: int) -> str:
    return f"medians of {repeats} runs" if repeats > 1 else "one run"


def _times(forward: float, backward: float, total: float | None = None) -> tuple[str, str, str]:
    """forward, backward and total ms as cells; the total is their sum unless measured apart."""
    return f"{forward:.2f}", f"{backward:.2f}", f"{forward + backward if total is None else total:.2f}"


def _size(n: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
