"""The input pipeline (netdsl/runner/data.py): layout checks, decoding, mean and PCA, crops, lighting.

    pytest tests/test_data.py

The helpers here (TINY_NET, make_folder, ...) also serve tests/test_runner*.py.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import netdsl
from netdsl.runner import data
from netdsl.devices.distributed import World
from netdsl.errors import NetError

TINY_NET = """
[net]
name = tiny
[data]
type = data
shape = {c}x12x12
[conv1]
type = conv
filters = 4
size = 3
stride = 2
neuron = relu
[drop]
type = dropout
p = 0.25
[fc]
type = fc
outputs = {classes}
[prob]
type = {output}
[train]
batch = 8
epochs = 3
lr = 0.0005
schedule = step(0.5)
resize = 14
{extra}
"""

# A small net that learns the built-in shapes (test_runner.py, and in bf16 test_precision.py).
SMALL_NET = """
[net]
name = small
[data]
type = data
shape = 3x32x32
[conv1]
type = conv
filters = 16
size = 5
pad = 2
neuron = relu
[pool1]
type = maxpool
size = 3
stride = 2
[conv2]
type = conv
filters = 32
size = 5
pad = 2
neuron = relu
[pool2]
type = maxpool
size = 3
stride = 2
[fc1]
type = fc
outputs = 64
neuron = relu
[fc2]
type = fc
outputs = 10
[prob]
type = softmax
[train]
batch = 16
lr = 0.001
schedule = none
"""

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def tiny_net(tmp_path, classes=3, c=3, output="softmax", extra="", name="tiny.net"):
    path = tmp_path / name
    path.write_text(TINY_NET.format(classes=classes, c=c, output=output, extra=extra))
    return path


def picture(k: int, i: int, size=(16, 16)) -> np.ndarray:
    """Class k's colour on a noisy background, a little different for each i."""
    rng = np.random.default_rng(1000 * k + i)
    image = rng.integers(0, 60, (size[1], size[0], 3))
    h, w = size[1] // 2, size[0] // 2
    image[h // 2:h // 2 + h, w // 2:w // 2 + w] = COLOURS[k]
    return image.astype(np.uint8)


def make_folder(root, classes=3, train=8, val=4, size=(16, 16), suffix=".png", channels=3):
    """An ImageFolder tree of tiny pictures (or C x H x W .npy arrays)."""
    for split, count in (("train", train), ("val", val)):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                image = picture(k, i + (1000 if split == "val" else 0), size)
                if suffix == ".npy":
                    np.save(folder / f"{i}.npy", image[:, :, np.arange(channels) % 3].transpose(2, 0, 1))
                else:
                    Image.fromarray(image).save(folder / f"{i}{suffix}")
    return root


def recipe(**changes) -> data.Recipe:
    return dataclasses.replace(data.Recipe(3, 14, 12, 12), **changes)


# ---------------------------------------------------------------- layout

def test_folders_are_read_sorted_and_val_labels_follow_train(tmp_path):
    make_folder(tmp_path, classes=3)
    train, val = data.open_folders(tmp_path, recipe())
    assert train.classes == ("class0", "class1", "class2")
    assert len(train.samples) == 24 and len(val.samples) == 12
    assert {label for _, label in val.samples} == {0, 1, 2}


@pytest.mark.parametrize("damage, message", [
    (lambda d: shutil.rmtree(d / "train"), "no `train/` folder"),
    (lambda d: shutil.rmtree(d / "val"), "no `val/` folder"),
    (lambda d: [p.unlink() for p in (d / "val").rglob("*.png")], "`val/` holds no"),
    (lambda d: [p.unlink() for p in (d / "train" / "class1").glob("*")], "without images: class1"),
    (lambda d: (d / "val" / "zebra").mkdir(), "val/ has classes that train/ lacks: zebra"),
])
def test_bad_layouts_are_named(tmp_path, damage, message):
    make_folder(tmp_path)
    damage(tmp_path)
    with pytest.raises(NetError, match=message.replace("(", r"\(")):
        data.open_folders(tmp_path, recipe())


def test_images_smaller_than_the_crop_are_refused_up_front(tmp_path):
    make_folder(tmp_path, size=(10, 20))
    with pytest.raises(NetError, match="10x20, smaller than the network's 12x12 crop"):
        data.open_folders(tmp_path, recipe())


# ---------------------------------------------------------------- decoding

def test_read_image_scales_the_shorter_side_and_crops_the_centre(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255                        # the centre 20x20 square is white
    Image.fromarray(image).save(tmp_path / "wide.png")
    out = data.read_image(str(tmp_path / "wide.png"), recipe())
    assert out.shape == (14, 14, 3) and out.dtype == np.uint8
    assert out[:, 1:13].min() == 255                 # the square, scaled 20 to 14
    assert out[:, 0].max() < 255                     # its edge filtered with the black beside it,
                                                     # as scaling the whole image then cropping does


def test_jpeg_draft_mode_decodes_at_reduced_size_with_the_same_picture(tmp_path):
    big = np.kron(picture(1, 0, (16, 16)), np.ones((8, 8, 1), np.uint8))   # 128 x 128
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    fast = data.read_image(str(tmp_path / "big.jpg"), recipe())
    slow = data.read_image(str(tmp_path / "big.jpg"), recipe(draft=False))
    assert fast.shape == slow.shape == (14, 14, 3)
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 8


def test_greyscale_networks_read_one_channel(tmp_path):
    make_folder(tmp_path, classes=2)
    train, _ = data.open_folders(tmp_path, recipe(channels=1))
    assert data.read_image(train.samples[0][0], recipe(channels=1)).shape == (14, 14, 1)


def test_networks_with_more_channels_read_arrays(tmp_path):
    make_folder(tmp_path, classes=2, suffix=".npy", channels=5)
    train, _ = data.open_folders(tmp_path, recipe(channels=5))
    out = data.read_image(train.samples[0][0], recipe(channels=5))
    assert out.shape == (14, 14, 5) and out.dtype == np.float32
    with pytest.raises(NetError, match="shape \\(5, 16, 16\\); the network reads 4 x H x W"):
        data.open_folders(tmp_path, recipe(channels=4))


def test_a_corrupt_image_is_a_problem_not_a_crash(tmp_path):
    make_folder(tmp_path, classes=2)
    (tmp_path / "train" / "class0" / "zz.png").write_bytes(b"\x89PNG not really")
    train, _ = data.open_folders(tmp_path, recipe())
    stats = data.load_stats(train, recipe(), [tmp_path], 0, data.ProblemLog())
    dataset = data.TrainSet(train, recipe(), stats, seed=0)
    index = [p for p, _ in train.samples].index(str(tmp_path / "train" / "class0" / "zz.png"))
    assert isinstance(dataset[(1, index)], data.Problem)
    batch = data.collate([dataset[(1, index)], dataset[(1, 0)]])
    assert len(batch.y) == 1 and len(batch.problems) == 1
    log = data.ProblemLog()
    log.note(batch.problems)
    log.note(batch.problems)
    assert log.take() == 2 and log.take() == 0


# ---------------------------------------------------------------- mean and PCA

def test_stats_are_the_mean_image_and_the_pixel_covariance(tmp_path):
    make_folder(tmp_path, classes=2, train=3)
    train, _ = data.open_folders(tmp_path, recipe())
    stats = data.compute_stats(train, recipe(), 0, data.ProblemLog())
    images = np.stack([data.read_image(p, recipe()) for p, _ in train.samples]).astype(np.float64)
    assert np.allclose(stats.mean_image, images.mean(0), atol=1e-4)
    pixels = images.reshape(-1, 3) / 255
    covariance = np.cov(pixels, rowvar=False, bias=True)
    assert np.allclose(stats.eigvecs @ np.diag(stats.eigvals) @ stats.eigvecs.T, covariance, atol=1e-9)
    assert list(stats.eigvals) == sorted(stats.eigvals, reverse=True)
    assert np.allclose(stats.mean("channel"), images.mean((0, 1, 2)), atol=1e-3)


def test_stats_are_cached_and_a_new_resize_recomputes_them(tmp_path, monkeypatch):
    make_folder(tmp_path, classes=2, train=2)
    train, _ = data.open_folders(tmp_path, recipe())
    first = data.load_stats(train, recipe(), [tmp_path], 0, data.ProblemLog())
    monkeypatch.setattr(data, "compute_stats", lambda *a: pytest.fail("recomputed"))
    again = data.load_stats(train, recipe(), [tmp_path], 0, data.ProblemLog())
    assert np.array_equal(first.mean_image, again.mean_image)
    monkeypatch.undo()
    other = data.load_stats(train, recipe(resize=16), [tmp_path], 0, data.ProblemLog())
    assert other.mean_image.shape == (16, 16, 3)
    assert len(list(tmp_path.glob(".netdsl-stats-*.npz"))) == 2


def test_stats_go_to_the_next_folder_when_the_data_is_read_only(tmp_path):
    make_folder(tmp_path / "d", classes=2, train=2)
    train, _ = data.open_folders(tmp_path / "d", recipe())
    (tmp_path / "run").mkdir()
    data.load_stats(train, recipe(), [tmp_path / "nowhere" / "x", tmp_path / "run"], 0, data.ProblemLog())
    assert len(list((tmp_path / "run").glob(".netdsl-stats-*.npz"))) == 1


# ---------------------------------------------------------------- lighting and crops

def _known_covariance():
    """A covariance built from a chosen rotation and eigenvalues."""
    q, _ = np.linalg.qr(np.array([[1.0, 2, 0], [0, 1, 3], [2, 0, 1]]))
    eigvals = np.array([0.04, 0.01, 0.002])
    return q @ np.diag(eigvals) @ q.T, q, eigvals


def test_lighting_shift_is_the_paper_formula_on_a_known_covariance():
    covariance, q, eigvals = _known_covariance()
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    alpha = np.array([0.3, -1.2, 0.5])
    vectors, values = vectors[:, order], values[order]
    assert np.allclose(values, eigvals)
    assert np.allclose(np.abs(np.sum(vectors * q, axis=0)), 1)   # the known axes, up to sign
    shift = data.lighting_shift(vectors, values, alpha)
    p = [vectors[:, i] for i in range(3)]            # [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, by hand
    by_hand = 255 * (p[0] * alpha[0] * eigvals[0] + p[1] * alpha[1] * eigvals[1]
                     + p[2] * alpha[2] * eigvals[2])
    assert np.allclose(shift, by_hand, atol=1e-4)


def test_training_images_get_one_shift_an_image_with_alpha_of_std_lighting(tmp_path):
    make_folder(tmp_path, classes=2, train=2)
    train, _ = data.open_folders(tmp_path, recipe())
    covariance, _, _ = _known_covariance()
    values, vectors = np.linalg.eigh(covariance)
    stats = data.Stats(np.full((14, 14, 3), 100, np.float32), values[::-1].copy(), vectors[:, ::-1].copy(), 4)
    lit = data.TrainSet(train, recipe(lighting=0.1), stats, seed=3)
    plain = data.TrainSet(train, recipe(lighting=0.0), stats, seed=3)
    alphas = []
    for epoch in range(150):
        for index in range(len(train.samples)):
            shift = (lit[(epoch, index)][0] - plain[(epoch, index)][0]).numpy()
            per_channel = shift[:, 0, 0]
            assert np.allclose(shift, per_channel[:, None, None], atol=1e-3)   # one shift an image
            alphas.append((stats.eigvecs.T @ per_channel) / 255 / stats.eigvals)
    assert np.allclose(np.std(alphas, axis=0), 0.1, rtol=0.12)
    assert np.allclose(np.mean(alphas, axis=0), 0.0, atol=0.015)


def test_training_crops_flips_and_mean_follow_the_seed(tmp_path):
    make_folder(tmp_path, classes=2, train=2)
    train, _ = data.open_folders(tmp_path, recipe())
    stats = data.load_stats(train, recipe(), [tmp_path], 0, data.ProblemLog())
    dataset = data.TrainSet(train, recipe(lighting=0.0), stats, seed=5)
    x, label = dataset[(2, 1)]
    assert torch.equal(x, dataset[(2, 1)][0]) and label == train.samples[1][1]
    image = data.read_image(train.samples[1][0], recipe()).astype(np.float32) - stats.mean_image
    crops = [image[top:top + 12, left:left + 12] for top in range(3) for left in range(3)]
    candidates = crops + [c[:, ::-1] for c in crops]
    assert any(np.allclose(x.numpy().transpose(1, 2, 0), c, atol=1e-4) for c in candidates)
    seen = {tuple(dataset[(e, 1)][0].flatten()[:8].tolist()) for e in range(12)}
    assert len(seen) > 3                             # the crop changes from epoch to epoch


def test_ten_crops_are_the_corners_centre_and_reflections_by_hand():
    r = recipe(resize=16)                            # 16x16 image, 12x12 crops
    x = np.arange(16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    views = data.views(x, r, tencrop=True).numpy().transpose(0, 2, 3, 1)
    by_hand = [x[0:12, 0:12], x[0:12, 4:16], x[4:16, 0:12], x[4:16, 4:16], x[2:14, 2:14]]
    by_hand += [c[:, ::-1] for c in by_hand]
    assert views.shape == (10, 12, 12, 3)
    for view, expected in zip(views, by_hand):
        assert np.array_equal(view, expected)
    assert np.array_equal(data.views(x, r, tencrop=False).numpy()[0].transpose(1, 2, 0), x[2:14, 2:14])


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    sampler = data.EpochSampler(10, seed=1)
    sampler.set_epoch(3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in first} == {3}
    assert list(sampler) == first
    sampler.set_epoch(4)
    assert list(sampler) != first


@pytest.mark.parametrize("batch, size, world", [(8, 20, 1), (8, 20, 2), (12, 20, 2), (8, 17, 2), (4, 3, 2)])
def test_an_epoch_begun_mid_way_takes_the_steps_the_whole_epoch_takes_next(batch, size, world):
    """As a run stopped after k steps resumes: set_epoch(e, start=k * batch)."""
    def steps(rank, start=0):
        sampler = data.EpochSampler(size, seed=3, batch=batch, world=World(rank, world))
        sampler.set_epoch(5, start)
        keys, share = list(sampler), batch // world
        assert sampler.steps_after(start) == -(-(size - start) // batch)
        return [keys[i:i + share] for i in range(0, len(keys), share)]

    for rank in range(world):
        whole = steps(rank)
        for taken in range(len(whole) + 1):
            assert steps(rank, min(taken * batch, size)) == whole[taken:]


def test_an_epoch_begun_mid_way_with_another_batch_takes_each_image_left_once():
    """A run stopped after a step of 8 and resumed at batch 12 on two processes."""
    def keys(sampler, start):
        sampler.set_epoch(2, start)
        return [key for key in sampler if key[1] is not None]

    whole = keys(data.EpochSampler(20, seed=1, batch=8), 0)
    rest = [key for rank in range(2)
            for key in keys(data.EpochSampler(20, seed=1, batch=12, world=World(rank, 2)), 8)]
    assert sorted(rest) == sorted(whole[8:])


def test_the_loader_gives_the_same_batches_with_and_without_workers(tmp_path):
    make_folder(tmp_path, classes=2, train=6)
    train, _ = data.open_folders(tmp_path, recipe())
    stats = data.load_stats(train, recipe(), [tmp_path], 0, data.ProblemLog())
    batches = []
    for workers in (0, 2):
        loader = data.train_loader(data.TrainSet(train, recipe(), stats, seed=0), 4, workers, seed=0)
        loader.sampler.set_epoch(2)
        batches.append([b.x for b in loader])
    assert all(torch.equal(a, b) for a, b in zip(*batches))


def test_recipe_follows_the_network(tmp_path):
    net = netdsl.parse_file(tiny_net(tmp_path, c=1, extra="flip = no\nmean = channel"))
    r = data.Recipe.of(net)
    assert (r.channels, r.resize, r.height, r.width, r.flip, r.mean) == (1, 14, 12, 12, False, "channel")
    assert r.suffixes == data.IMAGE_SUFFIXES and data.Recipe(4, 14, 12, 12).suffixes == (".npy",)
