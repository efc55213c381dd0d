"""Checkpoints: written atomically, read back with torch.load(..., weights_only=True).

    save(state, run / "checkpoint.pt")      # temporary file, fsync, rename: never half-written
    state = load(run / "checkpoint.pt")     # NetError if it is missing or unreadable

A checkpoint is a dict of plain tensors, dicts, lists, numbers and strings (so loading
runs no pickled code): model, optimizer, schedule, epoch, random states, the .net text.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .errors import NetError

TMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a crash after it must not bring the old name back)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(state: dict, path: Path) -> None:
    """Write `state` to `path` atomically: a reader sees the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def publish_copy(source: Path, path: Path) -> None:
    """Make `path` hold what `source` holds now, atomically (a hard link where it can: no copy)."""
    if path.exists() and os.path.samefile(source, path):
        return  # already linked; and rename() between two links to one file does nothing
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        os.link(source, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files a killed run left behind; the files they were to replace are intact."""
    for tmp in Path(folder).glob(f"*.pt.*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)


def load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NetError("no checkpoint there", str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds for a damaged or foreign file
        raise NetError("cannot read it as a checkpoint: the file is damaged, or it was not written "
                       "by netdsl train", str(path)) from None
    if not isinstance(state, dict) or "model" not in state:
        raise NetError("not a netdsl checkpoint", str(path))
    return state


def rng_states() -> dict:
    """Every random state the training loop draws from, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
