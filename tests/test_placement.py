"""Device placement (netdsl/devices/placement.py), on the CPU: devices=["cpu", "cpu"] runs the split path.

    pytest tests/test_placement.py

The split module must compute what the fused one computes (logits and every gradient, float32,
relative error under 1e-5, on fresh random weights and inputs each run; the seed is in the
failure message), copy exactly the chunks the `connect = all` edges need, and share the fused
module's state dict and, through optimizer_state, its optimizer state.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

import netdsl
from netdsl.devices.placement import SplitNet, Transfer, load_optimizer_state, optimizer_state

ALEXNET = Path(__file__).resolve().parent.parent / "nets" / "alexnet.net"

# Every way a layer can meet the groups: an SI layer reading data, LRN inside each group,
# a grouped SI layer, a connect=all SI layer reading two inputs (concatenated per group),
# a grouped fc over maps (a conv with the whole map as kernel), dropout, a connect=all fc
# and a grouped fc over flat input.
SI_NET = """
[net]
name   = si_small
groups = {groups}

[data]
type  = data
shape = 3x32x32

[si1]
type    = siconv
filters = 8
size    = 3
scales  = 0.75, 1, 1.5
neuron  = relu

[norm1]
type = lrn
size = 3

[pool1]
type   = maxpool
size   = 3
stride = 2

[si2]
type    = siconv
filters = 8
size    = 3
pad     = 1
scales  = 0.75, 1, 1.5
connect = group
neuron  = relu

[si3]
type    = siconv
input   = pool1, si2
filters = 8
size    = 3
pad     = 1
scales  = 0.63, 1, 1.59
neuron  = relu

[fc1]
type    = fc
outputs = 16
connect = group
neuron  = relu

[drop1]
type = dropout

[fc2]
type    = fc
outputs = 16
neuron  = tanh

[fc3]
type    = fc
outputs = 8
connect = group

[prob]
type = softmax
"""


def si_net(groups: int) -> netdsl.Net:
    return netdsl.parse_string(SI_NET.format(groups=groups), "si_small.net")


def fused_and_split(net: netdsl.Net, groups: int):
    """The fused module and a split placement with its weights, both in eval mode (no dropout)."""
    fused = netdsl.compile_net(net, backend="torch")
    split = netdsl.compile_net(net, backend="torch", devices=["cpu"] * groups)
    split.load_state_dict(fused.state_dict())
    return fused.eval(), split.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item() if b.norm() > 0 else (a - b).norm().item()


def split_grads(split: SplitNet) -> dict[str, torch.Tensor]:
    """The split module's gradients in the fused layout, by state-dict name."""
    return {f"{layer}.{kind}": torch.cat([getattr(part, kind).grad for part in shards.parts])
            for layer, shards in split.named_children() for kind in ("weight", "bias")}


def random_images(net: netdsl.Net, batch: int) -> torch.Tensor:
    """Raw RGB minus a mean: values of tens, the scale the paper's init was chosen for."""
    return torch.randn(batch, *net.input_shape) * 50


def check_same_function(net: netdsl.Net, groups: int, batch: int) -> SplitNet:
    seed = torch.seed()  # fresh weights and inputs each run; reported on failure
    fused, split = fused_and_split(net, groups)
    images = random_images(net, batch)
    weights = torch.randn(batch, net.classes)  # the loss: logits projected on random weights
    fused_logits, split_logits = fused(images), split(images)
    assert split_logits.shape == (batch, net.classes)
    assert relative_error(split_logits, fused_logits) < 1e-5, f"seed {seed}"
    (fused_logits * weights).sum().backward()
    (split_logits * weights).sum().backward()
    grads = split_grads(split)
    assert list(grads) == [name for name, _ in fused.named_parameters()]
    for name, param in fused.named_parameters():
        assert relative_error(grads[name], param.grad) < 1e-5, f"{name}, seed {seed}"
    return split


def expected_transfers(net: netdsl.Net, edges: list[str]) -> list[tuple[str, int, int]]:
    """Each connect=all layer: every group gets every other group's chunk; then the logits go to group 0."""
    groups = range(net.groups)
    into_layers = [(name, s, t) for name in edges for t in groups for s in groups if s != t]
    return into_layers + [(net.output.name, s, 0) for s in groups if s != 0]


def check_transfers(net: netdsl.Net, split: SplitNet, edges: list[str], batch: int) -> None:
    assert [(t.layer, t.source, t.target) for t in split.transfers] == expected_transfers(net, edges)
    assert [layer.name for layer in net.layers if layer.cross_bytes] == edges
    for name in edges:  # the bytes really sent per image are what the compile report says
        sent = sum(t.bytes for t in split.transfers if t.layer == name)
        assert sent == batch * net.layer(name).cross_bytes, name
    edge_bytes = sum(t.bytes for t in split.transfers if t.layer != net.output.name)
    assert edge_bytes == batch * net.cross_bytes


def test_alexnet_split_computes_the_fused_function():
    net = netdsl.parse_file(ALEXNET)
    split = check_same_function(net, groups=2, batch=2)
    check_transfers(net, split, ["conv3", "fc6", "fc7", "fc8"], batch=2)


@pytest.mark.parametrize("groups", [2, 4])
def test_si_net_split_computes_the_fused_function(groups):
    net = si_net(groups)
    split = check_same_function(net, groups, batch=3)
    check_transfers(net, split, ["si3", "fc2"], batch=3)


def test_split_state_dict_is_the_fused_one():
    net = netdsl.parse_file(ALEXNET)
    fused = netdsl.compile_net(net, backend="torch")
    split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"])
    fused_state, split_state = fused.state_dict(), split.state_dict()
    assert list(split_state) == list(fused_state)
    assert {k: v.shape for k, v in split_state.items()} == {k: v.shape for k, v in fused_state.items()}
    assert split_state["conv2.weight"].shape == (256, 48, 5, 5)  # nn.Conv2d(96, 256, 5, groups=2)
    assert split_state["fc6.weight"].shape == (4096, 9216)       # nn.Linear(9216, 4096)
    assert list(split_state._metadata) == list(fused_state._metadata)


def saved(model) -> dict:
    """The model's state dict after a round trip through torch.save, as a checkpoint makes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer)


def test_checkpoints_move_between_placements():
    seed = torch.seed()
    net = si_net(2)
    split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"]).eval()
    fused = netdsl.compile_net(net, backend="torch").eval()  # other random weights until loaded
    images = random_images(net, 2)
    fused.load_state_dict(saved(split))
    assert relative_error(fused(images), split(images)) < 1e-5, f"seed {seed}"
    fused = netdsl.compile_net(net, backend="torch").eval()
    split.load_state_dict(saved(fused))
    assert relative_error(split(images), fused(images)) < 1e-5, f"seed {seed}"
    assert {k: v.device.type for k, v in split.state_dict().items()} == {k: "cpu" for k in fused.state_dict()}


def test_load_errors_name_the_fused_entries():
    split = netdsl.compile_net(si_net(2), backend="torch", devices=["cpu", "cpu"])
    state = split.state_dict()
    state["si2.weight"] = torch.zeros(8, 8, 3, 3)  # fused: [8, 4, 3, 3], grouped
    with pytest.raises(RuntimeError, match=r"size mismatch for si2\.weight"):
        split.load_state_dict(state)
    del state["si2.weight"]
    result = split.load_state_dict(state, strict=False)
    assert result.missing_keys == ["si2.weight"] and result.unexpected_keys == []


def test_one_device_is_the_fused_module():
    net = si_net(2)
    model = netdsl.compile_net(net, backend="torch", devices=["cpu"])
    assert not isinstance(model, SplitNet)
    assert model.si2.weight.shape == (8, 4, 3, 3) and model.si2.groups == 2


@pytest.mark.parametrize("devices", [["cpu"] * 3, ["cpu"] * 4])
def test_devices_neither_one_nor_one_per_group(devices):
    with pytest.raises(netdsl.NetError, match="one per group"):
        netdsl.compile_net(si_net(2), backend="torch", devices=devices)


def test_unknown_device():
    with pytest.raises(netdsl.NetError, match="unknown device `gpu0`"):
        netdsl.compile_net(si_net(2), backend="torch", devices=["gpu0", "cpu"])


def sgd(model) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def train_step(model, optimizer, images, targets) -> None:
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(images), targets).backward()
    optimizer.step()


@pytest.mark.parametrize("direction", ["split to fused", "fused to split"])
def test_optimizer_state_moves_between_placements(direction):
    """A step, a checkpoint, a resume on the other placement: the next step matches."""
    seed = torch.seed()
    net = si_net(2)
    first, second = fused_and_split(net, 2)
    if direction == "fused to split":
        first, second = second, first
    images, targets = random_images(net, 4), torch.randint(net.classes, (4,))
    first_optimizer, second_optimizer = sgd(first), sgd(second)
    train_step(first, first_optimizer, images, targets)  # momentum buffers now hold state
    second.load_state_dict(saved(first))
    load_optimizer_state(second, second_optimizer, optimizer_state(first, first_optimizer))
    train_step(first, first_optimizer, images, targets)
    train_step(second, second_optimizer, images, targets)
    after, expected = second.state_dict(), first.state_dict()
    for name in expected:
        assert relative_error(after[name], expected[name]) < 1e-5, f"{name}, seed {seed}"


def test_optimizer_state_is_in_the_fused_layout():
    net = si_net(2)
    fused, split = fused_and_split(net, 2)
    optimizer = sgd(split)
    train_step(split, optimizer, random_images(net, 2), torch.randint(net.classes, (2,)))
    state = optimizer_state(split, optimizer)
    assert state["param_groups"][0]["params"] == list(fused.state_dict())
    assert {name: s["momentum_buffer"].shape for name, s in state["state"].items()} == \
        {name: p.shape for name, p in fused.named_parameters()}


def test_transfer_records_one_chunk():
    split = netdsl.compile_net(si_net(2), backend="torch", devices=["cpu", "cpu"])
    split(torch.zeros(1, 3, 32, 32))
    assert Transfer("fc2", 1, 0, 8 * 4) in split.transfers  # fc1's 8 outputs of group 1, float32
