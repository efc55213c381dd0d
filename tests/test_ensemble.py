"""`netdsl eval NET --checkpoint A --checkpoint B ...`: an ensemble, its probabilities averaged
(netdsl/runner/ensemble.py), against a computation by hand on tiny generated data.

    pytest tests/test_ensemble.py

Two runs of the tiny network with two seeds give two genuinely different checkpoints; the hand
computation reads each image, subtracts each checkpoint's own mean, crops, runs each model and
averages the softmax (or sigmoid) over the crops, then over the models.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netdsl
from netdsl import cli
from netdsl.runner import data, ensemble
from conftest import one_line_error
from test_data import make_folder, tiny_net

RECIPE = data.Recipe(3, 14, 12, 12)     # tiny_net's input and resize


def train(net, folder, out, seed):
    assert netdsl.train(net, data=folder, out=out, workers=0, epochs=2, lr=0.002, seed=seed).status == 0


@pytest.fixture(scope="module", params=["softmax", "sigmoid"])
def runs(request, tmp_path_factory):
    """(net path, data folder, [two checkpoints of two seeds]) for each output type."""
    root = tmp_path_factory.mktemp(request.param)
    folder = make_folder(root / "data")
    net = tiny_net(root, output=request.param)
    for seed in (1, 2):
        train(net, folder, root / f"seed{seed}", seed)
    return net, folder, [root / "seed1" / "best.pt", root / "seed2" / "best.pt"]


def evaluate(net, folder, checkpoints, *flags) -> tuple[int, str]:
    argv = ["eval", str(net), "--data", str(folder), "--workers", "0", *map(str, flags)]
    for path in checkpoints:
        argv += ["--checkpoint", str(path)]
    return cli.main(argv)


def errors_printed(out: str) -> dict[str, str]:
    """label (a checkpoint, `ensemble`, or `single`) -> 'top-1 error X%, top-5 error Y%'."""
    found = {}
    for line in out.splitlines():
        if "top-1 error" in line:
            head, _, tail = line.partition("top-1 error")
            label = head.split()[0] if line.startswith("  ") else "single"
            found[label] = "top-1 error" + tail.split(" on ")[0]
    return found


# ---------------------------------------------------------------- by hand

def load(net_path, checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    model = netdsl.compile_net(netdsl.parse_file(net_path))
    model.load_state_dict(state["model"])
    return model.eval(), state


def crops(image: np.ndarray, tencrop: bool) -> list[np.ndarray]:
    """The centre 12x12 of a 14x14 image, or its four corners and centre and their reflections."""
    centre = image[1:13, 1:13]
    if not tencrop:
        return [centre]
    five = [image[0:12, 0:12], image[0:12, 2:14], image[2:14, 0:12], image[2:14, 2:14], centre]
    return five + [c[:, ::-1] for c in five]


@torch.no_grad()
def probabilities_by_hand(net_path, checkpoints, folder, tencrop, output) -> dict[str, torch.Tensor]:
    """val image path -> K x classes: each checkpoint's probabilities, averaged over the crops."""
    members = [load(net_path, path) for path in checkpoints]
    found = {}
    for path in sorted((folder / "val").rglob("*.png")):
        image = data.read_image(str(path), RECIPE).astype(np.float32)
        rows = []
        for model, state in members:
            x = torch.stack([torch.from_numpy(c.transpose(2, 0, 1).copy())
                             for c in crops(image - state["mean"].numpy(), tencrop)])
            logits = model(x)
            rows.append((F.softmax(logits, 1) if output == "softmax" else torch.sigmoid(logits)).mean(0))
        found[str(path)] = torch.stack(rows)
    return found


def errors_of(probs: dict[str, torch.Tensor], classes) -> str:
    top1 = top5 = 0
    for path, p in probs.items():
        label = classes.index(path.split("/")[-2])
        ranked = p.argsort(descending=True).tolist()
        top1 += ranked[0] != label
        top5 += label not in ranked[:5]
    return f"top-1 error {top1 / len(probs):.2%}, top-5 error {top5 / len(probs):.2%}"


@torch.no_grad()
def probabilities_of_the_runner(net_path, checkpoints, folder, tencrop, output) -> dict[str, torch.Tensor]:
    """The same through netdsl's loader and ensemble.member_probabilities: path -> K x classes."""
    members = [load(net_path, path) for path in checkpoints]
    means, groups = ensemble.distinct_means([state["mean"].numpy() for _, state in members])
    val = data.open_val(folder, RECIPE, members[0][1]["classes"])
    dataset = data.EnsembleEvalSet(val, RECIPE, means, tencrop)
    found = {}
    for index, (path, _) in enumerate(dataset.samples):
        views, _ = dataset[index]
        found[path] = ensemble.member_probabilities([m for m, _ in members], groups, views[None], output)[:, 0]
    return found


def loss_by_hand(probs: dict[str, torch.Tensor], classes, output) -> float:
    """Mean over the images: cross-entropy, or binary cross-entropy summed over the classes."""
    total = 0.0
    for path, p in probs.items():
        label = classes.index(path.split("/")[-2])
        if output == "softmax":
            total -= float(torch.log(p[label]))
        else:
            target = torch.zeros_like(p)
            target[label] = 1
            total -= float((target * torch.log(p) + (1 - target) * torch.log(1 - p)).sum())
    return total / len(probs)


def evaluation_pass(net_path, checkpoints, folder, tencrop, output):
    """ensemble.evaluate_ensemble over netdsl's loader, batches of 5 images."""
    members = [load(net_path, path) for path in checkpoints]
    means, groups = ensemble.distinct_means([state["mean"].numpy() for _, state in members])
    val = data.open_val(folder, RECIPE, members[0][1]["classes"])
    loader = data.eval_loader(data.EnsembleEvalSet(val, RECIPE, means, tencrop), 50 if tencrop else 5, 0)
    return ensemble.evaluate_ensemble([m for m, _ in members], groups, loader, output, torch.device("cpu"),
                                      data.ProblemLog())


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("crop", ["--center", "--tencrop"])
def test_an_ensemble_of_one_checkpoint_twice_has_its_errors_exactly(runs, tmp_path, capsys, crop):
    net, folder, (first, _) = runs
    copy = tmp_path / "copy.pt"
    shutil.copyfile(first, copy)
    assert evaluate(net, folder, [first], crop) == 0
    single = errors_printed(capsys.readouterr().out)["single"]
    for pair in ([first, first], [first, copy]):
        assert evaluate(net, folder, pair, crop) == 0
        printed = errors_printed(capsys.readouterr().out)
        assert printed["ensemble"] == single
        assert printed[str(pair[1])] == single


@pytest.mark.parametrize("tencrop", [False, True])
def test_the_ensemble_is_each_checkpoints_probabilities_averaged(runs, capsys, tencrop):
    net, folder, checkpoints = runs
    output = "softmax" if "softmax" in net.read_text() else "sigmoid"
    classes = torch.load(checkpoints[0], weights_only=True)["classes"]
    by_hand = probabilities_by_hand(net, checkpoints, folder, tencrop, output)
    ensemble_by_hand = {path: p.mean(0) for path, p in by_hand.items()}
    # two seeds: the members differ, and the ensemble differs from each
    for k in (0, 1):
        assert not torch.allclose(torch.stack([p[k] for p in by_hand.values()]),
                                  torch.stack(list(ensemble_by_hand.values())), atol=1e-4)

    runner = probabilities_of_the_runner(net, checkpoints, folder, tencrop, output)
    assert set(runner) == set(by_hand)
    for path in by_hand:
        assert torch.allclose(runner[path], by_hand[path], atol=1e-6)
        assert torch.allclose(runner[path].mean(0), ensemble_by_hand[path], atol=1e-6)

    # the loss of the one pass over the data is a smooth function of the averaged probabilities,
    # where a few images' errors could coincide with a member's
    members, together = evaluation_pass(net, checkpoints, folder, tencrop, output)
    assert together["loss"] == pytest.approx(loss_by_hand(ensemble_by_hand, classes, output), rel=1e-5)
    for k in (0, 1):
        member = {path: p[k] for path, p in by_hand.items()}
        assert members[k]["loss"] == pytest.approx(loss_by_hand(member, classes, output), rel=1e-5)

    assert evaluate(net, folder, checkpoints, "--tencrop" if tencrop else "--center") == 0
    out = capsys.readouterr().out
    printed = errors_printed(out)
    assert printed["ensemble"] == errors_of(ensemble_by_hand, classes)
    for k, path in enumerate(checkpoints):
        assert printed[str(path)] == errors_of({p: v[k] for p, v in by_hand.items()}, classes)
    assert f"2 checkpoints, their {output} probabilities averaged, on 12 images" in out
    assert ("ten crops" if tencrop else "centre crop") in out


def test_each_checkpoint_sees_the_images_minus_its_own_mean(runs, tmp_path, capsys):
    """A checkpoint whose training mean differs (here shifted by a random amount) is fed its own."""
    net, folder, (first, second) = runs
    state = torch.load(second, weights_only=True)
    state["mean"] = state["mean"] + float(np.random.default_rng().uniform(5, 40))
    shifted = tmp_path / "shifted.pt"
    torch.save(state, shifted)
    output = "softmax" if "softmax" in net.read_text() else "sigmoid"
    by_hand = probabilities_by_hand(net, [first, shifted], folder, True, output)
    runner = probabilities_of_the_runner(net, [first, shifted], folder, True, output)
    assert all(torch.allclose(runner[path], by_hand[path], atol=1e-6) for path in by_hand)

    assert evaluate(net, folder, [first, shifted], "--tencrop") == 0
    out = capsys.readouterr().out
    assert "2 different training means, each checkpoint its own" in out
    classes = state["classes"]
    assert errors_printed(out)["ensemble"] == errors_of({p: v.mean(0) for p, v in by_hand.items()}, classes)


def test_the_means_are_grouped_so_a_shared_one_is_subtracted_once():
    a, b = np.zeros((14, 14, 3), np.float32), np.ones((14, 14, 3), np.float32)
    means, groups = ensemble.distinct_means([a, b, a.copy(), np.zeros((1, 1, 3), np.float32)])
    assert len(means) == 3 and groups == [0, 1, 0, 2]


def test_a_missing_checkpoint_is_named(runs, tmp_path, capsys):
    net, folder, (first, _) = runs
    err = one_line_error(capsys, evaluate(net, folder, [first, tmp_path / "none.pt"]))
    assert err == f"{tmp_path / 'none.pt'}: error: no checkpoint there"


def test_a_checkpoint_of_another_network_is_named(runs, tmp_path, capsys):
    net, folder, (first, _) = runs
    other = tiny_net(tmp_path, name="other.net", output="softmax" if "softmax" in net.read_text() else "sigmoid")
    other.write_text(other.read_text().replace("filters = 4", "filters = 6"))
    train(other, folder, tmp_path / "other", 3)
    err = one_line_error(capsys, evaluate(net, folder, [first, tmp_path / "other" / "best.pt"]))
    assert err.startswith(f"{tmp_path / 'other' / 'best.pt'}: error: the checkpoint does not fit this network")


@pytest.mark.parametrize("alone", [True, False])
def test_a_checkpoint_whose_mean_image_is_another_size_is_named(runs, tmp_path, capsys, alone):
    """tiny_net scales images to 14x14, so a checkpoint's 10x10 mean image cannot be subtracted: one line
    naming the checkpoint, evaluated alone or in an ensemble."""
    net, folder, (first, second) = runs
    state = torch.load(first, weights_only=True)
    state["mean"] = torch.rand(10, 10, 3)
    odd = tmp_path / "odd.pt"
    torch.save(state, odd)
    err = one_line_error(capsys, evaluate(net, folder, [odd] if alone else [second, odd]))
    assert err == (f"{odd}: error: the checkpoint's mean image is 10x10, but this network scales images "
                   "to 14x14 (its `resize`)")


def test_a_checkpoint_of_other_classes_is_named(runs, tmp_path, capsys):
    net, folder, (first, second) = runs
    state = torch.load(second, weights_only=True)
    state["classes"] = ["class0", "class1", "other"]
    renamed = tmp_path / "renamed.pt"
    torch.save(state, renamed)
    err = one_line_error(capsys, evaluate(net, folder, [first, renamed]))
    assert err.startswith(f"{renamed}: error: its classes (class0, class1, other) are not those of {first}")


def test_an_empty_split_exits_2(runs, tmp_path, capsys):
    net, _, checkpoints = runs
    for k in range(3):
        (tmp_path / "empty" / "val" / f"class{k}").mkdir(parents=True)
    err = one_line_error(capsys, evaluate(net, tmp_path / "empty", checkpoints))
    assert "`val/` holds no" in err


def test_an_ensemble_with_scales_is_refused_and_two_networks_still_need_one_checkpoint_each(runs, capsys):
    net, folder, (first, second) = runs
    err = one_line_error(capsys, evaluate(net, folder, [first, second], "--scales", "0.5,1"))
    assert err == ("error: --scales scores one checkpoint a network, and 2 checkpoints of one network "
                   "are an ensemble, which is scored without --scales")
    code = cli.main(["eval", str(net), str(net), "--checkpoint", str(first), "--checkpoint", str(first),
                     "--checkpoint", str(second), "--data", str(folder), "--scales", "0.5,1"])
    assert "2 networks and 3 checkpoints: give one --checkpoint for each network" in one_line_error(capsys, code)


def test_the_python_api_evaluates_as_the_command_does(runs):
    """netdsl.evaluate, one checkpoint and the ensemble, against the probabilities computed by hand."""
    net, folder, checkpoints = runs
    output = "softmax" if "softmax" in net.read_text() else "sigmoid"
    classes = torch.load(checkpoints[0], weights_only=True)["classes"]
    by_hand = probabilities_by_hand(net, checkpoints, folder, False, output)
    together = netdsl.evaluate(net, checkpoints, folder, test="center", workers=0)
    assert f"top-1 error {together.result['top1_err']:.2%}, top-5 error {together.result['top5_err']:.2%}" \
        == errors_of({path: p.mean(0) for path, p in by_hand.items()}, classes)
    assert len(together.members) == 2 and together.record(str(net))["split"] == "val"
    alone = netdsl.evaluate(net, checkpoints[0], folder, test="center", workers=0)
    assert alone.members == [] and alone.result == together.members[0]
