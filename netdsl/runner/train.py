"""Training: a network trained with its [train] recipe, the paper's SGD and schedule, as
`netdsl train` runs it (its flags are netdsl/commands/train.py's).

    netdsl train nets/alexnet.net                           # on the built-in shapes, 10 epochs
    netdsl train nets/alexnet.net --data imagenet/ --out runs/alexnet
    netdsl train nets/alexnet.net --data imagenet/ --resume  # continue runs/alexnet
    netdsl train nets/mnist_scale_si.net --data fmnist-scale-0 --epochs 60 --schedule "multistep(42, 54)"

--epochs, --batch, --lr and --schedule override the [train] section. Without --data the run uses the
built-in dataset (netdsl/datasets/synthetic.py) with a budget of its own, printed when it starts: unless
the flags say otherwise, 10 epochs at batch 32 rather than the [train] section's (90 at 128
for AlexNet), so a first run ends in minutes and still takes enough steps to learn. Everything
else, and everything with --data, is the file's recipe.

RUN (default runs/<net name>) receives checkpoint.pt after every epoch and best.pt whenever
the validation top-1 error improves, metrics.jsonl (a JSON object an epoch), <name>.net (the
text trained), <name>.py (the generated source) and provenance.jsonl (where the run came from, a
record a segment: netdsl/runner/provenance.py; every checkpoint holds the same). A run stopped at any moment, even by
SIGKILL, resumes with --resume from its last checkpoint and ends with the same weights as a
run never stopped: checkpoints are replaced atomically, and data order and augmentation depend
only on (seed, epoch, image).

SIGTERM (a scheduler's pre-emption) or SIGINT stops the run after the step under way
(netdsl/runner/preemption.py): checkpoint.pt then holds the epoch's EpochProgress (its steps, its
position in the epoch's order, its sums so far and each process's random state) and `step`
> 0; best.pt and metrics.jsonl are not touched; one line on stderr says where it stopped, and
the exit status is 143 (130). --resume continues at the next step, and the epoch's metrics
record ends as an uninterrupted one's (times aside). A signal during validation or the save
stops the run once the epoch's checkpoint is written. Under torchrun the stop travels in each
step's sum, so every process stops after the same step. A checkpoint without `step` (older
ones) is a complete epoch's.

One run a folder: the run takes RUN/.lock (netdsl/runner/runlock.py) before it reads or writes
anything there and holds it to the end; a second `netdsl train` on the folder stops at once
with the holder's pid and host.

A file of the run that cannot be written (a full disk, a quota) stops the run with one line
naming it and the cause, exit status 2, no temporary file left and the last checkpoint intact,
to resume from once there is room (netdsl/files.py); the data statistics cache alone is only
warned about (netdsl/runner/data.py).

Every way out of the epochs (the end, a user error, a NaN loss, a signal, an exception) ends
the loaders' worker processes before the command returns (netdsl/runner/workers.py), so the
process exits; a worker that dies (the OOM killer) stops the run with one line, exit status 2,
naming the last good checkpoint. docs/reliability.md has each fault tried.

--resume first checks the file against the network the checkpoint was trained on (its stored
text, checked as the file is): other layers stop it with `netdsl diff`'s summary, before
anything is loaded or written; comments and layout do not count; a changed recipe is printed,
one line a change, each [train] key the resumed run does not follow marked (the optimizer's
settings and the schedule continue from the checkpoint).

Precision (netdsl/runner/precision.py): `[train] precision` or --precision runs the forward passes,
training and validation, under autocast to bf16 or fp16, with a gradient scaler for fp16; the
weights, the optimizer and the checkpoints stay float32. A resumed run takes the precision the file
or the flag asks for, not the checkpoint's (the weights do not depend on it; a change is printed);
an fp16 run resumed in fp16 goes on with its checkpoint's loss scale. metrics.jsonl gives each
epoch's `precision`, and fp16's `loss_scale` at its end. --compile trains and validates the model
through torch.compile; checkpoints are the same.

The schedule: `plateau` divides lr by 10 once the validation top-1 error has not improved
for `patience` epochs (then waits `patience` more); `step(g)` multiplies it by g after every
epoch; `multistep(E1, E2, ...)` multiplies it by `gamma` after each epoch listed, so epoch
E1 + 1 trains at lr * gamma; `cosine` is CosineAnnealingLR over the epochs. `warmup = N` comes
first, as torchvision's references' LinearLR(start_factor=0.01): epochs 1 to N rise linearly from
lr * 0.01, epoch N + 1 trains at lr (Schedule has the formulas). The lr logged for an epoch is the
one it trained with (each tensor trains at that times its layer's lr_mult; netdsl/runner/optim.py
has the update, PaperSGD's or torch's Adam/AdamW). The loss is the output's cross-entropy, with
`label_smoothing` for a softmax. --resume continues the checkpoint's optimizer (its kind and
settings: the lr reached, momentum or betas and eps, weight decay, the multipliers) and schedule
(warm-up included); --lr alone overrides them, the rest of a warm-up or cosine scaled to it.

Data parallelism (netdsl/devices/distributed.py has how to start it and which devices each process
takes): `torchrun --nproc_per_node=N -m netdsl train NET ...` trains one replica a process
under DistributedDataParallel. `batch` stays the global batch, each process taking its
batch / N share, and every step equals the single-process step on the same global batch, lr
unchanged: each process scales its loss sum by N / (images in the global batch), so the
average DDP takes is the global batch mean, in the last, short batch and where images were
skipped too (a process with no image in a step joins it with a zero-weighted one). Losses,
errors and skipped images are summed over the processes, images/s counts them all against
the slowest process's time, data_wait_s is the longest any process waited. Rank 0 alone
prints and writes the run folder; --resume hands rank 0's checkpoint to every process.

Dropout draws from (seed, epoch, rank): the replicas draw different masks, and a resumed run
draws what an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from .. import files
from ..datasets import synthetic
from ..devices import distributed
from ..devices.distributed import World
from ..devices.placement import load_optimizer_state, optimizer_state
from ..errors import NetError
from ..language.check import TRAIN_KEYS
from ..layers.registry import REGISTRY
from . import checkpoint, data, precision, preemption, provenance, run_folder
from .workers import owned
from .model import build_model, check_devices, check_layers_run, default_devices, default_workers, load_weights
from .evaluate import evaluate
from .optim import get_lr, make_optimizer, set_lr
from .schedule import Schedule

FORMAT = 1


# ---------------------------------------------------------------- how a run is made

@dataclasses.dataclass(frozen=True)
class Options:
    """A run's settings beside its network: what `netdsl train`'s flags set (netdsl/commands/train.py)
    and netdsl.train's keyword arguments. None keeps the file's [train] value, or the default."""
    data: str | None = None           # a folder with train/ and val/; None: the built-in shapes
    out: str | None = None            # the run folder; None: runs/<net name>
    epochs: int | None = None         # overrides of the [train] recipe
    batch: int | None = None
    lr: float | None = None
    schedule: tuple | None = None     # (kind, own factor, milestones), as language/values.py reads one
    precision: str | None = None
    resume: bool = False              # continue the run folder's checkpoint.pt
    seed: int | None = None           # None: 0, or a resumed run's own
    backend: str = "auto"
    devices: tuple | None = None      # None: cuda:0 if there is a GPU, else the CPU; one a group splits them
    workers: int | None = None        # data loading processes; None: up to 4, one per core
    compile: bool = False             # train and validate through torch.compile
    command_line: tuple = ()          # recorded in provenance.jsonl (the CLI gives its argv)

    @classmethod
    def of_flags(cls, namespace) -> "Options":
        """The options `netdsl train`'s parsed flags set (those the namespace has)."""
        return cls(**{field.name: getattr(namespace, field.name) for field in dataclasses.fields(cls)
                      if hasattr(namespace, field.name)})

    def run_dir(self, net) -> Path:
        """The run folder: --out, or runs/<net name>."""
        return Path(self.out or Path("runs") / net.name)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What netdsl.train returns: where the run is and how it ended."""
    run_dir: Path
    status: int           # 0: the last epoch saved; 143 or 130: stopped by SIGTERM or SIGINT, resumable
    epochs: list          # metrics.jsonl: a record an epoch trained, in order (a resumed run's earlier ones too)

    @property
    def best(self) -> dict | None:
        """The epoch of the lowest validation top-1 error (best.pt's), or None before any."""
        return min(self.epochs, key=lambda record: record["val_top1_err"], default=None)


def train(net, options: Options = Options()) -> TrainResult:
    """train_run, and the run's epochs read back from its folder."""
    status = train_run(net, options)
    run_dir = options.run_dir(net)
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return TrainResult(run_dir, status, [json.loads(line) for line in lines if line.strip()])


# ---------------------------------------------------------------- one epoch

class LossNotFinite(Exception):
    def __init__(self, value: float, step: int):
        super().__init__(f"{value} at step {step}")
        self.value, self.step = value, step


def train_loss(net, outputs, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed over the batch: the output layer's loss as its type computes it (netdsl/layers/output.py:
    cross-entropy, with `label_smoothing` e torch's, the target 1 - e + e/K on the class and e/K
    elsewhere, K classes; or binary cross-entropy summed over the classes), times its `loss_weight`.
    `outputs` is the model's: the logits, or in training with auxiliary heads (main, *heads), each
    head's loss added times its own weight."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return sum(head.options["loss_weight"] * REGISTRY[head.type].loss(logits, y, label_smoothing)
               for head, logits in zip((net.output, *net.aux_outputs), outputs))


def dropout_seed(seed: int, epoch: int, rank: int, position: int = 0) -> int:
    """The torch seed of an epoch in one process: its dropout masks. A run resumed mid-epoch with
    another number of processes seeds the rest of the epoch from its position in the epoch's order
    (the masks the uninterrupted run drew, per process, are not to be had)."""
    entropy = [seed, epoch, rank] + ([position] if position else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@dataclasses.dataclass
class EpochProgress:
    """How far an epoch has gone: what a mid-epoch checkpoint keeps so that the resumed epoch
    ends as the uninterrupted one would, with the same steps, dropout masks and metrics."""
    steps: int = 0               # steps taken
    position: int = 0            # images of the epoch's order taken (data.EpochSampler's start)
    loss_sum: float = 0.0        # the training loss summed over every process's images
    images: int = 0
    skipped_images: int = 0      # over every process
    data_wait_s: float = 0.0     # the longest any process has waited
    elapsed_s: float = 0.0       # the slowest process's training time
    rng: list = dataclasses.field(default_factory=list)  # each rank's checkpoint.rng_states(), in rank order


class Stop(NamedTuple):
    """An epoch the processes agreed to stop after a step of it, on a signal."""
    signal: int
    epoch: int
    progress: EpochProgress


# ---------------------------------------------------------------- the run folder

def _flags(options, net) -> dict:
    """The [train] keys the run changes: the flags, and for the built-in data its own budget."""
    flags = {key: getattr(options, key) for key in ("epochs", "batch", "lr", "precision") if getattr(options, key) is not None}
    if options.schedule is not None:
        kind, own_factor, milestones = options.schedule
        # multistep cuts by the file's `gamma`, which a file of another schedule cannot write
        gamma = net.train.gamma if net.train.schedule == "multistep" else TRAIN_KEYS["gamma"].default
        flags.update(schedule=kind, milestones=milestones, gamma=gamma if own_factor is None else own_factor)
    builtin = synthetic.recipe_changes(net.train) if options.data is None else {}
    return {**builtin, **flags}


def _check_milestones(config, options, net) -> None:
    """A milestone past the last epoch never cuts lr: an error in a flag, a warning when --epochs
    shortens the file's own schedule (the run is then the protocol's first epochs). The same for
    a milestone inside the warm-up (where the file's own cannot be) and a warm-up that lasts the
    whole run."""
    early = [epoch for epoch in config.milestones if epoch <= config.warmup]
    if early:
        raise NetError(f"--schedule: milestone {early[0]} falls in the file's warm-up (epochs 1 to "
                       f"{config.warmup}): the schedule's cuts come after it")
    if config.warmup >= config.epochs:
        print(f"warning: {net.path}: {config.epochs} epochs end within the warm-up of {config.warmup}, "
              "so lr never reaches its full value", file=sys.stderr)
    late = [epoch for epoch in config.milestones if epoch > config.epochs]
    if not late:
        return
    if options.schedule is not None:
        raise NetError(f"--schedule: milestone {late[0]} comes after the last epoch ({config.epochs}): "
                       "lr would never be cut there")
    print(f"warning: {net.path}: {config.epochs} epochs end before the schedule's milestone "
          f"{late[0]}, so lr is not cut there; --schedule stages a shorter run", file=sys.stderr)


def _resolve(options, net, state):
    """The [train] recipe with the flags applied, and the seed."""
    config = dataclasses.replace(net.train, **_flags(options, net))
    if state is None:  # a resumed run keeps its checkpoint's schedule
        _check_milestones(config, options, net)
    else:  # and its optimizer (make_optimizer's kind; the checkpoint's groups bring its settings)
        config = dataclasses.replace(config, optimizer=state["config"].get("optimizer", "sgd"))
    seed = options.seed if options.seed is not None else (state["seed"] if state else 0)
    return config, seed


def _data_folder(options, net, world: World) -> Path:
    if options.data is not None:
        return Path(options.data)
    root = synthetic.builtin_dataset(net)  # written atomically: processes may draw it at once
    if world.main:
        print(f"no --data: training on the built-in shapes at {root}: {synthetic.describe(net, options)}")
    return root


def _listing(*folders: data.Folder) -> str:
    """A digest of the files listed, the same in every process that sees the same folders."""
    names = [[os.path.relpath(path, folder.root), label] for folder in folders
             for path, label in folder.samples]
    return hashlib.sha256(json.dumps(names).encode()).hexdigest()


def _check_classes(options, net, train, state) -> None:
    if options.data is not None and len(train.classes) != net.classes:
        raise NetError(f"train/ has {len(train.classes)} classes but the network's output "
                       f"[{net.output.name}] has {net.classes}", options.data)
    if state is not None and list(train.classes) != list(state["classes"]):
        raise NetError("the data's classes differ from those the run was trained on",
                       str(options.data or "built-in data"))


def _epoch_line(record: dict, epochs: int) -> str:
    line = (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}, "
            f"val top-1 {record['val_top1_err']:.2%}, top-5 {record['val_top5_err']:.2%}, "
            f"lr {record['lr']:g}, {record['images_per_s']:.1f} img/s, "
            f"data wait {record['data_wait_s']:.1f} s")
    if record["skipped_images"]:
        line += f", {record['skipped_images']} images skipped"
    return line + (" (best)" if record["best"] else "")


# ---------------------------------------------------------------- the command

@dataclasses.dataclass
class Trainer:
    """Everything one run holds between epochs."""
    net: object
    run_dir: Path
    config: object
    seed: int
    recipe: data.Recipe
    train: data.Folder
    val: data.Folder
    stats: data.Stats
    workers: int
    model: torch.nn.Module
    device: torch.device
    optimizer: object
    schedule: Schedule
    problems: data.ProblemLog
    world: World
    replica: torch.nn.Module   # what trains: the model, or the model under DistributedDataParallel; compiled for --compile
    evaluated: torch.nn.Module  # what validates: the model, compiled for --compile
    devices: list | None       # the model's devices (None: the CPU)
    scaler: torch.amp.GradScaler  # fp16's loss scaler; disabled in fp32 and bf16
    signals: preemption.StopSignals = dataclasses.field(default_factory=preemption.StopSignals)
    checkpointed: tuple[int, int] | None = None   # (epoch, step) of checkpoint.pt as this run left it
    segments: list = dataclasses.field(default_factory=list)  # provenance records, this run's last

    @property
    def latest(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def autocast(self):
        """The context of the forward passes: autocast to the run's precision (netdsl/runner/precision.py)."""
        return precision.autocast(self.config.precision, self.devices)

    @property
    def mean(self):
        """The array subtracted from every image."""
        return self.stats.mean(self.recipe.mean)

    def loaders(self):
        """The training and validation batches."""
        batch, tencrop = self.config.batch, self.config.test == "tencrop"
        train = data.train_loader(data.TrainSet(self.train, self.recipe, self.stats, self.seed),
                                  batch, self.workers, self.seed, self.world)
        val = data.eval_loader(data.EvalSet(self.val, self.recipe, self.mean, tencrop),
                               batch, self.workers, self.world)
        return train, val

    def restore(self, state: dict, lr: float | None) -> tuple[int, EpochProgress]:
        """Continue from a checkpoint: the first epoch still to train, and how far it has gone (a
        mid-epoch checkpoint's progress; none after a complete epoch, or from a checkpoint older
        than `step`)."""
        load_weights(self.model, state, str(self.latest))
        try:
            load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        except (ValueError, KeyError) as err:
            raise NetError(f"the checkpoint's optimizer state does not fit: {err}", str(self.latest)) from None
        try:
            self.schedule = Schedule(**state["schedule"])
        except TypeError as err:
            raise NetError(f"the checkpoint's schedule does not fit this version of netdsl: {err}",
                           str(self.latest)) from None
        if self.schedule.kind == "cosine" and self.config.epochs > self.schedule.epochs and self.world.main:
            print(f"warning: {self.run_dir}: the cosine schedule spans the {self.schedule.epochs} epochs the run "
                  f"began with; epochs {self.schedule.epochs + 1} to {self.config.epochs} go on along it "
                  "(lr 0 after its end, then rising again), as a resumed run keeps its schedule",
                  file=sys.stderr)
        checkpoint.set_rng_states(state["rng"])
        if self.scaler.is_enabled() and state.get("scaler"):  # an fp16 run goes on with its loss scale
            self.scaler.load_state_dict(state["scaler"])
        step = state.get("step", 0)
        if lr is not None:  # from the epoch it goes on with (the same one, mid-epoch)
            set_lr(self.optimizer, lr)
            self.schedule.rebase(state["epoch"] + (not step), lr)
        self.checkpointed = (state["epoch"], step)
        if step:
            return state["epoch"], self._progress_of(state)
        if self.schedule.best_epoch == state["epoch"]:
            # a kill may have come before best.pt was made
            self.world.from_main(lambda: checkpoint.publish_copy(self.latest, self.run_dir / "best.pt"))
        return state["epoch"] + 1, EpochProgress()

    def _progress_of(self, state: dict) -> EpochProgress:
        try:
            return EpochProgress(**state["progress"])
        except (KeyError, TypeError) as err:
            raise NetError(f"the checkpoint's mid-epoch progress does not fit this version of netdsl: {err}",
                           str(self.latest)) from None

    def state(self, epoch: int, record: dict | None, progress: EpochProgress | None = None) -> dict:
        """The checkpoint: plain tensors, dicts, lists, numbers and strings only. `step` is the
        steps taken of epoch `epoch`: 0 once it is complete (with its metrics record); a
        mid-epoch checkpoint has its EpochProgress as `progress` instead."""
        extra = {"progress": dataclasses.asdict(progress)} if progress is not None else {}
        return {
            "format": FORMAT, "epoch": epoch, "step": progress.steps if progress else 0, **extra,
            "seed": self.seed,
            "net_name": self.net.name, "net_text": self.net.text, "classes": list(self.train.classes),
            "mean": torch.tensor(self.mean), "config": dataclasses.asdict(self.config),
            "model": self.model.state_dict(), "optimizer": optimizer_state(self.model, self.optimizer),
            "schedule": dataclasses.asdict(self.schedule), "rng": checkpoint.rng_states(),
            "scaler": self.scaler.state_dict(),  # fp16's loss scale; empty in fp32 and bf16
            "metrics": record,
            "provenance": self.segments[:-1] + [provenance.ended(self.segments[-1])] if self.segments else [],
        }

    def write_provenance(self, status: int | None = None) -> None:
        """RUN/provenance.jsonl: a record a segment of the run (netdsl/runner/provenance.py); with
        `status`, this segment ended with it."""
        if status is not None:
            self.segments[-1] = provenance.ended(self.segments[-1], status)
        files.replace(self.run_dir / "provenance.jsonl", "".join(json.dumps(s) + "\n" for s in self.segments))

    def step(self, batch: data.Batch, number: int) -> tuple[float, int, bool]:
        """One SGD step on a global batch, this process holding its share; (loss sum, images)
        of the whole global batch, (0, 0) where none of its images could be read (no step); and
        whether the processes stop after it: whether any has received a stop signal. That travels
        in the step's one exchange, so all of them decide alike and stop after the same step."""
        mine, my_sum = None, 0.0
        if batch.x is not None:
            with self.autocast():
                outputs = self.replica(batch.x.to(self.device, non_blocking=True))
            mine = train_loss(self.net, outputs, batch.y.to(self.device), self.config.label_smoothing)  # in float32
            my_sum = mine.item()
        elif self.world.size > 1:
            # a forward pass all the same, and before the step's sum as in every other process:
            # DDP's forward has exchanges of its own (the buckets it rebuilds once, the buffers it
            # broadcasts) that must come in the same order everywhere; its zero-weighted loss joins
            # the gradient exchange, adding nothing
            shape = self.net.input_shape
            with self.autocast():
                outputs = self.replica(torch.zeros(1, shape.c, shape.h, shape.w, device=self.device))
                mine = sum(o.sum() for o in (outputs if isinstance(outputs, tuple) else (outputs,))) * 0
        total, images, signalled = self.world.sum([my_sum, len(batch.y), self.signals.received])
        stop = signalled > 0
        if not images:
            return 0.0, 0, stop
        if not math.isfinite(total):
            raise LossNotFinite(total / images, number)
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages over the processes: this makes the average the global batch's mean. In fp16 the
        # scaler multiplies the loss by its scale for the backward and divides the gradients by it for the
        # step, which it skips (and halves the scale) where a gradient overflowed: the same in every process,
        # whose gradients DDP has made the same. Elsewhere it changes nothing.
        self.scaler.scale(mine * (self.world.size / images)).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total, int(images), stop

    def train_epoch(self, epoch: int, batches, start: EpochProgress) -> tuple[EpochProgress, int]:
        """Epoch `epoch` trained from `start` (an empty EpochProgress: from its first step) to its
        end, or to the end of a step after which the processes agreed to stop; how far it went
        (summed, or the longest, over the processes) and the stop's signal (0: none)."""
        self.replica.train()
        sampler = batches.sampler
        sampler.set_epoch(epoch, start.position)
        self._set_dropout_state(epoch, start)
        if self.world.main:  # the sum over the processes at the end of the epoch counts it once
            self.problems.skipped += start.skipped_images
        done, wait, signal = dataclasses.replace(start, rng=[]), 0.0, 0
        bar = tqdm(total=start.steps + sampler.steps_after(start.position), initial=start.steps,
                   desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", leave=False,
                   disable=None if self.world.main else True, file=sys.stderr)
        begin = ready = time.perf_counter()
        for number, batch in enumerate(batches, start.steps + 1):
            wait += time.perf_counter() - ready
            self.problems.note(batch.problems)
            loss, count, stop = self.step(batch, number)
            done.steps, done.position = number, min(done.position + sampler.batch, sampler.size)
            done.loss_sum, done.images = done.loss_sum + loss, done.images + count
            if count:
                bar.set_postfix(loss=f"{loss / count:.3f}",
                                img_s=f"{(done.images - start.images) / (time.perf_counter() - begin):.0f}",
                                refresh=False)
            bar.update()
            if stop:
                signal = self.agreed_signal()
                break
            ready = time.perf_counter()
        bar.close()
        done.elapsed_s, done.data_wait_s = self.world.max([start.elapsed_s + time.perf_counter() - begin,
                                                           start.data_wait_s + wait])
        return done, signal

    def _set_dropout_state(self, epoch: int, start: EpochProgress) -> None:
        """The random state dropout draws from at `start`: seeded from (seed, epoch, rank) at the
        epoch's first step; mid-epoch, the state this process had there, from the checkpoint."""
        rank = self.world.rank
        if start.steps and len(start.rng) == self.world.size:
            checkpoint.set_rng_states(start.rng[rank])
        else:
            torch.manual_seed(dropout_seed(self.seed, epoch, rank, start.position))

    def agreed_signal(self) -> int:
        """The stop signal any process has received (the same answer in all of them); 0: none."""
        return int(self.world.max([self.signals.received])[0])

    def stopped_text(self) -> str:
        """What a run that stops on an error leaves to resume from."""
        if self.checkpointed is None:
            return "training stopped and no checkpoint was written"
        epoch, step = self.checkpointed
        return (f"training stopped and {self.latest} (epoch {epoch}{f', step {step}' if step else ''}) "
                "is the last good checkpoint")

    def resume_text(self) -> str:
        """stopped_text, and how to go on from it."""
        if self.checkpointed is None:
            return self.stopped_text()
        return f"{self.stopped_text()}: run the same command with --resume to continue"

    def epoch(self, epoch: int, train_batches, val_batches, start: EpochProgress) -> dict | Stop:
        """Train one epoch (from `start`), validate, step the schedule; the epoch's metrics record,
        or a Stop where the processes agreed to stop in the middle of it."""
        lr = get_lr(self.optimizer)
        try:
            done, signal = self.train_epoch(epoch, train_batches, start)
        except LossNotFinite as err:
            raise NetError(f"the training loss became {err.value} at epoch {epoch}, step {err.step}; "
                           f"{self.stopped_text()}; a smaller --lr may help") from None
        if signal:
            return Stop(signal, epoch, self._with_every_process_state(done))
        if not done.images:
            raise NetError("no training image could be read this epoch: every one was skipped")
        with self.autocast():
            result = evaluate(self.evaluated, val_batches, self.net.output.type, self.device,
                              self.problems, self.world)
        next_lr, best = self.schedule.after_epoch(epoch, lr, result["top1_err"])
        set_lr(self.optimizer, next_lr)
        skipped = int(self.world.sum([self.problems.take()])[0])
        scale = {"loss_scale": self.scaler.get_scale()} if self.scaler.is_enabled() else {}
        return {"epoch": epoch, "train_loss": done.loss_sum / done.images,
                "images_per_s": done.images / done.elapsed_s, "data_wait_s": done.data_wait_s,
                "val_loss": result["loss"], "val_top1_err": result["top1_err"],
                "val_top5_err": result["top5_err"], "lr": lr, "skipped_images": skipped,
                "precision": self.config.precision, **scale, "best": best}

    def _with_every_process_state(self, done: EpochProgress) -> EpochProgress:
        """`done` with the images skipped so far in every process, and every process's random
        states (each draws its own dropout masks): a mid-epoch checkpoint's progress."""
        skipped = int(self.world.sum([self.problems.take()])[0])
        rng = self.world.gather(checkpoint.rng_states())
        return dataclasses.replace(done, skipped_images=skipped, rng=rng)

    def save(self, epoch: int, record: dict) -> None:
        """metrics.jsonl, then checkpoint.pt, then best.pt: a kill between them, or a write that
        fails (files.WriteError), loses nothing that resuming (which trims metrics.jsonl to the
        checkpoint and remakes a missing best.pt) does not repair."""
        run_folder.append_line(self.run_dir / "metrics.jsonl", record)
        checkpoint.save(self.state(epoch, record), self.latest)
        if record["best"]:
            checkpoint.publish_copy(self.latest, self.run_dir / "best.pt")

    def save_mid_epoch(self, stop: Stop) -> None:
        """checkpoint.pt of an epoch stopped mid-way, replaced atomically as every checkpoint is;
        no metrics line (the epoch has none yet), and best.pt, a complete epoch's, untouched."""
        checkpoint.save(self.state(stop.epoch, None, stop.progress), self.latest)


def _setup(options, net, run_dir: Path, state: dict | None, workers: int, world: World,
           devices) -> Trainer:
    """The data checked and its statistics loaded, the model built with its initial weights."""
    config, seed = _resolve(options, net, state)
    trained_in = state["config"].get("precision", "fp32") if state is not None else config.precision
    if trained_in != config.precision and world.main:
        print(f"{run_dir}: trained in {trained_in} so far, goes on in {config.precision} as "
              f"{'--precision' if options.precision else 'the file'} says (the weights are float32 either way)")
    if (warning := precision.cpu_fp16_warning(config.precision, devices)) and world.main:
        print(warning, file=sys.stderr)
    data_dir = _data_folder(options, net, world)
    recipe = data.Recipe.of(net)
    train, val = data.open_folders(data_dir, recipe)
    _check_classes(options, net, train, state)
    world.check_same(lambda: _listing(train, val), "the processes see different train/ or val/ "
                     "files; every machine needs the same data directory")
    world.from_main(lambda: checkpoint.remove_stale_tmp(run_dir))  # the folder is ours: locked
    problems = data.ProblemLog()
    stats = data.load_stats(train, recipe, [data_dir, run_dir], workers, problems, world)
    problems.take()  # the images skipped there are counted again in each epoch that skips them
    torch.manual_seed(seed)  # the initial weights, the same in every process
    model, device = build_model(net, options.backend, devices)
    world.from_main(lambda: run_folder.write_sources(run_dir, net, options.backend, devices))
    evaluated = precision.compiled(model, options.compile)
    replica = world.replicate(model, devices)
    optimizer, schedule = make_optimizer(model, net, config), Schedule.of(config)
    set_lr(optimizer, schedule.first_lr)  # a warm-up's start (a resumed run's comes from its checkpoint)
    return Trainer(net, run_dir, config, seed, recipe, train, val, stats, workers, model, device,
                   optimizer, schedule, problems, world,
                   evaluated if replica is model else precision.compiled(replica, options.compile), evaluated,
                   devices, precision.grad_scaler(config.precision, devices))


def train_run(net, options: Options = Options()) -> int:
    """Train `net` (a checked Net) as `options` say; the exit status `netdsl train` gives: 0 once the
    last epoch is saved, 143 or 130 where SIGTERM or SIGINT stopped it (its checkpoint written).
    NetError for a user error (the data, the run folder, a resume that does not fit)."""
    check_devices(options.devices, options.backend)
    distributed.check_batch(_flags(options, net).get("batch", net.train.batch), distributed.world_size(),
                            options.batch is not None)
    with distributed.session(options.devices) as (world, devices):
        check_layers_run(net, default_devices(devices), world.size)
        return _train_in(options, net, world, default_devices(devices))


def _train_in(options, net, world: World, devices) -> int:
    """The run, in one of the world's processes, the run folder locked for all of it."""
    run_dir = options.run_dir(net)
    with run_folder.holding(run_dir, options.resume, world):
        return _train_locked(options, net, world, devices, run_dir)


def _save_epoch(trainer: Trainer, epoch: int, record: dict) -> None:
    trainer.save(epoch, record)
    print(_epoch_line(record, trainer.config.epochs), flush=True)


def _train_locked(options, net, world: World, devices, run_dir: Path) -> int:
    # rank 0 alone reads, checks and writes the folder; from_main hands its NetError (a full
    # disk, a network that is not the run's) to every process, so none waits for it forever
    state = world.from_main(lambda: run_folder.resume_state(run_dir, options.resume, net))
    workers = default_workers() if options.workers is None else options.workers
    trainer = _setup(options, net, run_dir, state, workers, world, devices)
    first, start = trainer.restore(state, options.lr) if state is not None else (1, EpochProgress())
    epochs = trainer.config.epochs
    world.from_main(lambda: run_folder.trim_metrics(run_dir / "metrics.jsonl", first - 1))
    if first > epochs:
        if world.main:
            print(f"{run_dir} has trained {first - 1} epochs already (of {epochs}); "
                  "pass --epochs to train longer")
        return 0
    # rank 0's record, the one it writes: no other process lists the data or asks git again
    trainer.segments = world.from_main(lambda: [
        *provenance.earlier(state, run_dir / "provenance.jsonl"),
        provenance.record(options.command_line, seed=trainer.seed, workers=workers,
                          data=[trainer.train, trainer.val], world_size=world.size)])
    world.from_main(trainer.write_provenance)
    train_batches, val_batches = trainer.loaders()
    status = 1
    try:
        # the loaders' workers end before this is left, however it is left (netdsl/runner/workers.py);
        # SIGTERM and SIGINT are caught from here to the end of the epochs
        with owned(train_batches, val_batches, then=trainer.resume_text), trainer.signals:
            status = _train_epochs(trainer, first, start, train_batches, val_batches)
    except NetError:
        status = 2
        raise
    finally:
        if world.main:  # no exchange here: another process may be gone
            with contextlib.suppress(NetError):  # a full disk must not hide the error under way
                trainer.write_provenance(status)
    world.save_debug_state(trainer.model)
    return status


def _train_epochs(trainer: Trainer, first: int, start: EpochProgress, train_batches, val_batches) -> int:
    """Epochs `first` to the last, the first from `start`; 0 once the last is saved, or the exit
    status of a stop signal once its checkpoint is (after the step, or the epoch, under way)."""
    world, epochs = trainer.world, trainer.config.epochs
    for epoch in range(first, epochs + 1):
        outcome = trainer.epoch(epoch, train_batches, val_batches, start)
        start = EpochProgress()
        if isinstance(outcome, Stop):
            world.from_main(lambda: trainer.save_mid_epoch(outcome))
            trainer.checkpointed = (epoch, outcome.progress.steps)
            steps = outcome.progress.steps + train_batches.sampler.steps_after(outcome.progress.position)
            return _stopped(trainer, outcome.signal,
                            f"in epoch {epoch} of {epochs}, after step {outcome.progress.steps} of {steps}")
        world.from_main(lambda: _save_epoch(trainer, epoch, outcome))
        trainer.checkpointed = (epoch, 0)
        # a signal during validation or the save stops the run here, not a step into the next epoch
        if epoch < epochs and (signal := trainer.agreed_signal()):
            return _stopped(trainer, signal, f"after epoch {epoch} of {epochs}")
    return 0


def _stopped(trainer: Trainer, signal: int, where: str) -> int:
    """Rank 0's line saying where the run stopped and how to go on; the exit status."""
    if trainer.world.main:
        print(f"{trainer.run_dir}: stopped by {preemption.name(signal)} {where}; {trainer.latest.name} "
              "holds it: run the same command with --resume to continue", file=sys.stderr, flush=True)
    return preemption.exit_status(signal)
