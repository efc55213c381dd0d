"""netdsl draw: the DOT source against the network it draws, and the command's refusals.

    pytest tests/test_draw.py

The DOT text is parsed back here (boxes, their columns and labels; arrows, their colour and
labels) and held against the checked IR by rules written from docs/language.md's GPU groups, not by
the drawing's code: a split layer is a box per group, `data` and what reads it alone are one
box; `connect = all` weighted layers read every group, the rest their own; a chunk is
C*H*W / G float32 values. None of this needs Graphviz's `dot`; one test renders an SVG when
`dot` is there (.ci/run installs it), and only that test is skipped without it.
"""
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

import netdsl
from netdsl.cli import main
from netdsl.codegen.drawing import layout, to_dot
from netdsl.language.report import report

ROOT = Path(__file__).resolve().parent.parent
NETS = ROOT / "nets"
WEIGHTED = {"conv", "siconv", "fc"}
QUOTED = r'"(?:[^"\\]|\\.)*"'
ID = rf"(?:{QUOTED}|[A-Za-z_0-9.]+)"
NODE = re.compile(rf"^\t+({ID}) \[(.*)\]$")
EDGE = re.compile(rf"^\t+({ID}) -> ({ID})(?: \[(.*)\])?$")
ATTR = re.compile(rf"(\w+)=({QUOTED}|[^\s\]]+)")
CROSS_RED = "#d62728"


def long_net(layers: int = 300, groups: int = 2) -> str:
    """A generated network of exactly `layers` layers over `groups` groups: data; a pool reading it,
    whole in every group; then, over and over, a conv reading every group, a conv reading its
    own, an LRN, a conv joining two inputs across the groups, a pool, and a neuron layer joining
    two inside each group; an fc, dropout, fc and softmax to end."""
    sections = [f"[net]\nname = long\ngroups = {groups}\n", "[data]\ntype = data\nshape = 3x8x8\n",
                "[blur]\ntype = avgpool\nsize = 3\nstride = 1\npad = 1\n"]
    names: list[str] = []
    for i in range(layers - 6):
        kind = i % 6
        if kind == 0:
            text = f"type = conv\nfilters = {4 * groups}\nsize = 3\npad = 1\nneuron = relu\n"
        elif kind == 1:
            text = f"type = conv\nfilters = {4 * groups}\nsize = 1\nconnect = group\n"
        elif kind == 2:
            text = "type = lrn\nsize = 3\n"
        elif kind == 3:
            text = f"type = conv\nfilters = {4 * groups}\nsize = 3\npad = 1\ninput = {names[-1]}, {names[-3]}\n"
        elif kind == 4:
            text = "type = maxpool\nsize = 3\nstride = 1\npad = 1\n"
        else:
            text = f"type = neuron\nneuron = relu\ninput = {names[-1]}, {names[-2]}\n"
        names.append(f"l{i}")
        sections.append(f"[l{i}]\n{text}")
    sections += [f"[fc1]\ntype = fc\noutputs = {8 * groups}\nneuron = relu\n", "[drop1]\ntype = dropout\n",
                 f"[fc2]\ntype = fc\noutputs = {5 * groups}\n", "[prob]\ntype = softmax\n"]
    return "\n".join(sections)


@pytest.fixture(scope="module")
def long_text() -> str:
    return long_net()


def network(which: str):
    if which == "long":
        return netdsl.parse_string(long_net(), "long.net")
    if which == "long4":
        return netdsl.parse_string(long_net(40, groups=4), "long4.net")
    return netdsl.parse_file(NETS / f"{which}.net")


NETWORKS = ["alexnet", "euronet", "si_alexnet", "long", "long4"]


# ---- the DOT text, parsed back ----

def unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def parse_dot(source: str) -> tuple[dict, list]:
    """{node id: (cluster or None, attributes)} for every labelled node, and [(tail, head,
    attributes)] for every edge, in the order written."""
    nodes, edges, cluster = {}, [], None
    for line in source.splitlines():
        if line.strip().startswith("subgraph cluster_"):
            cluster = line.split()[1]
        elif line == "\t}":
            cluster = None
        elif match := EDGE.match(line):
            attrs = {k: unquote(v) for k, v in ATTR.findall(match[3] or "")}
            edges.append((unquote(match[1]), unquote(match[2]), attrs))
        elif (match := NODE.match(line)) and match[1] not in ("graph", "node", "edge"):
            attrs = {k: unquote(v) for k, v in ATTR.findall(match[2])}
            if "label" in attrs:
                nodes[unquote(match[1])] = (cluster, attrs)
    return nodes, edges


def per_group(layer, net) -> bool:
    """docs/language.md, GPU groups: every tensor after `data` is split over the groups; `data`, and a weightless
    layer reading it directly, is whole in every group."""
    return net.groups > 1 and layer.split


def expected_boxes(net) -> dict:
    """{box id: (cluster, label)}: a box per group in the group's cluster, or one outside."""
    boxes = {}
    for layer in net.layers:
        c, h, w = layer.out_shape
        if per_group(layer, net):
            for g in range(net.groups):
                boxes[f"{layer.name}@{g}"] = (f"cluster_group{g}", f"{layer.name}\\n{layer.type}\\n"
                                              f"{c // net.groups}x{h}x{w}")
        else:
            boxes[layer.name] = (None, f"{layer.name}\\n{layer.type}\\n{c}x{h}x{w}")
    return boxes


def reads_every_group(layer) -> bool:
    return layer.type in WEIGHTED and layer.options["connect"] == "all"


def expected_edges(net) -> Counter:
    """Counter of (tail layer, tail group, head layer, head group, crosses): the input relations."""
    edges = Counter()
    for layer in net.layers:
        heads = range(net.groups) if per_group(layer, net) else [None]
        for name in layer.inputs:
            source = net.layer(name)
            for head in heads:
                if not per_group(source, net):
                    edges[(name, None, layer.name, head, False)] += 1
                elif reads_every_group(layer):
                    for tail in range(net.groups):
                        edges[(name, tail, layer.name, head, tail != head)] += 1
                else:
                    edges[(name, head, layer.name, head, False)] += 1
    return edges


def split_id(node: str) -> tuple[str, int | None]:
    name, _, group = node.partition("@")
    return name, int(group) if group else None


def drawn_edges(edges) -> Counter:
    return Counter((*split_id(tail), *split_id(head), attrs.get("color") == CROSS_RED)
                   for tail, head, attrs in edges)


def label_bytes(label: str) -> int:
    match = re.search(r"([\d,]+) B$", label)
    assert match, label
    return int(match[1].replace(",", ""))


@pytest.fixture(scope="module", params=NETWORKS)
def drawn(request):
    net = network(request.param)
    return net, parse_dot(to_dot(layout(net)))


# ---- the drawing against the network ----

def test_every_layer_is_a_box_per_group_in_its_column(drawn):
    net, (nodes, _) = drawn
    got = {node: (cluster, attrs["label"]) for node, (cluster, attrs) in nodes.items()}
    assert got == expected_boxes(net)
    layers_drawn = {split_id(node)[0] for node in nodes}
    assert layers_drawn == {layer.name for layer in net.layers}


def test_every_arrow_is_an_input_of_the_network(drawn):
    net, (nodes, edges) = drawn
    assert all(tail in nodes and head in nodes for tail, head, _ in edges)
    assert drawn_edges(edges) == expected_edges(net)


def test_arrows_between_groups_carry_the_reports_bytes(drawn):
    """Each red arrow carries one group's chunk of the layer it reads, C*H*W / G float32s; a
    layer's red arrows add up to the report's `cross` for it, and nothing else is red."""
    net, (_, edges) = drawn
    crossing = [(tail, head, attrs) for tail, head, attrs in edges if attrs.get("color") == CROSS_RED]
    per_layer = Counter()
    for tail, head, attrs in crossing:
        source = net.layer(split_id(tail)[0])
        assert split_id(tail)[1] != split_id(head)[1]
        assert attrs["style"] == "dashed"
        assert label_bytes(attrs["label"]) == source.out_shape.numel * 4 // net.groups
        per_layer[split_id(head)[0]] += label_bytes(attrs["label"])
    reported = {row["name"]: row["cross_bytes"] for row in report(net)["layers"] if row["cross_bytes"]}
    assert dict(per_layer) == reported
    assert all("label" not in attrs or not attrs["label"].endswith(" B")
               for _, _, attrs in edges if attrs.get("color") != CROSS_RED)


def test_several_inputs_meet_at_one_point_numbered_in_order(drawn):
    net, (_, edges) = drawn
    for tail, head, attrs in edges:
        layer = net.layer(split_id(head)[0])
        if len(layer.inputs) > 1:
            assert attrs["samehead"] == "concat", (tail, head)
            order = layer.inputs.index(split_id(tail)[0]) + 1
            assert attrs["label"].startswith(f"({order})"), (tail, head, attrs["label"])
        else:
            assert "samehead" not in attrs


def test_alexnet_as_figure_2():
    """The paper's numbers: conv3 and fc6-8 read both GPUs; conv3's copies are pool2's 128 x 13 x 13
    maps of the other GPU, 86,528 bytes each way; conv2, conv4, conv5 stay in their column."""
    nodes, edges = parse_dot(to_dot(layout(network("alexnet"))))
    assert len(nodes) == 1 + 2 * 16
    crossing = {(tail, head): label_bytes(a["label"]) for tail, head, a in edges if a.get("color") == CROSS_RED}
    assert crossing[("pool2@1", "conv3@0")] == crossing[("pool2@0", "conv3@1")] == 128 * 13 * 13 * 4
    assert crossing[("pool5@0", "fc6@1")] == 128 * 6 * 6 * 4
    assert {head.split("@")[0] for _, head in crossing} == {"conv3", "fc6", "fc7", "fc8"}
    assert not any(head.split("@")[0] in ("conv2", "conv4", "conv5") for _, head in crossing)


def test_one_group_has_no_columns():
    source = to_dot(layout(network("euronet")))
    assert "cluster" not in source and CROSS_RED not in source


def test_the_300_layer_file_is_drawn_in_seconds(long_text):
    """A bound only to catch a hang (a quadratic walk, say): the source takes well under a second."""
    start = time.perf_counter()
    net = netdsl.parse_string(long_text, "long.net")
    source = to_dot(layout(net))
    assert time.perf_counter() - start < 10
    assert len(net.layers) == 300 and source.count(" -> ") == sum(expected_edges(net).values())


# ---- the command ----

def draw(net_path, out) -> int:
    return main(["draw", str(net_path), "-o", str(out)])


def one_error_line(capsys, *words) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_draw_writes_the_dot_source_without_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # no `dot` needed for the source
    out = tmp_path / "alexnet.dot"
    assert draw(NETS / "alexnet.net", out) == 0
    assert out.read_text() == to_dot(layout(network("alexnet")))
    assert "8 arrows between groups" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["alexnet.dot"]   # no temporary file left


def test_missing_graphviz_package_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)   # import graphviz raises ImportError
    assert draw(NETS / "alexnet.net", tmp_path / "a.svg") == 2
    one_error_line(capsys, 'pip install "netdsl[draw]"')
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("found_by_which", [False, True])
def test_missing_dot_is_one_line(tmp_path, capsys, monkeypatch, found_by_which):
    """`dot` not on PATH: refused before the work; or gone by the time it runs (graphviz's
    ExecutableNotFound), refused all the same."""
    monkeypatch.setenv("PATH", str(tmp_path))
    if found_by_which:
        monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    assert draw(NETS / "alexnet.net", tmp_path / "a.png") == 2
    one_error_line(capsys, "apt-get install graphviz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["a.jpg", "a", "a.pdf"])
def test_an_unknown_extension_is_refused(tmp_path, capsys, name):
    assert draw(NETS / "alexnet.net", tmp_path / name) == 2
    one_error_line(capsys, ".png, .svg or .dot")
    assert not list(tmp_path.iterdir())


def test_a_broken_net_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.net"
    broken.write_text("[data]\ntype = data\nshape = 3x8x8\n\n[c]\ntype = conv\nfilters = 4\n")
    assert draw(broken, tmp_path / "b.dot") == 2
    one_error_line(capsys, f"{broken}:5:")
    assert [p.name for p in tmp_path.iterdir()] == ["broken.net"]


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    assert draw(NETS / "alexnet.net", tmp_path / "nowhere" / "a.dot") == 2
    one_error_line(capsys, "no such directory")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz; .ci/run does)")
def test_svg_has_a_node_per_box(tmp_path, long_text):
    """The one check that needs `dot`: the rendered SVG parses as XML, a node group per box and
    an edge group per arrow; the 300-layer file too."""
    for name, text in (("alexnet", (NETS / "alexnet.net").read_text()), ("long", long_text)):
        path = tmp_path / f"{name}.net"
        path.write_text(text)
        assert draw(path, tmp_path / f"{name}.svg") == 0
        drawing = layout(netdsl.parse_file(path))
        root = ET.parse(tmp_path / f"{name}.svg").getroot()
        classes = Counter(g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g"))
        assert classes["node"] == len(drawing.boxes)
        assert classes["edge"] == len(drawing.arrows)
