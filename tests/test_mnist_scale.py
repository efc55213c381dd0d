"""MNIST-scale on small synthetic IDX sets: centred rescaling, factors, stratified splits,
byte-identical reruns, atomic output.

    pytest tests/test_mnist_scale.py
"""
import argparse
import csv
import hashlib

import numpy as np
import pytest
from PIL import Image

from netdsl import NetError
from netdsl.commands import data as data_command
from netdsl.datasets import mnist_scale
from netdsl.datasets.mnist_scale import SPLITS
from test_idx import write

SIZES = (20, 10, 50)
COUNTS = [30, 20, 15, 10, 8, 8, 8, 7, 7, 7]   # 120 images, classes of unequal size


def blob(sigma=4.0, size=28) -> np.ndarray:
    """A Gaussian blob centred on the canvas (pixel centres at 0.5, 1.5, ...)."""
    y, x = np.mgrid[:size, :size] + 0.5
    return 255 * np.exp(-((x - size / 2) ** 2 + (y - size / 2) ** 2) / (2 * sigma ** 2))


def moments(image):
    """Centre of mass (row, column) in pixel-centre coordinates and the radius of gyration."""
    y, x = np.mgrid[:image.shape[0], :image.shape[1]] + 0.5
    mass = image.sum()
    cy, cx = (image * y).sum() / mass, (image * x).sum() / mass
    return cy, cx, np.sqrt((image * ((y - cy) ** 2 + (x - cx) ** 2)).sum() / mass)


@pytest.mark.parametrize("factor", [0.3, 0.45, 0.7, 1.0, 1.2])
def test_rescale_keeps_the_blob_centred_and_scales_it(factor):
    source = blob()
    scaled = mnist_scale.rescale(source, factor)
    cy, cx, radius = moments(scaled)
    assert abs(cy - 14) < 1e-3 and abs(cx - 14) < 1e-3
    _, _, radius0 = moments(source)
    assert radius / radius0 == pytest.approx(factor, rel=0.06)
    assert scaled.sum() / source.sum() == pytest.approx(factor ** 2, rel=0.06)


def test_rescale_by_one_is_the_identity():
    image = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.float32)
    assert np.array_equal(mnist_scale.rescale(image, 1.0), image)


def synthetic(seed=0):
    """Class-imbalanced images (a centred blob of class-dependent size) and labels."""
    labels = np.repeat(np.arange(10), COUNTS)
    rng = np.random.default_rng(seed)
    rng.shuffle(labels)
    images = np.stack([blob(2 + label / 3) for label in labels]).astype(np.uint8)
    return images, labels


def test_draw_is_stratified_with_exact_totals_and_factors_in_range():
    _, labels = synthetic()
    factors, parts = mnist_scale.draw(labels, 3, SIZES)
    assert factors.min() >= 0.3 and factors.max() <= 1.0 and len(factors) == len(labels)
    assert [len(parts[s]) for s in SPLITS] == list(SIZES)
    taken = np.concatenate(list(parts.values()))
    assert len(np.unique(taken)) == len(taken)          # no image in two splits
    for split, size in zip(SPLITS, SIZES):
        per_class = np.bincount(labels[parts[split]], minlength=10)
        quota = np.array(COUNTS) * size / len(labels)
        assert np.all(np.abs(per_class - quota) < 1), (split, per_class, quota)


def test_apportion_gives_largest_remainders_and_exact_total():
    assert mnist_scale.apportion(np.array([5, 3, 2]), 5).tolist() == [3, 1, 1]  # 2.5, 1.5, 1
    assert mnist_scale.apportion(np.array([6000] * 10), 2000).tolist() == [200] * 10


def test_draw_refuses_more_images_than_there_are():
    _, labels = synthetic()
    with pytest.raises(NetError, match="ask for 130 images .* hold 120"):
        mnist_scale.draw(labels, 0, (40, 40, 50))


def idx_dir(tmp_path):
    """The synthetic set as MNIST-format files: 90 train (gzipped), 30 t10k (raw)."""
    images, labels = synthetic()
    folder = tmp_path / "idx"
    folder.mkdir()
    write(folder / "train-images-idx3-ubyte.gz", images[:90], gz=True)
    write(folder / "train-labels-idx1-ubyte.gz", labels[:90], gz=True)
    write(folder / "t10k-images-idx3-ubyte", images[90:])
    write(folder / "t10k-labels-idx1-ubyte", labels[90:])
    return folder, images, labels


def tree(folder):
    """{relative path: sha256} of every file under folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_build_writes_class_folders_a_scales_csv_and_centred_digits(tmp_path):
    _, images, labels = idx_dir(tmp_path)
    out = tmp_path / "scale"
    assert mnist_scale.build(images, labels, out, 0, SIZES, workers=1) == dict(zip(SPLITS, SIZES))
    assert sorted(p.name for p in out.iterdir()) == ["scales.csv", "test", "train", "val"]
    for split, size in zip(SPLITS, SIZES):
        assert [p.name for p in sorted((out / split).iterdir())] == [str(c) for c in range(10)]
        assert len(list((out / split).rglob("*.png"))) == size
    rows = list(csv.DictReader(open(out / "scales.csv")))
    assert len(rows) == sum(SIZES)
    for row in rows:
        factor, label = float(row["scale"]), int(row["label"])
        index = int(row["file"].rsplit("/", 1)[1][:-4])
        assert 0.3 <= factor <= 1 and row["file"].split("/")[1] == str(label) == str(labels[index])
        image = np.asarray(Image.open(out / row["file"]), dtype=np.float64)
        assert image.shape == (28, 28)
        cy, cx, _ = moments(image)
        assert abs(cy - 14) < 0.05 and abs(cx - 14) < 0.05, row
        expected = mnist_scale.to_uint8(mnist_scale.rescale(images[index], factor))
        assert np.array_equal(image, expected)      # the factor in the csv is the one applied
    assert not list(tmp_path.glob(".scale.partial-*"))


def test_same_split_gives_identical_files_other_split_differs(tmp_path):
    _, images, labels = idx_dir(tmp_path)
    mnist_scale.build(images, labels, tmp_path / "a", 1, SIZES, workers=1)
    mnist_scale.build(images, labels, tmp_path / "b", 1, SIZES, workers=2)
    mnist_scale.build(images, labels, tmp_path / "c", 2, SIZES, workers=1)
    a, b, c = (tree(tmp_path / name) for name in "abc")
    assert a == b
    assert a != c and a["scales.csv"] != c["scales.csv"]


def test_command_reads_idx_files_and_refuses_a_full_folder(tmp_path, capsys, monkeypatch):
    folder, _, _ = idx_dir(tmp_path)
    monkeypatch.setattr(mnist_scale, "SIZES", SIZES)
    parser = argparse.ArgumentParser()
    data_command.add_mnist_scale_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args([str(folder), str(out), "--split", "5", "--workers", "1"])
    assert data_command.run_mnist_scale(args) == 0
    assert "split 5" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == sum(SIZES)
    with pytest.raises(NetError, match="already exists and is not empty"):
        data_command.run_mnist_scale(parser.parse_args([str(folder), str(out)]))
    with pytest.raises(SystemExit):
        parser.parse_args([str(folder), str(out), "--split", "6"])


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    _, images, labels = idx_dir(tmp_path)

    def fail(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist_scale, "_write_chunk", fail)
    with pytest.raises(KeyboardInterrupt):
        mnist_scale.build(images, labels, tmp_path / "scale", 0, SIZES, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_an_unwritable_target_is_a_user_error(tmp_path):
    _, images, labels = idx_dir(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NetError, match="cannot write the dataset"):
        mnist_scale.build(images, labels, tmp_path / "file" / "scale", 0, SIZES, workers=1)
