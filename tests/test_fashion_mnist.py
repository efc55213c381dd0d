"""`netdsl data fashion-mnist` on small synthetic IDX sets: exact pixels, stratified val,
stable names, idempotent reruns, refusals that leave nothing behind.

    pytest tests/test_fashion_mnist.py
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from netdsl import NetError, cli
from netdsl.datasets import fashion_mnist
from netdsl.datasets.fashion_mnist import SPLITS
from netdsl.datasets.mnist_scale import apportion
from test_idx import idx_bytes, write

COUNTS = [40, 35, 30, 30, 25, 20, 20, 15, 12, 13]   # 240 training images, classes of unequal size
VAL = 30
TEST = 50
FOLDERS = ["0_T-shirt-top", "1_Trouser", "2_Pullover", "3_Dress", "4_Coat",
           "5_Sandal", "6_Shirt", "7_Sneaker", "8_Bag", "9_Ankle-boot"]


def synthetic(seed=0):
    """Noise images (9 x 7, not square, so a transpose would show) with shuffled labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10), COUNTS))
    test_labels = np.concatenate([np.arange(10), rng.integers(0, 10, TEST - 10)])
    images = rng.integers(0, 256, (len(labels), 9, 7), dtype=np.uint8)
    test_images = rng.integers(0, 256, (TEST, 9, 7), dtype=np.uint8)
    return images, labels, test_images, test_labels


def idx_dir(tmp_path, data=None):
    """The synthetic set as the four IDX files, training files gzipped, t10k raw."""
    images, labels, test_images, test_labels = data or synthetic()
    folder = tmp_path / "idx"
    folder.mkdir()
    write(folder / "train-images-idx3-ubyte.gz", images, gz=True)
    write(folder / "train-labels-idx1-ubyte.gz", labels, gz=True)
    write(folder / "t10k-images-idx3-ubyte", test_images)
    write(folder / "t10k-labels-idx1-ubyte", test_labels)
    return folder


@pytest.fixture
def small_val(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "VAL_SIZE", VAL)


def command(folder, out, *flags):
    return cli.main(["data", "fashion-mnist", str(out), "--idx", str(folder), *flags])


def tree(folder):
    """{relative path: (sha256, mtime)} of every file under folder."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                               p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pngs(folder, split):
    """{(class folder, file name): pixels} of one split."""
    return {(p.parent.name, p.name): np.asarray(Image.open(p))
            for p in (folder / split).glob("*/*.png")}


def index(name):
    return int(name.rsplit("-", 1)[1][:-4])


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "idx")


def test_class_folders_are_the_readme_names_in_label_order():
    assert fashion_mnist.class_folders() == FOLDERS == sorted(FOLDERS)


def test_val_is_stratified_exact_disjoint_and_seeded():
    _, labels, _, _ = synthetic()
    train, val = fashion_mnist.split_val(labels, VAL)
    assert len(val) == VAL and len(train) == len(labels) - VAL
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    per_class = np.bincount(labels[val], minlength=10)
    assert per_class.tolist() == apportion(np.array(COUNTS), VAL).tolist()
    assert np.all(np.abs(per_class - np.array(COUNTS) * VAL / len(labels)) < 1)
    assert np.array_equal(fashion_mnist.split_val(labels, VAL)[1], val)
    assert fashion_mnist.split_val(np.repeat(np.arange(10), 600), 50)[1].size == 50


def test_command_writes_every_image_pixel_for_pixel(tmp_path, capsys, small_val):
    images, labels, test_images, test_labels = synthetic()
    out = tmp_path / "fashion"
    assert command(idx_dir(tmp_path), out, "--workers", "2") == 0
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and f"{len(labels) - VAL} train, {VAL} val, {TEST} test images in {out}" in said[0]
    assert sorted(p.name for p in out.iterdir()) == ["fashion-mnist.json", "test", "train", "val"]
    written = {split: pngs(out, split) for split in SPLITS}
    for split in SPLITS:
        assert sorted(p.name for p in (out / split).iterdir()) == FOLDERS   # every class everywhere
        assert {folder for folder, _ in written[split]} == set(FOLDERS)
    for split, prefix, source, source_labels in [("train", "train-", images, labels),
                                                 ("val", "train-", images, labels),
                                                 ("test", "t10k-", test_images, test_labels)]:
        for (folder, name), pixels in written[split].items():
            assert name.startswith(prefix) and len(name) == len(prefix) + 5 + 4
            i = index(name)
            assert folder == FOLDERS[source_labels[i]]
            assert pixels.dtype == np.uint8 and np.array_equal(pixels, source[i])
    train = {index(name) for _, name in written["train"]}
    val = {index(name) for _, name in written["val"]}
    assert not train & val and train | val == set(range(len(labels)))
    assert sorted(index(name) for _, name in written["test"]) == list(range(TEST))
    val_counts = np.bincount(labels[sorted(val)], minlength=10)
    assert val_counts.tolist() == apportion(np.array(COUNTS), VAL).tolist()
    manifest = json.loads((out / "fashion-mnist.json").read_text())
    assert manifest["val_size"] == VAL
    assert manifest["images"]["val"] == dict(zip(FOLDERS, val_counts.tolist()))
    assert leftovers(tmp_path) == ["fashion"]


def test_split_and_names_are_the_same_every_run(tmp_path):
    data = synthetic()
    fashion_mnist.build(*data, tmp_path / "a", VAL, workers=1)
    fashion_mnist.build(*data, tmp_path / "b", VAL, workers=2)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {k: h for k, (h, _) in a.items()} == {k: h for k, (h, _) in b.items()}


def test_a_rerun_on_a_complete_set_changes_nothing(tmp_path, capsys, small_val):
    folder, out = idx_dir(tmp_path), tmp_path / "fashion"
    assert command(folder, out, "--workers", "1") == 0
    (out / ".netdsl-stats-0123.npz").write_bytes(b"what training caches beside the data")
    before = tree(out)
    capsys.readouterr()
    assert command(folder, out, "--workers", "1") == 0
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "already in" in said[0] and "nothing to do" in said[0]
    assert tree(out) == before and leftovers(tmp_path) == ["fashion"]


@pytest.mark.parametrize("ours, spoil, message", [
    (False, lambda out: (out / "notes.txt").write_text("mine"), "holds no fashion-mnist.json"),
    (True, lambda out: next((out / "val").glob("*/*.png")).unlink(), "1 files missing, 0 unexpected"),
    (True, lambda out: (out / "train" / "1_Trouser" / "x.png").write_bytes(b""), "0 files missing, 1 unexpected"),
])
def test_a_foreign_or_changed_folder_is_refused_and_left_alone(tmp_path, capsys, small_val, ours, spoil,
                                                              message):
    folder, out = idx_dir(tmp_path), tmp_path / "fashion"
    if ours:
        assert command(folder, out, "--workers", "1") == 0
    else:
        out.mkdir()
    spoil(out)
    before = tree(out)
    capsys.readouterr()
    assert command(folder, out, "--workers", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{out}: error: ") and message in err[0]
    assert tree(out) == before and leftovers(tmp_path) == ["fashion"]


def test_a_set_from_other_data_or_settings_is_refused(tmp_path, capsys, monkeypatch, small_val):
    folder, out = idx_dir(tmp_path), tmp_path / "fashion"
    assert command(folder, out, "--workers", "1") == 0
    monkeypatch.setattr(fashion_mnist, "VAL_SIZE", VAL + 10)
    capsys.readouterr()
    assert command(folder, out, "--workers", "1") == 2
    assert "differs in val_size, images" in capsys.readouterr().err
    with pytest.raises(NetError, match="differs in source_sha256"):
        fashion_mnist.build(*synthetic(seed=1), out, VAL, workers=1)


def _broken_idx(tmp_path, how):
    images, labels, test_images, test_labels = synthetic()
    if how == "missing folder":
        return tmp_path / "idx"
    if how == "label 10":
        test_labels = test_labels.copy()
        test_labels[3] = 10
    if how == "count mismatch":
        labels = labels[:-1]
    folder = idx_dir(tmp_path, (images, labels, test_images, test_labels))
    if how == "truncated":
        (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test_images, 0x08)[:-7])
    if how == "missing file":
        (folder / "train-labels-idx1-ubyte.gz").unlink()
    return folder


@pytest.mark.parametrize("how, message", [
    ("missing folder", "no such directory"),
    ("missing file", "missing train-labels-idx1-ubyte[.gz]"),
    ("truncated", "truncated: a 50 x 9 x 7 array of uint8 needs 3150 bytes of data, the file holds 3143"),
    ("label 10", "label 10 at index 3 is outside 0..9"),
    ("count mismatch", "239 labels for the 240 images"),
])
def test_bad_idx_files_are_one_line_and_leave_nothing(tmp_path, capsys, small_val, how, message):
    folder = _broken_idx(tmp_path, how)
    assert command(folder, tmp_path / "fashion") == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in captured.err
    assert leftovers(tmp_path) == []


def test_a_training_file_too_small_for_val_is_refused(tmp_path, capsys, monkeypatch):
    folder = idx_dir(tmp_path)
    monkeypatch.setattr(fashion_mnist, "VAL_SIZE", 5000)
    assert command(folder, tmp_path / "fashion") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds 240 images, too few for 5000 validation images" in err[0]
    monkeypatch.setattr(fashion_mnist, "VAL_SIZE", 230)     # 230/240 of class 8's 12 is 12: none left
    assert command(folder, tmp_path / "fashion") == 2
    assert "class 8 (Bag) has 12 images and its share of val/ is 12" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_an_interrupted_run_leaves_nothing_and_a_killed_runs_leftovers_go(tmp_path, monkeypatch):
    data = synthetic()

    def interrupt(task):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(fashion_mnist, "_write_chunk", interrupt)
        with pytest.raises(KeyboardInterrupt):
            fashion_mnist.build(*data, tmp_path / "fashion", VAL, workers=1)
    assert leftovers(tmp_path) == []
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    killed = tmp_path / f".fashion.partial-{gone.pid}"
    (killed / "train").mkdir(parents=True)
    alive = tmp_path / f".fashion.partial-{os.getppid()}"    # a live process's run: not ours to remove
    alive.mkdir()
    fashion_mnist.build(*data, tmp_path / "fashion", VAL, workers=1)
    assert leftovers(tmp_path) == [alive.name, "fashion"]
