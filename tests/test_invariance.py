"""The invariance score on a hand-made network whose answer is derived by hand, and the command.

    pytest tests/test_invariance.py

The images: 200 squares of side 8, centred on a 16 x 16 canvas, of brightness b = 1..200.
At a 1% global firing rate each unit fires on k = 2 images, the two brightest (b = 200, 199),
so its threshold is its response to b = 198. The network's units, the scales 0.5, 0.75, 1,
1.25 (the square then has side 4, 6, 8, 10):

- peak (conv 1x1, weight 1; a channel's unit is its maximum over positions): the square's
  brightness b. Every rescaled square keeps pixels wholly inside it, at b, so the brightest
  two still fire at every scale: L = 1, score L / G = 1 / 0.01 = 100. Invariant.
- mean (fc, the pixel sum / 64): b * side^2 / 64 = b/4, 9b/16, b, 25b/16. It fires at 1
  and 1.25 only (b/4 and 9b/16 fall below 198): L = 2/4, score 50.
- centre_surround (fc, (sum inside the 8 x 8 square - sum outside it) / 64): b at scale 1
  only; smaller, the inside loses brightness; larger, the outside gains it (at 1.25 the
  ring holds 36 of the 100 lit pixels: (64 - 36) b / 64 < 198). L = 1/4, score 25. Tied
  to one scale.
- a unit with zero weights is 0 on every image: no threshold gives it a 1% firing rate,
  so it has no score (NaN) and stays out of its layer's mean.
"""
import math

import numpy as np
import pytest
import torch

import netdsl
from netdsl import NetError
from netdsl.scale_invariance import invariance
from netdsl.cli import main

SCALES = (0.5, 0.75, 1.0, 1.25)
NET = """
[data]
type  = data
shape = 1x16x16

[peak]
type    = conv
filters = 2
size    = 1

[feature]
type    = fc
outputs = 3

[out]
type    = fc
outputs = 3

[prob]
type = softmax
"""


def squares() -> np.ndarray:
    images = np.zeros((200, 1, 16, 16), np.float32)
    images[:, :, 4:12, 4:12] = np.arange(1, 201, dtype=np.float32)[:, None, None, None]
    return images


def hand_made(tmp_path):
    path = tmp_path / "squares.net"
    path.write_text(NET)
    net = netdsl.parse_file(path)
    model = netdsl.compile_net(net, backend="torch")
    inside = torch.zeros(16, 16)
    inside[4:12, 4:12] = 1
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.peak.weight[0] = 1                             # channel 1 stays 0: dead
        model.feature.weight[0, :256] = 1 / 64               # mean, over channel 0's pixels
        model.feature.weight[1, :256] = (2 * inside - 1).flatten() / 64   # centre - surround
        model.out.weight.copy_(torch.eye(3))                 # out repeats feature
    return net, model


def test_scores_match_the_hand_derived_values(tmp_path):
    net, model = hand_made(tmp_path)
    scores = invariance.unit_scores(model, net, squares(), SCALES)
    assert list(scores) == ["peak", "feature", "out"]
    np.testing.assert_allclose(scores["peak"], [100, math.nan])
    np.testing.assert_allclose(scores["feature"], [50, 25, math.nan])
    np.testing.assert_allclose(scores["out"], [50, 25, math.nan])
    assert invariance.invariance_scores(model, net, squares(), SCALES) == {
        "peak": 100.0, "feature": 37.5, "out": 37.5}
    assert invariance.invariance_scores(model, net, squares(), SCALES, top=0.5)["feature"] == 50.0


def _inputs_seen(monkeypatch, model, net):
    """Scores of squares + 50 at scales 0.5 and 1 with mean 50, and the two inputs the network
    was fed: the natural images and the shrunk ones."""
    seen = []
    call = invariance.LayerTaps.__call__
    monkeypatch.setattr(invariance.LayerTaps, "__call__", lambda taps, x: seen.append(x) or call(taps, x))
    scores = invariance.unit_scores(model, net, squares() + 50, (0.5, 1.0), mean=50.0)
    return scores, seen[0], seen[1]


def test_mean_is_subtracted_after_rescaling(tmp_path, monkeypatch):
    """The network sees rescale(raw) - mean, as it saw raw - mean in training: a shrunk
    image's new border is background (0) minus the mean."""
    net, model = hand_made(tmp_path)
    scores, natural, shrunk = _inputs_seen(monkeypatch, model, net)
    assert scores["peak"][0] == 100
    assert natural.min() == 0 and shrunk[:, :, 0, 0].eq(-50).all()


def test_the_network_sees_its_train_scale_times_the_pixels_minus_the_mean(tmp_path, monkeypatch):
    """[train] scale multiplies after the mean is subtracted, as in training (data.py)."""
    (tmp_path / "squares.net").write_text(NET + "\n[train]\nscale = 0.5\n")
    net = netdsl.parse_file(tmp_path / "squares.net")
    _, model = hand_made(tmp_path)
    scores, natural, shrunk = _inputs_seen(monkeypatch, model, net)
    assert scores["peak"][0] == 100
    assert natural.max() == 100 and shrunk[:, :, 0, 0].eq(-25).all()   # (200 + 50 - 50) / 2, (0 - 50) / 2


def test_thresholds_leave_exactly_k_inputs_above():
    responses = np.random.default_rng(0).normal(size=(1000, 7))
    t = invariance.thresholds(responses)
    assert ((responses > t).sum(axis=0) == 10).all()


def test_taps_give_the_generated_forward_outputs():
    net = netdsl.parse_file("nets/mnist_scale_si.net")
    model = netdsl.compile_net(net, backend="torch")
    x = torch.rand(2, 1, 28, 28) * 255
    taps = invariance.LayerTaps(model, net)(x)
    assert list(taps) == ["conv1", "conv2", "fc3", "fc4"]
    assert [tuple(t.shape) for t in taps.values()] == [(2, 36), (2, 64), (2, 150), (2, 10)]
    assert torch.equal(taps["fc4"], model(x))


def test_refuses_images_of_the_wrong_size_and_too_few(tmp_path):
    net, model = hand_made(tmp_path)
    with pytest.raises(NetError, match="takes N x 1 x 16 x 16 images"):
        invariance.unit_scores(model, net, np.zeros((200, 1, 28, 28)), SCALES)
    with pytest.raises(NetError, match="too few"):
        invariance.unit_scores(model, net, squares()[:1], SCALES)


def data_folder(root):
    """squares() as test/<class>/<n>.png, class = b's parity (two classes, any will do)."""
    from PIL import Image

    for b, image in enumerate(squares()[:, 0], start=1):
        folder = root / "test" / str(b % 2)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8), "L").save(folder / f"{b:03d}.png")
    return root


def test_command_prints_two_networks_side_by_side(tmp_path, capsys):
    net, model = hand_made(tmp_path)
    runner = tmp_path / "runner.pt"
    torch.save({"model": model.state_dict(), "mean": torch.zeros(1, 1, 1)}, runner)
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    data = data_folder(tmp_path / "data")
    argv = ["invariance", net.path, net.path, "--checkpoint", str(runner), "--checkpoint", str(plain),
            "--data", str(data), "--scales", "0.5,0.75,1,1.25"]
    # the plain state dict carries no mean: the network's `mean` (image) comes from train/
    assert main(argv) == 2
    assert "no `train/` folder" in capsys.readouterr().err
    (data / "train").symlink_to(data / "test")
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["layer", "squares", "(units", "scored)", "squares", "(units", "scored)"]
    assert lines[2].split() == ["peak", "100.0", "(1/2)", "100.0", "(1/2)"]
    assert lines[3].split() == ["feature", "37.5", "(2/3)", "37.5", "(2/3)"]


def test_command_draws_figure_5(tmp_path, capsys):
    net, model = hand_made(tmp_path)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    data = data_folder(tmp_path / "data")
    out = tmp_path / "figure5.png"
    assert main(["invariance", net.path, "--checkpoint", str(tmp_path / "w.pt"), "--data", str(data),
                 "--scales", "0.5,1", "--out", str(out)]) == 2   # no train/ for the mean
    (data / "train").symlink_to(data / "test")
    assert main(["invariance", net.path, "--checkpoint", str(tmp_path / "w.pt"), "--data", str(data),
                 "--scales", "0.5,1", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)
    with pytest.raises(NetError, match=r"pip install netdsl\[plot\]"):
        invariance.plot([("peak", [(1.0, 1, 1)])], ["a"], tmp_path / "x.png", SCALES)


def test_command_refuses_mismatched_checkpoints(tmp_path, capsys):
    net, model = hand_made(tmp_path)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert main(["invariance", net.path, net.path, "--checkpoint", str(tmp_path / "w.pt"),
                 "--data", str(tmp_path)]) == 2
    assert "2 networks but 1 --checkpoint" in capsys.readouterr().err
    assert main(["invariance", "nets/mnist_scale_cnn.net", "--checkpoint", str(tmp_path / "w.pt"),
                 "--data", str(tmp_path)]) == 2
    assert "the checkpoint does not fit mnist_scale_cnn" in capsys.readouterr().err
