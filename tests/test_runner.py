"""`netdsl train`, `eval` and `plot` end to end, in process, on tiny generated data.

    pytest tests/test_runner.py

The loss falls; a run resumed after epoch 2 ends with the uninterrupted run's weights; bad
data exits 2 with one clear line; ten-crop evaluation agrees with a computation by hand.
(The SIGKILL test is in tests/test_runner_kill.py, the optimizer's in test_runner_optim.py.)
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import netdsl
from netdsl import cli
from netdsl.datasets import synthetic
from netdsl.runner import data
from conftest import cli_train as train, one_line_error as _one_line_error
from test_data import SMALL_NET, make_folder, tiny_net


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


def test_the_loss_falls_and_the_run_folder_is_complete(tmp_path, folder, capsys):
    net = tiny_net(tmp_path)
    assert train(net, folder, tmp_path / "run", "--epochs", 6, "--lr", 0.002) == 0
    out = capsys.readouterr().out
    assert "epoch 6/6: train loss" in out and "val top-1" in out
    records = metrics(tmp_path / "run")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    for key in ("train_loss", "val_top1_err", "val_top5_err", "lr", "images_per_s",
                "data_wait_s", "skipped_images"):
        assert all(isinstance(r[key], (int, float)) for r in records), key
    assert records[-1]["train_loss"] < 0.8 * records[0]["train_loss"]
    assert records[-1]["val_top1_err"] < 0.5
    assert records[1]["lr"] == pytest.approx(records[0]["lr"] * 0.5)          # step(0.5)
    run = tmp_path / "run"
    assert (run / "tiny.net").read_text() == net.read_text()
    assert "def build()" in (run / "tiny.py").read_text()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 6 and state["net_text"] == net.read_text()
    assert set(state) >= {"model", "optimizer", "schedule", "rng", "classes", "mean"}
    best = torch.load(run / "best.pt", weights_only=True)
    best_epoch = min(records, key=lambda r: r["val_top1_err"])["epoch"]
    assert best["epoch"] == best_epoch


def test_resumed_after_epoch_2_ends_with_the_uninterrupted_weights(tmp_path, folder):
    net = tiny_net(tmp_path)
    assert train(net, folder, tmp_path / "whole", "--epochs", 3) == 0
    # the split run loads data with two worker processes: the batches must not change
    assert train(net, folder, tmp_path / "split", "--epochs", 2, "--workers", 2) == 0
    assert train(net, folder, tmp_path / "split", "--epochs", 3, "--workers", 2, "--resume") == 0
    whole, split = weights(tmp_path / "whole" / "checkpoint.pt"), weights(tmp_path / "split" / "checkpoint.pt")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    assert [r["epoch"] for r in metrics(tmp_path / "split")] == [1, 2, 3]
    assert metrics(tmp_path / "split")[2]["train_loss"] == metrics(tmp_path / "whole")[2]["train_loss"]


def test_a_finished_run_is_not_overwritten(tmp_path, folder, capsys):
    net = tiny_net(tmp_path)
    assert train(net, folder, tmp_path / "run", "--epochs", 1) == 0
    assert train(net, folder, tmp_path / "run", "--epochs", 1) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert train(net, folder, tmp_path / "other", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, folder, capsys):
    net = tiny_net(tmp_path)
    assert train(net, folder, tmp_path / "run", "--epochs", 1) == 0
    good = weights(tmp_path / "run" / "checkpoint.pt")
    capsys.readouterr()
    assert train(net, folder, tmp_path / "run", "--epochs", 3, "--resume", "--lr", 1e30) == 2
    err = capsys.readouterr().err
    assert "training loss became" in err and "(epoch 1) is the last good checkpoint" in err
    assert "Traceback" not in err
    kept = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert kept["epoch"] == 1 and all(torch.equal(good[k], kept["model"][k]) for k in good)



def test_class_count_mismatch_exits_2(tmp_path, folder, capsys):
    err = _one_line_error(capsys, train(tiny_net(tmp_path, classes=5), folder, tmp_path / "run"))
    assert "train/ has 3 classes but the network's output [prob] has 5" in err


def test_missing_val_exits_2(tmp_path, capsys):
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    err = _one_line_error(capsys, train(tiny_net(tmp_path), tmp_path / "data", tmp_path / "run"))
    assert "`train/` holds no" in err or "no `val/` folder" in err


def test_val_classes_that_train_lacks_exit_2(tmp_path, folder, capsys):
    (folder / "val" / "class0").rename(folder / "val" / "zebra")
    err = _one_line_error(capsys, train(tiny_net(tmp_path), folder, tmp_path / "run"))
    assert "val/ has classes that train/ lacks: zebra" in err


def test_an_image_smaller_than_the_crop_exits_2_even_past_the_first_of_its_class(tmp_path, folder, capsys):
    Image.new("RGB", (8, 30)).save(folder / "val" / "class1" / "zz_small.png")
    err = _one_line_error(capsys, train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 1))
    assert "zz_small.png: error: the image is 8x30, smaller than the network's 12x12 crop" in err


def test_a_corrupt_image_is_skipped_warned_and_counted(tmp_path, folder, capsys):
    (folder / "train" / "class2" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "val" / "class0" / "zz_truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing more")
    assert train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 2) == 0
    err = capsys.readouterr().err
    assert err.count("zz_broken.png: cannot decode it") == 1          # warned once, not each epoch
    assert "zz_truncated.jpg: cannot decode it" in err
    assert [r["skipped_images"] for r in metrics(tmp_path / "run")] == [2, 2]


def test_a_bad_flag_exits_2(tmp_path, folder, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 0)
    assert exit_.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_schedule_flag_stages_a_shorter_run_as_the_file_would(tmp_path, folder):
    # tiny.net says step(0.5); the flag replaces it, with the file's checks, for this run only
    net = tiny_net(tmp_path)
    assert train(net, folder, tmp_path / "run", "--epochs", 4, "--lr", 0.002,
                 "--schedule", "multistep(1, 3)") == 0
    lrs = [r["lr"] for r in metrics(tmp_path / "run")]
    assert lrs == pytest.approx([0.002, 0.0002, 0.0002, 0.00002])      # gamma 0.1 after epochs 1 and 3
    config = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]
    assert (config["schedule"], list(config["milestones"])) == ("multistep", [1, 3])


@pytest.mark.parametrize("schedule, phrase", [
    ("multistep(3, 2)", "milestones must increase: 2 comes after 3"),
    ("multistep(9)", "--schedule: milestone 9 comes after the last epoch (2)"),
    ("stepp(0.5)", "did you mean `step`?"),
])
def test_a_bad_schedule_flag_exits_2_and_writes_nothing(tmp_path, folder, capsys, schedule, phrase):
    try:
        code = train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 2, "--schedule", schedule)
    except SystemExit as exit_:      # argparse's own refusal
        code = exit_.code
    err = _one_line_error(capsys, code)
    assert phrase in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_epochs_that_end_before_the_files_milestones_are_warned_of(tmp_path, folder, capsys):
    net = tiny_net(tmp_path)
    net.write_text(net.read_text().replace("epochs = 3", "epochs = 6").replace("step(0.5)", "multistep(5)"))
    assert train(net, folder, tmp_path / "run", "--epochs", 2) == 0
    assert "2 epochs end before the schedule's milestone 5" in capsys.readouterr().err
    assert [r["lr"] for r in metrics(tmp_path / "run")][0] == [r["lr"] for r in metrics(tmp_path / "run")][1]


def test_a_device_this_machine_lacks_exits_2_before_anything_is_written(tmp_path, folder, capsys):
    # cuda:99: no machine has it, with or without a GPU
    err = _one_line_error(capsys, train(tiny_net(tmp_path), folder, tmp_path / "run", "--devices", "cuda:99"))
    assert err.startswith("error: --devices cuda:99: this machine has ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "eval"])
def test_the_triton_backend_on_the_cpu_without_the_interpreter_exits_2(tmp_path, folder, capsys, monkeypatch,
                                                                      command):
    """Its kernels run on CUDA, or in Triton's interpreter (on for the tests, so turned off here)."""
    from triton import knobs

    monkeypatch.setattr(knobs.runtime, "interpret", False)
    flags = ["--devices", "cpu", "--backend", "triton"]
    if command == "train":
        code = train(tiny_net(tmp_path), folder, tmp_path / "run", *flags)
    else:
        code = cli.main(["eval", str(tiny_net(tmp_path)), "--checkpoint", str(tmp_path / "none.pt"),
                         "--data", str(folder), *flags])
    assert "--backend torch (or auto), or set TRITON_INTERPRET=1" in _one_line_error(capsys, code)
    assert not (tmp_path / "run").exists()


def test_sigmoid_output_trains_with_binary_cross_entropy(tmp_path, folder):
    net = tiny_net(tmp_path, output="sigmoid")
    assert train(net, folder, tmp_path / "run", "--epochs", 2) == 0
    assert metrics(tmp_path / "run")[0]["train_loss"] == pytest.approx(3 * np.log(2), rel=0.1)


def test_eval_with_ten_crops_agrees_with_a_computation_by_hand(tmp_path, folder, capsys):
    net_path = tiny_net(tmp_path, extra="test = tencrop")
    assert train(net_path, folder, tmp_path / "run", "--epochs", 2, "--lr", 0.002) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(net_path), "--checkpoint", str(tmp_path / "run" / "best.pt"),
                     "--data", str(folder), "--tencrop", "--workers", "0"]) == 0
    printed = capsys.readouterr().out

    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    model = netdsl.compile_net(netdsl.parse_file(net_path))
    model.load_state_dict(state["model"])
    model.eval()
    mean = state["mean"].numpy()
    top1 = top5 = 0
    files = sorted((folder / "val").rglob("*.png"))
    for path in files:
        label = state["classes"].index(path.parent.name)
        image = data.read_image(str(path), data.Recipe(3, 14, 12, 12)).astype(np.float32) - mean
        corners = [image[0:12, 0:12], image[0:12, 2:14], image[2:14, 0:12], image[2:14, 2:14],
                   image[1:13, 1:13]]
        crops = corners + [c[:, ::-1] for c in corners]
        with torch.no_grad():
            probs = [F.softmax(model(torch.from_numpy(c.transpose(2, 0, 1).copy())[None]), 1)[0]
                     for c in crops]
        average = torch.stack(probs).mean(0)
        ranked = average.argsort(descending=True).tolist()
        top1 += ranked[0] != label
        top5 += label not in ranked[:5]
    assert f"top-1 error {top1 / len(files):.2%}, top-5 error {top5 / len(files):.2%}" in printed
    assert "ten crops" in printed


def test_eval_refuses_a_checkpoint_of_another_network(tmp_path, folder, capsys):
    assert train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 1) == 0
    other = tiny_net(tmp_path, extra="", name="other.net")
    other.write_text(other.read_text().replace("filters = 4", "filters = 6"))
    capsys.readouterr()
    code = cli.main(["eval", str(other), "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                     "--data", str(folder), "--workers", "0"])
    assert "does not fit this network" in _one_line_error(capsys, code)


def test_builtin_data_is_learnt_well_above_chance(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    net = tmp_path / "small.net"
    net.write_text(SMALL_NET)
    assert train(net, None, tmp_path / "run", "--epochs", 6) == 0
    assert "built-in shapes" in capsys.readouterr().out
    assert min(r["val_top1_err"] for r in metrics(tmp_path / "run")) < 0.7   # chance: 0.9


def test_builtin_data_runs_on_its_own_budget_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    net = tiny_net(tmp_path)
    net.write_text(net.read_text().replace("epochs = 3", "epochs = 90").replace("batch = 8", "batch = 128"))
    assert train(net, None, tmp_path / "run") == 0
    printed = capsys.readouterr().out
    assert (f"epochs {synthetic.EPOCHS} (the file says 90), batch {synthetic.BATCH} (the file says 128)"
            in printed)
    assert len(metrics(tmp_path / "run")) == synthetic.EPOCHS
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["batch"] == synthetic.BATCH


def test_flags_win_over_the_builtin_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    assert train(tiny_net(tmp_path), None, tmp_path / "run", "--epochs", 2, "--batch", 4) == 0
    assert "the file says" not in capsys.readouterr().out
    assert len(metrics(tmp_path / "run")) == 2
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["batch"] == 4


def test_plot_draws_the_curves_or_says_how_to_get_matplotlib(tmp_path, folder, capsys):
    assert train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 2) == 0
    capsys.readouterr()
    code = cli.main(["plot", str(tmp_path / "run")])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install 'netdsl[plot]'" in _one_line_error(capsys, code)
    else:
        assert code == 0 and (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert cli.main(["plot", str(tmp_path)]) == 2


@pytest.mark.parametrize("channels", [1, 4])
def test_greyscale_and_many_channel_networks_train_on_builtin_data(tmp_path, monkeypatch, channels):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    assert train(tiny_net(tmp_path, c=channels), None, tmp_path / "run", "--epochs", 1) == 0
    suffix = "*.png" if channels == 1 else "*.npy"
    drawn = 3 * (synthetic.TRAIN_PER_CLASS + synthetic.VAL_PER_CLASS)
    assert len(list((tmp_path / "cache" / "data").rglob(suffix))) == drawn


def test_a_run_on_two_devices_resumes_on_one(tmp_path):
    folder = make_folder(tmp_path / "data", classes=4)
    net = tiny_net(tmp_path, classes=4)
    # no dropout: each group draws its own mask, so the split run's masks are not the fused run's
    net.write_text(net.read_text().replace("[net]", "[net]\ngroups = 2")
                   .replace("[drop]\ntype = dropout\np = 0.25\n", ""))
    assert train(net, folder, tmp_path / "whole", "--epochs", 2) == 0
    assert train(net, folder, tmp_path / "split", "--epochs", 1, "--devices", "cpu,cpu") == 0
    assert train(net, folder, tmp_path / "split", "--epochs", 2, "--resume") == 0
    whole, split = weights(tmp_path / "whole" / "checkpoint.pt"), weights(tmp_path / "split" / "checkpoint.pt")
    assert all(torch.allclose(whole[k], split[k], atol=1e-6) for k in whole)


def test_a_damaged_checkpoint_is_named_not_a_traceback(tmp_path, folder, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    err = _one_line_error(capsys, train(tiny_net(tmp_path), folder, tmp_path / "run", "--resume"))
    assert "checkpoint.pt: error: cannot read it as a checkpoint" in err
