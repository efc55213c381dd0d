"""The experiment scripts behind docs/ run from an empty folder, on a tiny input, and refuse a
folder that is not empty: docs/scale-invariance/reproduce.sh and docs/fashion-mnist/reproduce.sh.

    pytest tests/test_experiment_scripts.py        # about 30 s on 2 cores

Each script takes its output folder as its first argument and is shrunk by environment variables
(its header lists them): a few synthetic IDX images, one epoch. `netdsl` and `python3` are this
interpreter's, with this checkout first on PYTHONPATH.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_idx import write

REPO = Path(__file__).resolve().parent.parent
SI_SCRIPT = REPO / "docs" / "scale-invariance" / "reproduce.sh"
FASHION_SCRIPT = REPO / "docs" / "fashion-mnist" / "reproduce.sh"
NETS = ("mnist_scale_cnn", "mnist_scale_si")

pytestmark = pytest.mark.slow


def idx_folder(folder: Path, per_class: int, test_per_class: int) -> Path:
    """Four IDX files of random 28 x 28 images, `per_class` training and `test_per_class` t10k
    images of each of ten classes."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    test_labels = np.repeat(np.arange(10), test_per_class)
    write(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8))
    write(folder / "train-labels-idx1-ubyte", labels)
    write(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (len(test_labels), 28, 28), dtype=np.uint8))
    write(folder / "t10k-labels-idx1-ubyte", test_labels)
    return folder


def environment(tmp_path: Path, **settings: str) -> dict:
    """This interpreter as `python3` and `netdsl`, first on PATH, with this checkout importable."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "netdsl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m netdsl "$@"\n')
    for name in ("python3", "netdsl"):
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("OMP_NUM_THREADS", None)
    env.update(settings)
    return env


def run(command: list, env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def files_under(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def assert_refused(command: list, env: dict, cwd: Path, out: Path) -> None:
    """A second run into the same folder exits 2 with one line and leaves the folder as it was."""
    before = files_under(out)
    refused = run(command, env, cwd, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "not empty" in refused.stderr
    assert files_under(out) == before


def test_scale_invariance_script_from_an_empty_folder(tmp_path):
    idx = idx_folder(tmp_path / "idx", per_class=10, test_per_class=3)
    env = environment(tmp_path, SI_IDX=str(idx), SI_SIZES="30,20,40", SI_EPOCHS="1", SI_SCHEDULE="none",
                      SI_SCALE_IMAGES="20", SI_INVARIANCE_IMAGES="20")
    out = tmp_path / "out"          # new: the script makes it
    command = ["bash", str(SI_SCRIPT), str(out), "1"]
    done = run(command, env, tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    si = out / "scale-invariance"
    assert (out / "data" / "fmnist-scale-1" / "scales.csv").is_file()
    for net in NETS:
        folder = si / "runs" / f"{net}-split1"
        for name in ("metrics.jsonl", "provenance.jsonl", "best.pt", "test.txt", "test.json"):
            assert (folder / name).is_file(), f"{net}: {name}"
        assert "top-1 error" in (folder / "test.txt").read_text()
        assert json.loads((folder / "test.json").read_text())
        # the provenance record says how the run was made: split 1's seed, one thread, no workers
        record = json.loads((folder / "provenance.jsonl").read_text().splitlines()[0])
        assert (record["seed"], record["threads"], record["workers"]) == (1, 1, 0)
        assert record["commit"] and "--seed" in record["command"]
        assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    for name in ("error-by-scale-split1.txt", "error-by-scale-split1.png",
                 "invariance-split1.txt", "invariance-split1.png"):
        assert (si / name).is_file(), name
    tables = (out / "scale-invariance.md").read_text()
    assert "| mnist_scale_cnn-split1 | 1/1 |" in tables and "| 1 | " in tables
    settings = (out / "settings.txt").read_text()
    assert "OMP_NUM_THREADS=1; loader workers: 0; processes at a time: 2" in settings
    assert "ended:" in settings
    assert not (REPO / "docs" / "scale-invariance" / "runs" / "mnist_scale_cnn-split1" / "best.pt").exists()

    assert_refused(command, env, tmp_path, out)


def test_scale_invariance_script_refuses_a_folder_with_anything_in_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "test.txt").write_text("an earlier result\n")
    assert_refused(["bash", str(SI_SCRIPT), str(out)], environment(tmp_path), tmp_path, out)


def test_fashion_mnist_script_from_an_empty_folder(tmp_path):
    # 510 training images a class: `netdsl data fashion-mnist` holds 500 a class out for val/
    idx = idx_folder(tmp_path / "idx", per_class=510, test_per_class=2)
    env = environment(tmp_path, FASHION_MNIST_DIR=str(idx), FASHION_MNIST_EPOCHS="1")
    out = tmp_path / "out"
    out.mkdir()                     # empty: accepted
    command = ["sh", str(FASHION_SCRIPT), str(out), "fashion_tiny"]
    done = run(command, env, tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    folder = out / "fashion_tiny"
    for name in ("metrics.jsonl", "provenance.jsonl", "best.pt", "test.json"):
        assert (folder / name).is_file(), name
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((folder / "test.json").read_text())
    assert sorted(p.name for p in (out / "data").iterdir() if p.is_dir()) == ["test", "train", "val"]

    assert_refused(command, env, tmp_path, out)
