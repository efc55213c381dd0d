"""Error against scale, on a hand-set network whose answer is known in advance."""
import csv

import numpy as np
import torch
from PIL import Image

import netdsl
from netdsl.scale_invariance import scale_eval
from netdsl.datasets.mnist_scale import rescale

# One fc unit against a constant: class 1 ("large") when the image's total ink exceeds the
# ink of the blob at scale 0.6, class 0 otherwise.
NET = """
[data]
type = data
shape = 1x32x32
[ink]
type = fc
outputs = 2
[prob]
type = softmax
[train]
mean = none
"""


def blob(size=32, half=10):
    image = np.zeros((size, size), np.float32)
    image[size // 2 - half:size // 2 + half, size // 2 - half:size // 2 + half] = 200
    return image


def make_folder(root, factors):
    """A test split of blobs drawn at the given factors, every one labelled 'large' (class 1)."""
    rows = []
    for i, f in enumerate(factors):
        for label in ("0", "1"):
            (root / "test" / label).mkdir(parents=True, exist_ok=True)
        name = f"test/1/{i:03d}.png"
        Image.fromarray(rescale(blob(), f).round().clip(0, 255).astype(np.uint8)).save(root / name)
        rows.append({"file": name, "label": 1, "scale": f})
    with (root / "scales.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, ["file", "label", "scale"])
        writer.writeheader()
        writer.writerows(rows)


def test_error_against_scale_follows_the_known_threshold(tmp_path):
    rng = np.random.default_rng()
    make_folder(tmp_path, rng.uniform(0.3, 1.0, 12))
    net = netdsl.parse_string(NET)
    threshold = rescale(blob(), 0.6).sum()
    state = {"ink.weight": torch.stack([torch.zeros(1024), torch.ones(1024)]),
             "ink.bias": torch.tensor([0.0, -float(threshold)])}
    torch.save(state, tmp_path / "ink.pt")
    scales = (0.4, 0.5, 0.7, 0.9)
    results = scale_eval.error_by_scale([net], [str(tmp_path / "ink.pt")], tmp_path, "test", scales,
                                        limit=None, batch=5)
    # Each blob is shown at the fixed scale whatever it was drawn at: small ones all wrong.
    assert [top1 for top1, _ in results[net.name]] == [100.0, 100.0, 0.0, 0.0]
    assert all(top5 == 0.0 for _, top5 in results[net.name])


def test_the_networks_train_scale_multiplies_the_pixels(tmp_path):
    """With [train] scale = 0.25 the fc sees a quarter of the ink: the same answers with a
    quarter of the threshold."""
    make_folder(tmp_path, [0.35, 0.5, 0.8, 0.95])
    net = netdsl.parse_string(NET + "scale = 0.25\n")
    threshold = rescale(blob(), 0.6).sum() * 0.25
    torch.save({"ink.weight": torch.stack([torch.zeros(1024), torch.ones(1024)]),
                "ink.bias": torch.tensor([0.0, -float(threshold)])}, tmp_path / "ink.pt")
    results = scale_eval.error_by_scale([net], [str(tmp_path / "ink.pt")], tmp_path, "test", (0.4, 0.7),
                                        limit=None, batch=5)
    assert [top1 for top1, _ in results[net.name]] == [100.0, 0.0]


def test_at_scale_undoes_each_images_own_factor():
    image = blob()
    drawn = rescale(image, 0.5)
    shown = scale_eval.at_scale(drawn[None, None], np.array([0.5]), 0.5)[0, 0]
    assert np.abs(shown - drawn).max() < 1e-3
    assert abs(scale_eval.at_scale(drawn[None, None], np.array([0.5]), 1.0).sum() - image.sum()) / image.sum() < 0.05


def test_eval_command_prints_and_draws_error_against_scale(tmp_path, capsys):
    from netdsl.cli import main

    make_folder(tmp_path, [0.35, 0.8, 0.95])
    (tmp_path / "ink.net").write_text(NET)
    threshold = rescale(blob(), 0.6).sum()
    torch.save({"ink.weight": torch.stack([torch.zeros(1024), torch.ones(1024)]),
                "ink.bias": torch.tensor([0.0, -float(threshold)])}, tmp_path / "ink.pt")
    args = ["eval", str(tmp_path / "ink.net"), "--checkpoint", str(tmp_path / "ink.pt"), "--data", str(tmp_path),
            "--split", "test", "--scales", "0.4,0.9", "--out", str(tmp_path / "curve.png")]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["0.40", "100.00%"] and lines[3].split() == ["0.90", "0.00%"]
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert main(args[:2] + [args[1]] + args[2:]) == 2   # two networks, one checkpoint
    assert "give one --checkpoint for each network" in capsys.readouterr().err
