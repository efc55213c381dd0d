"""`netdsl data prepare`: shorter side to --size, centre square, JPEG, same relative paths.

    pytest tests/test_data_prepare.py
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from netdsl import cli


def _source(root):
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = (250, 250, 250)                 # the centre square is white
    (root / "train" / "a").mkdir(parents=True)
    (root / "val" / "a").mkdir(parents=True)
    Image.fromarray(wide).save(root / "train" / "a" / "wide.JPEG", quality=95)
    Image.fromarray(wide.transpose(1, 0, 2)).convert("L").save(root / "train" / "a" / "tall.png")
    (root / "val" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a picture")
    (root / "val" / "a" / "notes.txt").write_text("not an image")
    return root


def test_prepare_scales_crops_and_mirrors_the_tree(tmp_path, capsys):
    src, dst = _source(tmp_path / "src"), tmp_path / "dst"
    assert cli.main(["data", "prepare", str(src), str(dst), "--size", "16", "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert "prepared 2 images" in out and "1 skipped as unreadable" in out
    assert "broken.jpg: cannot decode it" in err
    wide = Image.open(dst / "train" / "a" / "wide.jpg")
    tall = Image.open(dst / "train" / "a" / "tall.jpg")
    assert wide.size == tall.size == (16, 16) and wide.mode == tall.mode == "RGB"
    assert np.asarray(wide)[2:14, 2:14].min() > 230   # the centre, not the black sides
    assert not (dst / "val" / "a" / "broken.jpg").exists() and not list(dst.rglob("*.tmp"))

    assert cli.main(["data", "prepare", str(src), str(dst), "--size", "16"]) == 0
    assert "prepared 0 images" in capsys.readouterr().out    # the rest were there already


@pytest.mark.parametrize("argv, message", [
    (["data", "prepare", "{tmp}/nowhere", "{tmp}/dst"], "no such folder"),
    (["data", "prepare", "{tmp}/src", "{tmp}/src/inside"], "DST must lie outside SRC"),
    (["data", "prepare", "{tmp}/src", "{tmp}/dst", "--quality", "100"], "up to 95"),
])
def test_prepare_refuses_bad_arguments(tmp_path, capsys, argv, message):
    _source(tmp_path / "src")
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
