"""`netdsl filters`, `features` and `neighbours` (netdsl/inspect/), in process, on tiny generated data.

    pytest tests/test_inspect.py

The filter grid's pixels are the weights after the stated normalisation, cut back out of the
PNG; features equal the layer computed by hand from the checkpoint's weights on eval's centre
crop; the neighbours equal a brute-force search in numpy; every bad input is one line, exit 2.
"""
from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import netdsl
from netdsl import cli
from netdsl.inspect import filters, neighbours
from test_data import make_folder, tiny_net

KERNELS_NET = """
[net]
name = kernels
groups = 2
[data]
type = data
shape = {c}x12x12
[conv1]
type = conv
filters = 6
size = 3
neuron = relu
[conv2]
type = {conv2}
filters = 4
size = 5
{scales}
[pool]
type = maxpool
size = 2
stride = 2
[fc]
type = fc
outputs = 4
[prob]
type = softmax
"""


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- filters

def kernels_checkpoint(tmp_path, c=3, conv2="conv", seed=0):
    """A .net of two groups and a plain state dict of random weights for it."""
    scales = "scales = 0.8, 1" if conv2 == "siconv" else ""
    path = tmp_path / f"kernels{c}.net"
    path.write_text(KERNELS_NET.format(c=c, conv2=conv2, scales=scales))
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.05
             for k, v in netdsl.compile_net(path, backend="torch").state_dict().items()}
    torch.save(state, tmp_path / "weights.pt")
    return path, tmp_path / "weights.pt", state


def expected_pixels(weight: torch.Tensor) -> np.ndarray:
    """filters x kh x kw x channels uint8 by the documented rule: RGB, grey or the L2 norm over
    the input channels; one min and max over the layer; round(255 (v - min) / (max - min))."""
    w = weight.double().numpy()
    if w.shape[1] in (1, 3):
        values = w.transpose(0, 2, 3, 1)
    else:
        values = np.sqrt(np.einsum("fchw,fchw->fhw", w, w))[..., None]
    low, high = values.min(), values.max()
    return np.rint(255 * (values - low) / (high - low)).astype(np.uint8)


def cut_cells(png, count: int, groups: int, columns: int, zoom: int, kernel: int) -> np.ndarray:
    """Each filter's cell out of the grid, one pixel per zoom x zoom square, which must be uniform."""
    grid = np.asarray(Image.open(png))
    grid = grid[..., None] if grid.ndim == 2 else grid
    side = kernel * zoom
    per_block = count // groups
    rows = math.ceil(per_block / columns)
    block_height = rows * side + (rows - 1) * filters.CELL_GAP + filters.BLOCK_GAP
    cells = []
    for f in range(count):
        block, i = divmod(f, per_block)
        x = filters.MARGIN + (i % columns) * (side + filters.CELL_GAP)
        y = filters.MARGIN + block * block_height + (i // columns) * (side + filters.CELL_GAP)
        cell = grid[y:y + side, x:x + side]
        assert (cell == cell[::zoom, ::zoom].repeat(zoom, 0).repeat(zoom, 1)).all()   # nearest neighbour
        cells.append(cell[::zoom, ::zoom])
    return np.stack(cells)


@pytest.mark.parametrize("c, layer, conv2, mode", [
    (3, "conv1", "conv", "RGB"),       # 3-channel kernels as RGB
    (1, "conv1", "conv", "L"),         # 1-channel as grey
    (3, "conv2", "conv", "L"),         # 6 input channels: the norm map
    (2, "conv1", "conv", "L"),         # 2 input channels: the norm map too
    (3, "conv2", "siconv", "L"),       # an SI layer: its one conv
])
def test_the_grid_is_the_normalised_weights_a_block_a_group(tmp_path, capsys, c, layer, conv2, mode):
    net, weights, state = kernels_checkpoint(tmp_path, c, conv2)
    png = tmp_path / "grid.png"
    code, out, _ = run_cli(capsys, "filters", net, "--checkpoint", weights, "--layer", layer,
                           "--columns", 2, "--zoom", 3, "-o", png)
    assert code == 0 and str(png) in out
    assert Image.open(png).mode == mode
    weight = state[f"{layer}.weight"]
    count, _, kernel, _ = weight.shape
    cells = cut_cells(png, count, groups=2, columns=2, zoom=3, kernel=kernel)
    # block g holds filters g*count/2 ... (g+1)*count/2 - 1, each in its own cell
    np.testing.assert_array_equal(cells, expected_pixels(weight))


def test_the_default_layer_is_the_first_conv_and_the_zoom_fits_44_pixels(tmp_path, capsys):
    net, weights, state = kernels_checkpoint(tmp_path)
    png = tmp_path / "grid.png"
    assert run_cli(capsys, "filters", net, "--checkpoint", weights, "-o", png)[0] == 0
    zoom = math.ceil(44 / 3)
    cells = cut_cells(png, 6, groups=2, columns=16, zoom=zoom, kernel=3)
    np.testing.assert_array_equal(cells, expected_pixels(state["conv1.weight"]))
    assert Image.open(png).size == (2 * filters.MARGIN + 3 * 3 * zoom + 2 * filters.CELL_GAP,
                                    2 * filters.MARGIN + 2 * 3 * zoom + filters.BLOCK_GAP)


def test_a_layer_of_equal_weights_is_mid_grey(tmp_path):
    pixels, _, _ = filters.normalised(np.full((2, 3, 3, 1), 0.5))
    assert (pixels == 128).all()


# ---------------------------------------------------------------- a trained tiny run

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(net, data dir, checkpoint) of a one-epoch tiny run; its data has train/ and val/."""
    root = tmp_path_factory.mktemp("inspect")
    folder = make_folder(root / "data", classes=3, train=8, val=4)
    net = tiny_net(root)
    assert cli.main(["train", str(net), "--data", str(folder), "--out", str(root / "run"),
                     "--epochs", "1", "--workers", "0"]) == 0
    return net, folder, root / "run" / "best.pt"


def centre_crops(paths, mean: np.ndarray, scale: float) -> torch.Tensor:
    """The tiny net's input for each file, as read_image and EvalSet define it: the 16x16 picture
    scaled to 14x14 (bilinear), minus the mean image, the centre 12x12, times `scale`."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((14, 14), Image.Resampling.BILINEAR,
                                                            box=(0, 0, 16, 16)), np.float32)
        images.append(((pixels - mean)[1:13, 1:13] * scale).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(images))


def by_hand(x: torch.Tensor, state: dict, layer: str) -> torch.Tensor:
    """The tiny net's layers from its formula: conv1 3x3 stride 2 + relu, dropout 0.25 at test
    (times 0.75, the paper's rescale), fc."""
    conv1 = F.relu(F.conv2d(x, state["conv1.weight"], state["conv1.bias"], stride=2))
    drop = conv1 * 0.75
    return {"data": x, "conv1": conv1, "drop": drop,
            "fc": F.linear(drop.flatten(1), state["fc.weight"], state["fc.bias"])}[layer]


@pytest.mark.parametrize("layer", ["conv1", "drop", "fc", "data"])
def test_features_are_the_layer_computed_by_hand_row_by_listed_path(trained, tmp_path, capsys, layer):
    net, folder, checkpoint = trained
    out = tmp_path / "val.npy"
    code, printed, _ = run_cli(capsys, "features", net, "--checkpoint", checkpoint, "--data", folder,
                               "--split", "val", "--layer", layer, "-o", out, "--batch", 5, "--workers", 0)
    assert code == 0 and str(out) in printed
    features = np.load(out, mmap_mode="r")
    listing = json.loads((tmp_path / "val.json").read_text())
    labels = np.load(tmp_path / "val.labels.npy")
    files = sorted((folder / "val").rglob("*.png"), key=lambda p: (p.parent.name, int(p.stem)))
    assert listing["paths"] == [str(p.relative_to(folder)) for p in files]   # file order: class, then name
    assert listing["layer"] == layer and listing["split"] == "val" and len(features) == len(files) == 12
    np.testing.assert_array_equal(labels, [int(p.parent.name[-1]) for p in files])
    state = torch.load(checkpoint, weights_only=True)
    x = centre_crops([folder / p for p in listing["paths"]], state["mean"].numpy(), 1.0)
    expected = by_hand(x, state["model"], layer)
    assert features.dtype == np.float32 and features.shape == tuple(expected.shape)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-5, atol=1e-4)


def brute_force(queries: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q, t = queries.reshape(len(queries), -1).astype(np.float64), train.reshape(len(train), -1).astype(np.float64)
    distances = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]   # stable: ties to the lower index
    return order, np.take_along_axis(distances, order, axis=1)


@pytest.mark.parametrize("chunk", [None, 1, 3, 7])
def test_nearest_is_brute_force_over_memory_mapped_blocks(tmp_path, chunk):
    rng = np.random.default_rng()
    train = rng.normal(size=(23, 4, 2, 2)).astype(np.float32)
    train[[5, 17, 20]] = train[11]         # equal distances: the lower index first
    queries = rng.normal(size=(9, 4, 2, 2)).astype(np.float32)
    queries[2] = train[11] + 0.01
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "queries.npy", queries)
    indices, distances = neighbours.nearest(np.load(tmp_path / "queries.npy", mmap_mode="r"),
                                            np.load(tmp_path / "train.npy", mmap_mode="r"), 5, chunk)
    want_indices, want_distances = brute_force(queries, train, 5)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(distances, want_distances, rtol=1e-12)
    assert list(indices[2][:4]) == [5, 11, 17, 20]


def test_neighbours_are_the_brute_force_nearest_of_evenly_spaced_queries(trained, tmp_path, capsys):
    net, folder, checkpoint = trained
    png = tmp_path / "nn.png"
    code, printed, _ = run_cli(capsys, "neighbours", net, "--checkpoint", checkpoint, "--data", folder,
                               "--layer", "conv1", "--queries", 4, "--chunk", 5, "--workers", 0, "-o", png)
    assert code == 0
    found = [(int(i), float(d)) for i, d in re.findall(r"index (\d+) distance (\S+)", printed)]
    for split in ("train", "val"):   # no test/ here: the queries come from val/
        assert run_cli(capsys, "features", net, "--checkpoint", checkpoint, "--data", folder, "--split",
                       split, "--layer", "conv1", "--workers", 0, "-o", tmp_path / f"{split}.npy")[0] == 0
    val = np.load(tmp_path / "val.npy")
    picks = np.linspace(0, len(val) - 1, 4).round().astype(int)
    want_indices, want_distances = brute_force(val[picks], np.load(tmp_path / "train.npy"), 5)
    assert [i for i, _ in found] == want_indices.ravel().tolist()
    np.testing.assert_allclose([d for _, d in found], want_distances.ravel(), rtol=1e-5)
    queries = json.loads((tmp_path / "val.json").read_text())["paths"]
    for pick in picks:
        assert f"val {queries[pick]} " in printed
    cell = 96 // 12 * 12
    assert Image.open(png).size == (2 * neighbours.MARGIN + 6 * cell + neighbours.QUERY_GAP + 4 * neighbours.GAP,
                                    2 * neighbours.MARGIN + 4 * (cell + neighbours.CAPTION) + 3 * neighbours.ROW_GAP)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".netdsl-neighbours-")]   # features removed


# ---------------------------------------------------------------- bad input

def other_net(tmp_path):
    return tiny_net(tmp_path, classes=4, name="other.net")


def damaged(folder, tmp_path, how: str):
    """A copy of the data with train/ emptied (its class folders kept) or removed."""
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    if how == "remove":
        shutil.rmtree(copy / "train")
    for image in (copy / "train").rglob("*.png"):
        image.unlink()
    return copy


BAD = {   # case: (NET, CKPT, DIR from the trained run's, the layer, what the one line says)
    "missing checkpoint": (lambda net, folder, ckpt, tmp: (net, tmp / "none.pt", folder), None,
                           r"none\.pt: error: no (such )?checkpoint"),
    "another network's checkpoint": (lambda net, folder, ckpt, tmp: (other_net(tmp), ckpt, folder), None,
                                     "the checkpoint does not fit"),
    "unknown layer": (lambda net, folder, ckpt, tmp: (net, ckpt, folder), "conv9",
                      r"no layer `conv9` in tiny \(did you mean `conv1`\?\)"),
    "empty split": (lambda net, folder, ckpt, tmp: (net, ckpt, damaged(folder, tmp, "empty")), None,
                    "`train/` holds no"),
    "missing split": (lambda net, folder, ckpt, tmp: (net, ckpt, damaged(folder, tmp, "remove")), None,
                      "no `train/` folder"),
}


def command_line(command: str, net, checkpoint, folder, layer, tmp_path) -> list:
    if command == "filters":
        return ["filters", net, "--checkpoint", checkpoint, "--layer", layer or "conv1", "-o", tmp_path / "f.png"]
    if command == "features":
        return ["features", net, "--checkpoint", checkpoint, "--data", folder, "--split", "train",
                "--layer", layer or "fc", "--workers", 0, "-o", tmp_path / "f.npy"]
    return ["neighbours", net, "--checkpoint", checkpoint, "--data", folder, "--layer", layer or "fc",
            "--workers", 0, "-o", tmp_path / "f.png"]


@pytest.mark.parametrize("command, case", [(command, case) for command in ("filters", "features", "neighbours")
                                           for case in BAD if command != "filters" or "split" not in case])
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys, command, case):
    make_args, layer, message = BAD[case]
    net, checkpoint, folder = make_args(*trained, tmp_path)
    code, out, err = run_cli(capsys, *command_line(command, net, checkpoint, folder, layer, tmp_path))
    assert code == 2 and re.search(message, err) and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("f.*")) and not list(tmp_path.glob(".netdsl-*"))


def test_features_of_a_split_that_is_not_there(trained, tmp_path, capsys):
    net, folder, checkpoint = trained
    code, _, err = run_cli(capsys, "features", net, "--checkpoint", checkpoint, "--data", folder,
                           "--split", "test", "--layer", "fc", "-o", tmp_path / "f.npy")
    assert code == 2 and "no `test/` folder" in err and len(err.strip().splitlines()) == 1


def test_a_layer_without_kernels_is_refused_with_the_layers_that_have_them(trained, tmp_path, capsys):
    net, _, checkpoint = trained
    code, _, err = run_cli(capsys, "filters", net, "--checkpoint", checkpoint, "--layer", "fc",
                           "-o", tmp_path / "f.png")
    assert code == 2 and "`fc` is a fc layer, which has no kernels" in err and "conv1" in err


def test_an_undecodable_image_is_named_and_nothing_is_written(trained, tmp_path, capsys):
    """eval skips it; features cannot, since row i must be the i-th listed image."""
    net, folder, checkpoint = trained
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "val" / "class1" / "2.png").write_bytes(b"not a png")
    code, _, err = run_cli(capsys, "features", net, "--checkpoint", checkpoint, "--data", copy,
                           "--split", "val", "--layer", "fc", "--workers", 0, "-o", tmp_path / "f.npy")
    assert code == 2 and "class1/2.png: error: cannot decode it" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("f.*")) and not list(tmp_path.glob("*.tmp"))
