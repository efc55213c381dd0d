"""`netdsl compile` and `netdsl diff` as a user runs them."""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

import netdsl
from netdsl.cli import main


def test_compile_prints_a_table_with_totals(capsys):
    assert main(["compile", "nets/alexnet.net"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "alexnet: 17 layers, 2 groups"
    assert lines[1].split() == ["layer", "type", "output", "params", "neurons", "FLOPs", "cross"]
    conv3 = next(line for line in lines if line.startswith("conv3 "))
    assert conv3.split() == ["conv3", "conv", "384x13x13", "885,120", "64,896", "299,040,768", "173,056"]
    totals = next(line for line in lines if line.startswith("total"))
    assert totals.split()[:3] == ["total", "60,965,224", "659,272"]
    assert lines[lines.index(totals) + 2].startswith("recipe: batch 128, epochs 90, optimizer sgd, lr 0.01")


def test_compile_writes_source_that_builds_the_same_module(tmp_path, capsys):
    out = tmp_path / "mnist.py"
    assert main(["compile", "nets/mnist_scale_si.net", "-o", str(out), "--backend", "torch"]) == 0
    capsys.readouterr()
    module = netdsl.load_source(out.read_text(), "written")
    model = module.build()
    reference = netdsl.compile_net("nets/mnist_scale_si.net")
    reference.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 28, 28) * 255
    assert torch.equal(model(x), reference(x))


def test_compile_refuses_an_unknown_backend_before_writing(tmp_path, capsys):
    out = tmp_path / "x.py"
    try:
        main(["compile", "nets/alexnet.net", "-o", str(out), "--backend", "jax"])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    assert not out.exists()


def test_compile_to_an_unwritable_place_is_a_user_error(tmp_path, capsys):
    assert main(["compile", "nets/alexnet.net", "-o", str(tmp_path / "no" / "such" / "dir.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: cannot write: No such file or directory" in err


def test_diff_shows_the_si_variant(capsys):
    assert main(["diff", "nets/alexnet.net", "nets/si_alexnet.net"]) == 0
    lines = capsys.readouterr().out.splitlines()
    changed = [line for line in lines if line.startswith("~ ")]
    assert [line.split()[1] for line in changed] == ["[conv1]", "[conv2]", "[conv3]", "[conv4]", "[conv5]"]
    assert all("type conv -> siconv; + scales = 0.63, 1, 1.59" in line for line in changed)
    assert lines[0] == "[net] name alexnet -> si_alexnet"
    assert lines[-1].startswith("total params 60,965,224 -> 60,965,224 (+0)")


def test_diff_lists_added_removed_and_changed_settings(tmp_path, capsys):
    text = Path("nets/mnist_scale_cnn.net").read_text()
    lr = netdsl.parse_file("nets/mnist_scale_cnn.net").train.lr
    changed = re.sub(r"\nlr( *)= .*\n", r"\nlr\1= 0.005\n", re.sub(r"outputs( *)= 150", r"outputs\1= 200", text))
    changed = changed.replace("[pool1]\ntype   = maxpool\nsize   = 2\nstride = 2\n",
                              "[pool1]\ntype   = maxpool\nsize   = 2\nstride = 2\n\n[drop1]\ntype = dropout\n")
    other = tmp_path / "other.net"
    other.write_text(changed)
    assert main(["diff", "nets/mnist_scale_cnn.net", str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "+ [drop1] dropout 36x11x11, 0 params" in lines
    assert any(line.startswith("~ [fc3] outputs 150 -> 200; output 150x1x1 -> 200x1x1; params +28,850")
               for line in lines)
    assert lines[-1] == f"recipe: lr {lr:g} -> 0.005"   # the recipe apart, after the network's totals
    assert lines[-2].startswith("total params")
    assert main(["diff", "nets/alexnet.net", "nets/alexnet.net"]) == 0
    assert capsys.readouterr().out.strip() == "the two networks are the same, and so are their recipes"


def test_the_wheel_carries_the_grammar_and_templates(tmp_path):
    root = Path(__file__).parents[1]
    # built from a copy of what the wheel is made of: setuptools reuses the checkout's build/, and
    # one left there by an older layout of netdsl/ would slip its modules into the wheel
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "netdsl", "codegen_templates"):
        if (root / name).is_dir():
            shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(root / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("netdsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(root).as_posix() for p in (root / "netdsl").rglob("*.py")}
    assert {name for name in names if name.endswith(".py")} == modules   # every wing, nothing else
    assert {"netdsl/language/netdsl.lark", "netdsl/importers/prototxt.lark"} <= names
    layer_templates = {p.relative_to(root).as_posix() for p in (root / "netdsl" / "layers").glob("*.j2")}
    assert layer_templates and layer_templates <= names
    templates = {p.relative_to(root / "codegen_templates").as_posix()
                 for pattern in ("*.j2", "*.py.in") for p in (root / "codegen_templates").rglob(pattern)}
    assert any(t.endswith(".py.in") for t in templates)
    assert {f"netdsl/codegen_templates/{t}" for t in templates} <= names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    result = subprocess.run(
        [sys.executable, "-m", "netdsl", "compile", str(root / "nets" / "alexnet.net"), "--json"],
        cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=300)
    assert result.returncode == 0, result.stderr
    assert '"params": 60965224' in result.stdout
    where = subprocess.run(
        [sys.executable, "-c", "from netdsl.codegen.resources import resource_dir as r; print(r('codegen_templates'))"],
        cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=300)
    assert where.stdout.split() == [str(site / "netdsl" / "codegen_templates")]


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
    # `netdsl compile ... | head -1`: the reader is gone before the table is written
    proc = subprocess.Popen([sys.executable, "-m", "netdsl", "compile", "nets/alexnet.net"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""
