"""The learning-rate schedule of a run, one value an epoch, and its state in every checkpoint.

    schedule = Schedule.of(config)                  # net.train with the flags applied
    lr = schedule.first_lr
    lr, improved = schedule.after_epoch(epoch, lr, val_err)   # the next epoch's lr

`plateau` divides lr by 10 once the validation top-1 error has not improved for `patience`
epochs (then waits `patience` more); `step(g)` multiplies it by g after every epoch;
`multistep(E1, E2, ...)` multiplies it by `gamma` after each epoch listed, so epoch E1 + 1 trains
at lr * gamma; `cosine` is CosineAnnealingLR over the epochs. `warmup = N` comes first, as
torchvision's references' LinearLR(start_factor=0.01): epochs 1 to N rise linearly from
lr * 0.01, epoch N + 1 trains at lr. docs/language.md's [train] section has the formulas.
"""
from __future__ import annotations

import dataclasses
import math


# torchvision's references warm up with LinearLR(start_factor=--lr-warmup-decay, default 0.01)
WARMUP_START = 0.01


@dataclasses.dataclass
class Schedule:
    """The lr after each epoch, and the best validation error so far (best.pt's).

    `plateau` waits for the error to start falling: the paper lowers the rate "when the
    validation error rate stopped improving", and an error that has never moved below its
    first epoch's (a network still at chance) has not stopped improving, it has not started.

    `warmup = N` comes before any schedule, as torchvision's references chain LinearLR and the
    main scheduler with SequentialLR: epoch e <= N trains at base_lr * (0.01 + 0.99 (e - 1) / N),
    epoch N + 1 at base_lr, and the schedule runs from there as if the run began at N + 1 (step
    and plateau count from it; multistep's milestones, epochs of the whole run, come after it).
    `cosine` is CosineAnnealingLR over the epochs after the warm-up, T = epochs - N of them:
    epoch N + 1 + k trains at base_lr * (1 + cos(pi k / T)) / 2. Both are closed forms of the
    epoch (the factor() below, torch's _get_closed_form_lr), computed here like the other
    schedules' rules so that one dataclass holds every schedule's state and a checkpoint
    restores it exactly; torch's schedulers, stepped, multiply the previous lr by a ratio and
    drift from the formula in the last bits.
    """
    kind: str                         # plateau | step | multistep | cosine | none
    gamma: float                      # the factor of each cut
    patience: int
    milestones: tuple[int, ...] = ()  # multistep's epochs (a checkpoint from before multistep has none)
    best_err: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    improving: bool = False           # some epoch after the first has beaten the best before it
    warmup: int = 0                   # epochs of linear warm-up (checkpoints from before it have none)
    epochs: int = 0                   # the run's epochs when it began: cosine's length
    base_lr: float = 0.0              # the lr the warm-up rises to and cosine falls from

    def __post_init__(self):
        self.milestones = tuple(self.milestones)  # a checkpoint may hold them as a list

    @staticmethod
    def of(config) -> "Schedule":
        """The schedule a TrainConfig asks for, before its first epoch."""
        return Schedule(config.schedule, config.gamma, config.patience, config.milestones,
                        warmup=config.warmup, epochs=config.epochs, base_lr=config.lr)

    def factor(self, epoch: int) -> float | None:
        """base_lr's factor for epoch `epoch` where the warm-up or cosine fixes it; None where the
        lr is the previous epoch's after the schedule's own rule (step, multistep, plateau, none)."""
        if epoch <= self.warmup:
            return WARMUP_START + (1 - WARMUP_START) * (epoch - 1) / self.warmup
        if self.kind == "cosine":
            return (1 + math.cos(math.pi * (epoch - 1 - self.warmup) / max(self.epochs - self.warmup, 1))) / 2
        return 1.0 if epoch == self.warmup + 1 else None

    @property
    def first_lr(self) -> float:
        """The lr of the first epoch: base_lr, or its warm-up's start."""
        return self.base_lr * self.factor(1)

    def rebase(self, epoch: int, lr: float) -> None:
        """--lr on resume: epoch `epoch` trains at `lr`, and a warm-up or cosine goes on from it in
        proportion (base_lr such that factor(epoch) gives it)."""
        factor = self.factor(epoch)
        self.base_lr = lr / factor if factor else lr

    def after_epoch(self, epoch: int, lr: float, val_err: float) -> tuple[float, bool]:
        """The next epoch's lr, and whether this epoch is the best so far."""
        improved = val_err < self.best_err
        if improved:
            self.improving = self.improving or self.best_err < math.inf
            self.best_err, self.best_epoch, self.bad_epochs = val_err, epoch, 0
        elif self.improving:
            self.bad_epochs += 1
        if epoch <= self.warmup:
            self.bad_epochs = 0  # a plateau is looked for once the warm-up is over
        if (factor := self.factor(epoch + 1)) is not None:
            lr = self.base_lr * factor
        elif self.kind == "step" or (self.kind == "multistep" and epoch in self.milestones):
            lr *= self.gamma
        elif self.kind == "plateau" and self.bad_epochs >= self.patience:
            lr, self.bad_epochs = lr * self.gamma, 0
        return lr, improved
