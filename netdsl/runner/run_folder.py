"""The run folder: one run a folder, locked; what a resumed run checks before it reads a weight;
the files beside the checkpoints.

    with holding(run_dir, resume, world):              # RUN/.lock, rank 0's, for the whole run
        state = resume_state(run_dir, resume, net)     # the checkpoint to resume, or None; NetError
        write_sources(run_dir, net, backend, devices)  # RUN/<name>.net and RUN/<name>.py

RUN holds checkpoint.pt after every epoch and best.pt whenever the validation top-1 error improves
(runner/checkpoint.py), metrics.jsonl (a JSON object an epoch), provenance.jsonl (a record a segment,
runner/provenance.py), <name>.net (the text trained) and <name>.py (the generated source).

--resume first checks the file against the network the checkpoint was trained on (its stored
text, checked as the file is): other layers stop it with `netdsl diff`'s summary, before
anything is loaded or written; comments and layout do not count; a changed recipe is printed,
one line a change, each [train] key the resumed run does not follow marked (the optimizer's
settings and the schedule continue from the checkpoint: CONTINUED_ON_RESUME).
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from .. import files
from ..devices.distributed import World
from ..errors import NetError
from ..language import netdiff
from . import checkpoint, runlock


def append_line(path: Path, record: dict) -> None:
    files.append(path, json.dumps(record) + "\n")


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Keep the epochs the checkpoint holds: a run killed after logging an epoch but before its
    checkpoint logs that epoch again when resumed."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and json.loads(line).get("epoch", 0) <= last_epoch]
    files.replace(path, "".join(line + "\n" for line in lines))


def nothing_to_resume(run_dir: Path) -> NetError:
    return NetError("nothing to resume: no checkpoint.pt (run without --resume to start)", str(run_dir))


def locked(run_dir: Path, resume: bool) -> runlock.RunLock:
    """The run folder, made if need be (not for --resume, which needs it to exist), locked for
    this process: the lock comes before anything in the folder is read or written."""
    if resume and not run_dir.is_dir():
        raise nothing_to_resume(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NetError(f"cannot create the run folder: {err.strerror}", str(run_dir)) from None
    return runlock.acquire(run_dir)


@contextlib.contextmanager
def holding(run_dir: Path, resume: bool, world: World):
    """The run folder locked for as long as the block runs, by rank 0 alone (the one process
    that writes it); the NetError of a folder another run holds reaches every process."""
    held = []
    world.from_main(lambda: held.append(locked(run_dir, resume)))  # the lock stays here
    try:
        yield
    finally:
        for held_lock in held:
            held_lock.release()


def open_run(run_dir: Path, resume: bool) -> dict | None:
    """The checkpoint to resume from, or None for a fresh run; NetError where that is wrong."""
    latest = run_dir / "checkpoint.pt"
    if resume:
        if not latest.exists():
            raise nothing_to_resume(run_dir)
        return checkpoint.load(latest)
    if latest.exists():
        raise NetError("already holds a run; pass --resume to continue it or --out to start "
                       "another", str(run_dir))
    return None


# The [train] keys a resumed run takes from its checkpoint, whatever the file says (restore()).
CONTINUED_ON_RESUME = ("optimizer", "lr", "momentum", "weight_decay", "betas", "eps", "schedule", "gamma",
                       "patience", "warmup", "lr_mult", "decay_mult")


def trained_net(state: dict, latest: Path):
    """The network the run was trained on, read from the checkpoint's copy of its text by this
    version of netdsl, so that both sides of a comparison get the same defaults; None where the
    text is missing or no longer parses."""
    import netdsl

    text = state.get("net_text")
    if not isinstance(text, str):
        return None
    try:
        return netdsl.parse_string(text, f"{latest} (its .net text)")
    except NetError:
        return None


def recipe_note(key: str) -> str:
    if key not in CONTINUED_ON_RESUME:
        return ""
    if key == "lr":
        return " (not followed: a resumed run keeps its checkpoint's lr; --lr sets it)"
    return f" (not followed: a resumed run keeps its checkpoint's {key})"


def check_resumed_net(net, state: dict, run_dir: Path) -> list[str]:
    """--resume's check of the file against the network the run was trained on, before anything
    is loaded into a model or written: NetError with `netdsl diff`'s summary where the layers
    differ (as checked, so comments and layout do not count); else a line for each change of
    the recipe, saying which ones the resumed run does not follow."""
    if state.get("net_text") == net.text:
        return []
    latest = run_dir / "checkpoint.pt"
    trained = trained_net(state, latest)
    if trained is None:  # loading the weights still refuses a network of other shapes
        print(f"warning: {latest}: cannot compare {net.path} with the network the run was trained "
              "on: the checkpoint's copy of its text is missing or no longer parses", file=sys.stderr)
        return []
    changed = netdiff.network_diff(trained, net)
    if changed:
        raise NetError(f"is not the network {run_dir} was trained on, so it cannot resume it: "
                       + "; ".join(changed) + "; pass --out to train it as a new run", net.path)
    return [f"{run_dir}: {line}{recipe_note(key)}" for key, line in netdiff.recipe_changes(trained, net)]


def resume_state(run_dir: Path, resume: bool, net) -> dict | None:
    """open_run's checkpoint, the network checked against it and its recipe changes printed."""
    state = open_run(run_dir, resume)
    if state is not None:
        for line in check_resumed_net(net, state, run_dir):
            print(line)
    return state


def write_sources(run_dir: Path, net, backend: str, devices) -> None:
    import netdsl

    files.replace(run_dir / f"{net.name}.net", net.text)
    resolved = netdsl.resolve_backend(backend, devices)
    files.replace(run_dir / f"{net.name}.py", netdsl.generate_source(net, resolved))
