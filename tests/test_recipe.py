"""The training recipe in the language: [train] schedule, gamma and scale, a layer's lr_mult and
decay_mult, as the checker reads them, `netdsl compile` shows them and `netdsl diff` lists them,
and `scale` as the pixels reach the network.

    pytest tests/test_recipe.py

(The update they make is held against a hand-written one in tests/test_runner_optim.py; the
broken files in tests/broken/ hold the errors.)
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import netdsl
from netdsl import NetError
from netdsl.runner import data
from netdsl.cli import main
from test_data import make_folder

NET = """
[data]
type  = data
shape = 3x12x12

[conv1]
type    = conv
filters = 4
size    = 3
{conv1}

[pool1]
type   = maxpool
size   = 2
stride = 2

[fc2]
type    = fc
outputs = 3

[prob]
type = softmax

[train]
{train}
"""


def net(train: str = "", conv1: str = "") -> netdsl.Net:
    return netdsl.parse_string(NET.format(train=train, conv1=conv1))


# ---------------------------------------------------------------- the checker

def test_multistep_keeps_its_milestones_and_gamma():
    config = net("epochs = 1000\nschedule = multistep(700, 900)\ngamma = 0.5").train
    assert (config.schedule, config.milestones, config.gamma) == ("multistep", (700, 900), 0.5)
    assert net("schedule = multistep(3)").train.gamma == 0.1     # gamma's default


@pytest.mark.parametrize("schedule, kind, gamma", [("plateau", "plateau", 0.1), ("step(0.9)", "step", 0.9),
                                                   ("none", "none", 0.1)])
def test_the_other_schedules_keep_their_own_factors(schedule, kind, gamma):
    config = net(f"schedule = {schedule}").train
    assert (config.schedule, config.milestones, config.gamma) == (kind, (), gamma)


@pytest.mark.parametrize("schedule, phrase", [
    ("multistep", "`multistep` takes the epochs after which lr is cut: `multistep(E1, E2, ...)`"),
    ("step", "`step` takes its factor: `step(g)`"),
    ("multstep(3)", "(did you mean `multistep`?)"),
    ("multistep(a)", "a milestone is an epoch, a whole number; got `a`"),
    ("multistep(0)", "expected an integer at least 1, got 0"),
])
def test_a_schedule_misspelt_or_half_written_is_refused_with_a_hint(schedule, phrase):
    with pytest.raises(NetError) as err:
        net(f"schedule = {schedule}")
    assert phrase in err.value.message


def test_a_layers_multipliers_and_their_defaults():
    layer = net(conv1="lr_mult = 1, 2\ndecay_mult = 0.5, 0").layer("conv1")
    assert (layer.options["lr_mult"], layer.options["decay_mult"]) == ((1.0, 2.0), (0.5, 0.0))
    fc2 = net().layer("fc2")
    assert (fc2.options["lr_mult"], fc2.options["decay_mult"]) == ((1.0, 1.0), (1.0, 0.0))


def test_the_multipliers_do_not_reach_the_generated_code():
    assert netdsl.generate_source(net(conv1="lr_mult = 0, 2")) == netdsl.generate_source(net())


# ---------------------------------------------------------------- compile and diff

def test_compile_prints_the_recipe_and_the_multipliers_that_are_not_the_defaults(tmp_path, capsys):
    path = tmp_path / "small.net"
    path.write_text(NET.format(conv1="lr_mult = 1, 2", train="epochs = 9\nschedule = multistep(3, 6)\n"
                                                                "scale = 0.00390625\nmean = none"))
    assert main(["compile", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    recipe = lines[lines.index("") + 1:]
    assert recipe == [
        "recipe: batch 128, epochs 9, optimizer sgd, lr 0.01, momentum 0.9, weight_decay 0.0005",
        "        schedule multistep(3, 6), gamma 0.1",
        "        resize 14, flip yes, lighting 0.1, mean none, scale 0.00390625, test center",
        "        precision fp32",
        "        [conv1] lr_mult 1, 2",
    ]
    assert main(["compile", str(path), "--json"]) == 0
    train = json.loads(capsys.readouterr().out)["train"]
    assert (train["schedule"], train["milestones"], train["gamma"], train["scale"]) == ("multistep", [3, 6], 0.1,
                                                                                        0.00390625)
    assert train["layers"] == {"conv1": {"lr_mult": [1, 2], "decay_mult": [1, 0]},
                               "fc2": {"lr_mult": [1, 1], "decay_mult": [1, 0]}}


def test_diff_lists_recipe_changes_apart_from_network_changes(tmp_path, capsys):
    a, b = tmp_path / "a.net", tmp_path / "b.net"
    a.write_text(NET.format(conv1="", train="lr = 0.01\npatience = 3"))
    b.write_text(NET.format(conv1="lr_mult = 1, 2", train="lr = 0.001\nschedule = multistep(30)\ngamma = 0.5"))
    assert main(["diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "[net] name a -> b",
        "total params 415 -> 415 (+0), FLOPs 22,600 -> 22,600 (+0)",
        "recipe: lr 0.01 -> 0.001",
        "recipe: schedule plateau -> multistep(30)",
        "recipe: + gamma = 0.5",
        "recipe: - patience = 3",
        "recipe: conv1 lr_mult 1, 1 -> 1, 2",
    ]


def test_diff_of_two_files_that_differ_only_in_their_recipes(tmp_path, capsys):
    a, b = tmp_path / "same.net", tmp_path / "other" / "same.net"
    b.parent.mkdir()
    a.write_text(NET.format(conv1="", train=""))
    b.write_text(NET.format(conv1="decay_mult = 1, 1", train="scale = 0.5"))
    assert main(["diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "the two networks are the same", "recipe: scale 1 -> 0.5", "recipe: conv1 decay_mult 1, 0 -> 1, 1"]


@pytest.mark.parametrize("name", ["mnist_scale_cnn", "mnist_scale_si"])
def test_the_mnist_scale_files_carry_kanazawas_recipe(name):
    the_net = netdsl.parse_file(f"nets/{name}.net")
    t = the_net.train
    assert (t.batch, t.epochs, t.optimizer, t.lr, t.momentum, t.weight_decay) == (128, 1000, "sgd", 0.01, 0.9, 0.0001)
    assert (t.schedule, t.milestones, t.gamma) == ("multistep", (700, 900), 0.1)   # 700, 200, 100 epochs
    assert (t.mean, t.scale, t.flip, t.lighting, t.resize) == ("none", 0.00390625, False, 0.0, 28)
    for layer in the_net.layers:
        if layer.type in ("conv", "siconv", "fc"):
            std = 0.1 if layer.type == "fc" else 0.01
            assert (layer.options["init"], layer.options["bias"]) == (("normal", 0.0, std), 0.0), layer.name
            assert (layer.options["lr_mult"], layer.options["decay_mult"]) == ((1, 2), (1, 0)), layer.name
        if layer.type == "siconv":
            assert layer.options["scales"] == (1, 0.63, 0.7937, 1.2599, 1.5874, 2)


def test_the_history_copies_keep_the_recipe_of_the_documented_runs():
    """docs/scale-invariance/history-15ep/reproduce.sh trains these: the recipe before Kanazawa's."""
    for name in ("mnist_scale_cnn", "mnist_scale_si"):
        old = netdsl.parse_file(f"docs/scale-invariance/history-15ep/nets/{name}.net")
        new = netdsl.parse_file(f"nets/{name}.net")
        assert old.name == new.name and old.params == new.params
        assert (old.train.epochs, old.train.lr, old.train.scale, old.train.mean) == (15, 0.001, 1.0, "channel")
        assert (new.train.epochs, new.train.lr, new.train.scale, new.train.mean) == (1000, 0.01, 0.00390625, "none")


# ---------------------------------------------------------------- scale reaches the pixels

def test_scale_multiplies_the_pixels_after_the_mean_is_subtracted(tmp_path):
    """Training and validation samples are (pixels - the training mean image) * scale, as
    numpy computes it here from the PNG files themselves."""
    make_folder(tmp_path, classes=2, train=3, val=2, size=(12, 12))
    the_net = net("resize = 12\nflip = no\nlighting = 0\nmean = image\nscale = 0.25")
    recipe = data.Recipe.of(the_net)
    train, val = data.open_folders(tmp_path, recipe)
    stats = data.compute_stats(train, recipe, 0, data.ProblemLog())

    def pixels(path):
        return np.asarray(Image.open(path).convert("RGB"), np.float64)

    mean = np.mean([pixels(path) for path, _ in train.samples], axis=0)
    sample, _ = data.TrainSet(train, recipe, stats, seed=0)[(1, 4)]
    expected = ((pixels(train.samples[4][0]) - mean) * 0.25).transpose(2, 0, 1)
    np.testing.assert_allclose(sample.numpy(), expected, atol=1e-4)
    views, _ = data.EvalSet(val, recipe, stats.mean("image"), tencrop=False)[1]
    expected = ((pixels(val.samples[1][0]) - mean) * 0.25).transpose(2, 0, 1)
    np.testing.assert_allclose(views[0].numpy(), expected, atol=1e-4)
