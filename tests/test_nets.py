"""The seed networks give the papers' figures, through `netdsl compile --json`."""
import json
import math

import pytest

import netdsl
from netdsl.cli import main


def compile_json(path, capsys):
    assert main(["compile", path, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_alexnet_parameters_and_neurons_are_the_papers(capsys):
    report = compile_json("nets/alexnet.net", capsys)
    assert report["params"] == 60_965_224
    neurons = {layer["name"]: layer["neurons"] for layer in report["layers"]}
    # Figure 2's caption (its first figure, 253,440, is a known misprint for 55*55*96).
    paper = [290_400, 186_624, 64_896, 64_896, 43_264, 4_096, 4_096, 1_000]
    names = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert [neurons[name] for name in names] == paper
    assert report["neurons"] == sum(paper)
    assert report["layers"][0]["neurons"] == 150_528  # "the network's input is 150,528-dimensional"
    outputs = {layer["name"]: layer["output"] for layer in report["layers"]}
    assert outputs["conv1"] == [96, 55, 55] and outputs["pool5"] == [256, 6, 6]
    assert set(report) >= {"name", "groups", "layers", "params", "neurons", "flops"}
    assert report["groups"] == 2 and report["name"] == "alexnet"


def test_alexnet_flops_count_each_multiply_add_twice(capsys):
    report = {layer["name"]: layer for layer in compile_json("nets/alexnet.net", capsys)["layers"]}
    assert report["conv1"]["flops"] == 2 * 3 * 11 * 11 * 96 * 55 * 55
    assert report["conv2"]["flops"] == 2 * 48 * 5 * 5 * 256 * 27 * 27   # each group sees 48 maps
    assert report["fc6"]["flops"] == 2 * 9216 * 4096


@pytest.mark.parametrize("path, params", [
    ("nets/si_alexnet.net", 60_965_224),
    ("nets/euronet.net", 5_850_750),
    ("nets/mnist_scale_cnn.net", 147_524),
    ("nets/mnist_scale_si.net", 147_524),
    ("nets/fashion_tiny.net", 83_466),       # the notebook prints its count: 83466
    ("nets/fashion_tf.net", 3_274_634),      # 832 + 51,264 + 3,212,288 + 10,250, from convnet.py's layers
    ("nets/fashion_bn.net", 1_694_186),      # the notebook's Keras summary: 1,694,186 trainable
])
def test_network_parameters(path, params, capsys):
    assert compile_json(path, capsys)["params"] == params


def test_euronet_matches_the_slides_rows(capsys):
    rows = {layer["name"]: layer for layer in compile_json("nets/euronet.net", capsys)["layers"]}
    # The slides' table, with conv2d_5 at 113,008 (the table's 113,080 does not add up).
    assert [rows[f"conv{i}"]["params"] for i in range(1, 7)] == [3304, 7084, 14168, 28280, 56560, 113008]
    assert rows["fc7"]["params"] == 5_620_496 and rows["fc8"]["params"] == 7_850
    assert rows["pool6"]["output"] == [112, 8, 8]


def test_mnist_scale_shapes_follow_caffe_rounding(capsys):
    rows = {layer["name"]: layer for layer in compile_json("nets/mnist_scale_cnn.net", capsys)["layers"]}
    assert rows["conv1"]["output"] == [36, 22, 22]
    assert rows["pool1"]["output"] == [36, 11, 11]
    assert rows["conv2"]["output"] == [64, 7, 7]
    assert rows["pool2"]["output"] == [64, 3, 3]   # ceil((7 - 3) / 3) + 1


def test_tiny_imagenet_keeps_sizes_through_its_convs(capsys):
    rows = {layer["name"]: layer for layer in compile_json("nets/tiny_imagenet.net", capsys)["layers"]}
    assert rows["conv1"]["output"] == [96, 227, 227]
    assert rows["pool5"]["output"] == [96, 7, 7]
    assert rows["fc8"]["output"] == [200, 1, 1]


def test_si_variants_differ_only_in_their_conv_lines():
    for plain, si in (("nets/alexnet.net", "nets/si_alexnet.net"),
                      ("nets/mnist_scale_cnn.net", "nets/mnist_scale_si.net")):
        a = open(plain).read().splitlines()
        b = [line for line in open(si).read().splitlines() if not line.startswith("scales")]
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(a) == len(b)
        assert changed and all(x.split("#")[0].split() == ["type", "=", "conv"]
                               and y.split("#")[0].split() == ["type", "=", "siconv"] for x, y in changed)


def _fan_in_out(layer) -> tuple[int, int]:
    """The fans of a conv or fc as Keras and PyTorch count them (receptive field included)."""
    field = layer.options["size"] ** 2 if layer.type == "conv" else 1
    inputs = layer.in_shape.c if layer.type == "conv" else layer.in_shape.numel
    outputs = layer.options["filters"] if layer.type == "conv" else layer.options["outputs"]
    return inputs * field, outputs * field


@pytest.mark.parametrize("path, bound, bias", [
    # Keras: Glorot uniform weights, zero biases
    ("nets/fashion_tf.net", lambda fan_in, fan_out: math.sqrt(6 / (fan_in + fan_out)), lambda bound: 0.0),
    # PyTorch's default: weights and biases uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    ("nets/fashion_tiny.net", lambda fan_in, fan_out: 1 / math.sqrt(fan_in), lambda bound: ("uniform", -bound, bound)),
])
def test_fashion_networks_start_from_their_codes_init(path, bound, bias):
    net = netdsl.parse_file(path)
    for layer in (layer for layer in net.layers if layer.params):
        kind, low, high = layer.options["init"]
        assert kind == "uniform", layer.name
        assert high == -low == pytest.approx(bound(*_fan_in_out(layer)), rel=1e-4), layer.name
        assert layer.options["bias"] == bias(high), layer.name
