"""Where a result came from: the record `netdsl train` keeps in its run folder and in every
checkpoint, and `netdsl eval --json` writes beside its figures.

    segment = provenance.record(["netdsl", "train", ...], seed=0, workers=4, data=[train, val])
    ...                                          # the run
    provenance.ended(segment, status=0)          # its end time and exit status

A record holds: the netdsl version and, run from a git checkout, its commit and whether the tree
had uncommitted changes; the torch, triton and Python versions; the command line; the seed; torch's
threads and the loader workers; the host, its CPU and any GPU; the data folder with a fingerprint
of its listing (the file count and a hash of each file's name and size: a changed, added or
removed image changes it, and no image is read); start and end times, in UTC.

A run resumed N times has N + 1 records, one a segment, oldest first: RUN/provenance.jsonl holds
one a line, and every checkpoint the segments that trained it (the last one's end is that
checkpoint's save).
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parents[2]   # the checkout netdsl runs from, if it is one


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def record(command: list[str], *, seed: int, workers: int, data=(), world_size: int = 1) -> dict:
    """This process's record, started now; `data`: the data.Folder splits it reads."""
    return {"netdsl": _version("netdsl"), **_git(), "torch": str(torch.__version__), "triton": _version("triton"),
            "python": platform.python_version(), "command": list(command), "seed": seed,
            "threads": torch.get_num_threads(), "workers": workers, "processes": world_size,
            "host": socket.gethostname(), "cpu": cpu_model(), "gpus": _gpus(), "data": fingerprint(data),
            "started": now(), "ended": None, "exit_status": None}


def ended(segment: dict, status: int | None = None) -> dict:
    """The segment with its end time (and the exit status, once the command is over)."""
    return {**segment, "ended": now(), "exit_status": status}


def earlier(state: dict | None, path: Path) -> list[dict]:
    """The segments that trained a checkpoint (none for a fresh run), each as `path` (the run's
    provenance.jsonl) last wrote it where it has it: with its true end and exit status, which the
    checkpoint, saved before the end, cannot hold."""
    kept = list((state or {}).get("provenance", []))
    try:
        written = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        written = []
    by_start = {(r.get("started"), tuple(r.get("command", ()))): r for r in written if isinstance(r, dict)}
    return [by_start.get((s.get("started"), tuple(s.get("command", ()))), s) for s in kept]


def fingerprint(splits) -> dict:
    """The data folder, its file count and a hash of every file's path (to the folder) and size."""
    splits = list(splits)
    if not splits:
        return {}
    root = Path(splits[0].root).parent
    listing = hashlib.sha256()
    count = 0
    for split in splits:
        for path, _ in split.samples:
            listing.update(f"{os.path.relpath(path, root)}\0{os.stat(path).st_size}\n".encode())
            count += 1
    return {"path": str(root.resolve()), "files": count, "listing_sha256": listing.hexdigest()[:16]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _gpus() -> list[str]:
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git() -> dict:
    """{"commit", "dirty"} of the checkout netdsl runs from; {} where it is not one (a wheel)."""
    if not (SOURCE / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        status = subprocess.run(["git", "-C", str(SOURCE), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if commit.returncode != 0:
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
