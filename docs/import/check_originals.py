"""Recompute docs/import.md's table: each public network imported by its `netdsl import` command,
beside the counts an independent implementation of the original system's own rules gives.

    python docs/import/check_originals.py --extract MIRRORS --originals ORIGINALS   # once: the files, from git
    python docs/import/check_originals.py --originals ORIGINALS --json docs/import/originals.json \
        --layers docs/import/layers.md

ORIGINALS holds each file as ORIGINALS/<owner>+<repo>/<path> (the repositories are public; the
files are not copied into netdsl). --extract takes them from git clones laid out as
MIRRORS/<owner>+<repo> (a bare clone or a work tree), at the commits of NETWORKS below.

For each network the script
1. runs the row's command, `python -m netdsl import ... -o OUT.net`, then `python -m netdsl compile
   OUT.net --json` on its output (the round trip): the imported parameter count and every layer's
   output shape;
2. computes the original's own counts without netdsl: Caffe's files are read with protobuf's own
   text_format against Caffe's caffe.proto (compiled with grpcio-tools' protoc; `pip install
   grpcio-tools`), and every top's shape and every layer's learnt parameters follow Caffe's C++
   rules (conv_layer.cpp, pooling_layer.cpp, inner_product_layer.cpp, ...) written out below;
   cuda-convnet's files are read with configparser, and each layer's outputs, image size and
   weight and bias matrices follow its layer.py (its LayerParsers), written out below;
3. pairs each original layer with the netdsl layer holding its output (the importer's record of
   where each layer went) and compares shapes and parameters, layer by layer.
The JSON holds every layer's pair; --layers writes them as Markdown tables.
"""
from __future__ import annotations

import argparse
import configparser
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CAFFE = ("BVLC/caffe", "9b891540183ddc834a02b2bd81b31afae71b2153")
NET_ARCHIVE = ("natanielruiz/net-archive", "4015675784efdef748912b646d7a01b7f6e592ee")   # model-zoo gists' files
RESNET = ("KaimingHe/deep-residual-networks", "a7026cb6d478e131b765b898c312e25f9f6dc031")
CUDA_CONVNET = ("dnouri/cuda-convnet", "6627f678f986b9993fe61e331c731bb8aadf8896")   # the last svn commit of the original
CUDA_CONVNET2 = ("akrizhevsky/cuda-convnet2", "3238bf0367f63eb370e897b9e5714794cb67ddc2")

# name, system, (repo, commit), files (net first), the command's other arguments
NETWORKS = [
    ("LeNet (deploy)", "caffe", CAFFE, ["examples/mnist/lenet.prototxt"], []),
    ("LeNet (train_test)", "caffe", CAFFE, ["examples/mnist/lenet_train_test.prototxt"], ["--input", "1x28x28"]),
    ("cifar10_quick (deploy)", "caffe", CAFFE, ["examples/cifar10/cifar10_quick.prototxt"], []),
    ("cifar10_quick (train_test, solver)", "caffe", CAFFE, ["examples/cifar10/cifar10_quick_train_test.prototxt",
     "examples/cifar10/cifar10_quick_solver.prototxt"], ["--input", "3x32x32", "--train-images", "50000"]),
    ("cifar10_full (deploy)", "caffe", CAFFE, ["examples/cifar10/cifar10_full.prototxt"], []),
    ("cifar10_full (train_test, solver)", "caffe", CAFFE, ["examples/cifar10/cifar10_full_train_test.prototxt",
     "examples/cifar10/cifar10_full_solver.prototxt"], ["--input", "3x32x32", "--train-images", "50000"]),
    ("bvlc_alexnet (deploy)", "caffe", CAFFE, ["models/bvlc_alexnet/deploy.prototxt"], []),
    ("bvlc_alexnet (train_val)", "caffe", CAFFE, ["models/bvlc_alexnet/train_val.prototxt"], ["--input", "3x227x227"]),
    ("CaffeNet (deploy)", "caffe", CAFFE, ["models/bvlc_reference_caffenet/deploy.prototxt"], []),
    ("CaffeNet (train_val)", "caffe", CAFFE, ["models/bvlc_reference_caffenet/train_val.prototxt"],
     ["--input", "3x227x227"]),
    ("GoogLeNet (deploy)", "caffe", CAFFE, ["models/bvlc_googlenet/deploy.prototxt"], []),
    ("GoogLeNet (train_val, aux heads)", "caffe", CAFFE, ["models/bvlc_googlenet/train_val.prototxt"],
     ["--input", "3x224x224"]),
    ("NIN ImageNet (V1 train_val)", "caffe", NET_ARCHIVE, ["nin_imagenet/train_val.prototxt"], ["--input", "3x224x224"]),
    ("VGG16 (V1 deploy)", "caffe", NET_ARCHIVE, ["vgg_ilsvrc_16/VGG_ILSVRC_16_layers_deploy.prototxt"], []),
    ("ResNet-50 (deploy)", "caffe", RESNET, ["prototxt/ResNet-50-deploy.prototxt"], []),
    ("layers-80sec", "cuda-convnet", CUDA_CONVNET, ["example-layers/layers-80sec.cfg",
     "example-layers/layer-params-80sec.cfg"], ["--input", "3x32x32"]),
    ("layers-18pct", "cuda-convnet", CUDA_CONVNET, ["example-layers/layers-18pct.cfg",
     "example-layers/layer-params-18pct.cfg"], ["--input", "3x32x32"]),
    ("layers-conv-local-11pct", "cuda-convnet", CUDA_CONVNET, ["example-layers/layers-conv-local-11pct.cfg",
     "example-layers/layer-params-conv-local-11pct.cfg"], ["--input", "3x24x24"]),
    ("imagenet-1gpu", "cuda-convnet", CUDA_CONVNET2, ["layers/layers-imagenet-1gpu.cfg",
     "layers/layer-params-imagenet-1gpu.cfg"], ["--input", "3x224x224", "--network-only"]),
    ("imagenet-2gpu-model", "cuda-convnet", CUDA_CONVNET2, ["layers/layers-imagenet-2gpu-model.cfg",
     "layers/layer-params-imagenet-2gpu-model.cfg"], ["--input", "3x224x224", "--network-only"]),
]
# Tried as well, and refused by design (the reason is the command's one line).
REFUSED = [
    ("bvlc_alexnet solver", "caffe", CAFFE, ["models/bvlc_alexnet/train_val.prototxt", "models/bvlc_alexnet/solver.prototxt"],
     ["--input", "3x227x227", "--train-images", "1281167"]),
    ("LeNet solver", "caffe", CAFFE, ["examples/mnist/lenet_train_test.prototxt", "examples/mnist/lenet_solver.prototxt"],
     ["--input", "1x28x28", "--train-images", "60000"]),
    ("imagenet-1gpu with its schedule", "cuda-convnet", CUDA_CONVNET2, ["layers/layers-imagenet-1gpu.cfg",
     "layers/layer-params-imagenet-1gpu.cfg"], ["--input", "3x224x224"]),
]
CAFFE_PROTO = (CAFFE, "src/caffe/proto/caffe.proto")
# cuda-convnet's own parsers, run under Python 2 with --python2 (docs/import/cuda_convnet_own.py)
OWN_CODE = {CUDA_CONVNET: ["layer.py", "options.py", "ordereddict.py"],
            CUDA_CONVNET2: ["layer.py", "python_util/__init__.py", "python_util/options.py"]}


def folder(repo: str) -> str:
    return repo.replace("/", "+")


def extract(mirrors: Path, originals: Path) -> None:
    wanted = {(repo, commit, path) for _, _, (repo, commit), files, _ in NETWORKS + REFUSED for path in files}
    wanted.add((*CAFFE_PROTO[0], CAFFE_PROTO[1]))
    wanted |= {(repo, commit, path) for (repo, commit), paths in OWN_CODE.items() for path in paths}
    for repo, commit, path in sorted(wanted):
        git = mirrors / folder(repo)
        if (git / "repo").is_dir():
            git = git / "repo"
        data = subprocess.run(["git", "-C", str(git), "show", f"{commit}:{path}"], check=True,
                              capture_output=True, timeout=120).stdout
        target = originals / folder(repo) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"{target}: {len(data):,} bytes from {repo}@{commit[:10]}")


# ---------------------------------------------------------------- Caffe's rules, with protobuf's parser


def caffe_pb2(originals: Path):
    """caffe.proto compiled by protoc (grpcio-tools) into a temporary module."""
    from grpc_tools import protoc

    proto = originals / folder(CAFFE[0]) / CAFFE_PROTO[1]
    out = Path(tempfile.mkdtemp(prefix="caffe_pb2_"))
    if protoc.main(["protoc", f"-I{proto.parent}", f"--python_out={out}", str(proto)]) != 0:
        raise SystemExit("protoc could not compile caffe.proto")
    sys.path.insert(0, str(out))
    import caffe_pb2 as module
    return module


V1_NAMES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct", "RELU": "ReLU",
            "LRN": "LRN", "DROPOUT": "Dropout", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
            "ACCURACY": "Accuracy", "DATA": "Data", "CONCAT": "Concat", "ELTWISE": "Eltwise", "SPLIT": "Split",
            "SIGMOID": "Sigmoid", "TANH": "TanH"}


def caffe_counts(pb2, path: Path, input_shape):
    """Every layer of the TRAIN (or deploy) net: (name, type, its top's shape C x H x W, learnt parameters)."""
    from google.protobuf import text_format

    net = pb2.NetParameter()
    text_format.Merge(path.read_text(), net)
    v1 = len(net.layers) > 0
    layers = list(net.layers) if v1 else list(net.layer)
    blobs: dict[str, tuple] = {}
    if net.input:
        dims = list(net.input_shape[0].dim) if net.input_shape else list(net.input_dim)
        blobs[net.input[0]] = tuple(dims[1:])
    rows = []
    for layer in layers:
        type_ = V1_NAMES[pb2.V1LayerParameter.LayerType.Name(layer.type)] if v1 else layer.type
        rules = list(layer.include)
        if rules and not any(r.phase == pb2.TRAIN for r in rules):
            rows.append((layer.name, type_, None, 0, "TEST phase"))
            continue
        bottoms = [blobs[b] for b in layer.bottom if b in blobs]
        params, top = 0, None
        if type_ in ("Data", "Input"):
            if type_ == "Input":
                top = tuple(layer.input_param.shape[0].dim[1:])
            else:
                crop = layer.transform_param.crop_size
                top = tuple(input_shape) if input_shape else (None, crop, crop)
        elif type_ == "Convolution":
            p = layer.convolution_param
            c, h, w = bottoms[0]
            k = p.kernel_size[0] if p.kernel_size else p.kernel_h
            s = p.stride[0] if p.stride else 1
            pad = p.pad[0] if p.pad else 0
            dilation = p.dilation[0] if p.dilation else 1
            extent = dilation * (k - 1) + 1
            top = (p.num_output, (h + 2 * pad - extent) // s + 1, (w + 2 * pad - extent) // s + 1)
            params = p.num_output * (c // p.group) * k * k + (p.num_output if p.bias_term else 0)
        elif type_ == "Pooling":
            p = layer.pooling_param
            c, h, w = bottoms[0]
            k = h if p.global_pooling else (p.kernel_size or p.kernel_h)
            s, pad = (p.stride or 1), p.pad
            rnd = math.ceil if p.round_mode == pb2.PoolingParameter.CEIL else math.floor

            def pooled(x):
                out = int(rnd((x + 2 * pad - k) / s)) + 1
                if pad and (out - 1) * s >= x + pad:
                    out -= 1
                return out
            top = (c, pooled(h), pooled(w))
        elif type_ == "InnerProduct":
            p = layer.inner_product_param
            inputs = math.prod(bottoms[0])
            top = (p.num_output, 1, 1)
            params = p.num_output * inputs + (p.num_output if p.bias_term else 0)
        elif type_ == "Concat":
            top = (sum(b[0] for b in bottoms), *bottoms[0][1:])
        elif type_ == "Scale":
            top = bottoms[0]
            params = bottoms[0][0] * (2 if layer.scale_param.bias_term else 1)
        elif type_ in ("SoftmaxWithLoss", "Accuracy"):
            top = bottoms[0] if len(bottoms[0]) == 3 else (bottoms[0][0], 1, 1)   # the scores it reads
        elif type_ == "Split":
            top = bottoms[0]
        else:   # ReLU, LRN, Dropout, BatchNorm (its blobs are statistics, not learnt), Eltwise, Softmax, ...
            top = bottoms[0]
        for t in layer.top:
            if type_ not in ("SoftmaxWithLoss", "Accuracy"):
                blobs[t] = top if type_ != "Data" else top
        if type_ == "Data":
            blobs[layer.top[0]] = top
        rows.append((layer.name, type_, top, params, ""))
    return rows


# ---------------------------------------------------------------- cuda-convnet's rules (layer.py)


def cc_counts(layers_path: Path, input_shape):
    """Every layer of the file as layer.py's parsers size it: (name, type, shape, weights + biases)."""
    cfg = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
    cfg.read_string(layers_path.read_text())
    dic: dict[str, dict] = {}
    rows = []
    for name in cfg.sections():
        opt = {k: v for k, v in cfg.items(name)}
        type_ = opt["type"]
        def ints(key, default, n):     # layer.py's safe_get_int_list, one value for every input
            if key not in opt:
                return [default] * n
            values = [int(v) for v in opt[key].split(",")]
            return values * n if len(values) == 1 else values
        d = {"type": type_}
        if type_ == "data":
            c, h, w = input_shape
            d.update(outputs=c * h * w if int(opt["dataidx"]) == 0 else 1, channels=c, size=h)
        else:
            inputs = [i.strip() for i in opt["inputs"].split(",")]
            num = [dic[i]["outputs"] for i in inputs]
            n = len(inputs)
            weights = 0
            if type_ in ("conv", "local"):
                channels = ints("channels", None, n)
                groups = ints("groups", 1, n)
                filters = [f * g for f, g in zip(ints("filters", None, n), groups)]
                size = ints("filtersize", None, n)
                padding = ints("padding", 0, n)
                stride = ints("stride", 1, n)
                img = [int(math.sqrt(x // ch)) for x, ch in zip(num, channels)]
                modules_x = int(opt.get("modulesx", 0)) or 1 + math.ceil((2 * padding[0] + img[0] - size[0]) / stride[0])
                modules = modules_x ** 2
                filter_channels = [ch // g for ch, g in zip(channels, groups)]
                per_input = [fc * s * s * filters[0] for fc, s in zip(filter_channels, size)]
                if type_ == "conv":
                    shared = opt.get("sharedbiases", "1").lower() in ("1", "true", "yes", "on")
                    weights = sum(per_input) + (filters[0] if shared else modules * filters[0])
                else:
                    weights = modules * sum(per_input) + modules * filters[0]
                d.update(outputs=modules * filters[0], channels=filters[0], size=modules_x)
            elif type_ == "fc":
                outputs = int(opt["outputs"])
                weights = sum(x * outputs for x in num) + outputs
                d.update(outputs=outputs, channels=outputs, size=1)
            elif type_ == "pool":
                channels = int(opt["channels"])
                img = int(math.sqrt(num[0] // channels))
                start, stride, size = int(opt.get("start", 0)), int(opt["stride"]), int(opt["sizex"])
                out = int(opt.get("outputsx", 0)) or int(math.ceil((img - start - size) / float(stride))) + 1
                d.update(outputs=out * out * channels, channels=channels, size=out)
            elif type_ in ("rnorm", "cnorm", "cmrnorm"):
                channels = int(opt["channels"])
                d.update(outputs=num[0], channels=channels, size=int(math.sqrt(num[0] // channels)))
            elif type_ in ("concat", "pass"):
                first = dic[inputs[0]]
                d.update(outputs=sum(num), channels=sum(dic[i]["channels"] for i in inputs), size=first["size"])
            elif type_.startswith("cost."):
                d.update(outputs=0, channels=0, size=0)
            else:   # neuron, softmax, eltsum, eltmax, dropout, dropout2: the input's outputs
                first = dic[inputs[0]]
                d.update(outputs=num[0], channels=first["channels"], size=first["size"])
                if type_ == "softmax":
                    d.update(channels=num[0], size=1)
            d["weights"] = weights
        dic[name] = d
        shape = (d["channels"], d["size"], d["size"]) if d["outputs"] else None
        if shape and math.prod(shape) != d["outputs"]:
            shape = (d["outputs"], 1, 1)
        rows.append((name, type_, shape, d.get("weights", 0), ""))
    return rows


# ---------------------------------------------------------------- the comparison


def run(argv: list[str], timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netdsl", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def own_code(python2: str, entry, originals: Path, classes: int) -> dict:
    """cuda-convnet's own layer.py on the files (Python 2): total parameters and every layer's outputs."""
    _, _, (repo, _), files, extra = entry
    shape = extra[extra.index("--input") + 1].split("x")
    paths = [str(originals / folder(repo) / f) for f in files]
    done = subprocess.run([python2, str(Path(__file__).with_name("cuda_convnet_own.py")),
                           str(originals / folder(repo)), *paths, *shape, str(classes)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"cuda-convnet's layer.py failed on {files[0]}: {done.stdout[-500:]} {done.stderr[-500:]}")
    return {layer["name"]: layer for layer in json.loads(done.stdout)}


def measure(spec, originals: Path, pb2, work: Path, python2: str | None = None) -> dict:
    name, system, (repo, commit), files, extra = spec
    paths = [originals / folder(repo) / f for f in files]
    out = work / (name.split(" ")[0].replace("-", "_").lower() + ".net")
    argv = ["import", system, str(paths[0])]
    if system == "caffe" and len(paths) > 1:
        argv += ["--solver", str(paths[1])]
    elif len(paths) > 1:
        argv.append(str(paths[1]))
    argv += [*extra, "-o", str(out)]
    shown = ["netdsl", "import", system] + [f"{folder(repo)}/{f}" if i == 0 or system != "caffe" else f"--solver {folder(repo)}/{f}"
                                            for i, f in enumerate(files)] + extra + ["-o", out.name]
    row = {"network": name, "system": system, "repository": repo, "commit": commit, "files": files,
           "command": " ".join(shown)}
    done = run(argv)
    if done.returncode != 0:
        row.update(status="refused", message=done.stderr.strip().replace(str(originals) + "/", ""))
        return row
    compiled = json.loads(run(["compile", str(out), "--json"]).stdout)
    by_name = {layer["name"]: layer for layer in compiled["layers"]}
    # where each original layer went: the importer's own record
    if system == "caffe":
        from netdsl.importers.caffe import convert_caffe, parse_shape
        shape = parse_shape(extra[extra.index("--input") + 1]) if "--input" in extra else None
        kwargs = {}
        if len(paths) > 1:
            kwargs = dict(solver=paths[1], train_images=int(extra[extra.index("--train-images") + 1]))
        imported = convert_caffe(paths[0], input_shape=shape, out_path=str(out), **kwargs)
        original = caffe_counts(pb2, paths[0], shape)
    else:
        from netdsl.importers.caffe import parse_shape
        from netdsl.importers.cuda_convnet import convert_cuda_convnet
        shape = parse_shape(extra[extra.index("--input") + 1])
        imported = convert_cuda_convnet(paths[0], paths[1] if len(paths) > 1 else None, shape, str(out),
                                        network_only="--network-only" in extra)
        original = cc_counts(paths[0], shape)
    assert imported.text == out.read_text(), "the command and the API wrote different text"
    where = {o.name: o for o in imported.origins}
    members: dict[str, list] = {}
    for o in imported.origins:
        if o.made:
            members.setdefault(o.made, []).append(o.name)
    groups = compiled["groups"]
    layers, shapes_equal, shapes_total = [], 0, 0
    original_params = 0
    for lname, ltype, lshape, lparams, note in original:
        original_params += lparams
        o = where.get(lname) if note != "TEST phase" else None   # a TRAIN layer may share a TEST one's name
        target = o.netdsl if o else None
        entry = {"layer": lname, "type": ltype, "original_shape": list(lshape) if lshape else None,
                 "original_params": lparams, "netdsl": target}
        if target is None or (o and o.note and not o.made and lshape is None):
            entry["netdsl_shape"] = None
            entry["note"] = (o.note if o else "") or f"{note}: dropped"
            layers.append(entry)
            continue
        got = by_name[target]["output"]
        together = len(members.get(o.made, [])) if o.made else 1
        # a model-parallel member holds 1/groups of the netdsl layer's channels
        expect = list(lshape) if lshape else None
        if expect and system == "cuda-convnet" and together > 1 and groups > 1 and ltype != "data":
            expect = [expect[0] * together, *expect[1:]]
        if expect and len(got) == 3 and expect[0] is None:
            expect[0] = got[0]
        entry["netdsl_shape"] = got
        entry["compared_shape"] = expect
        shapes_total += 1
        entry["shape_equal"] = expect == got
        shapes_equal += entry["shape_equal"]
        if o.note:
            entry["note"] = o.note
        layers.append(entry)
    # parameters, netdsl layer by netdsl layer: the original layers made into it, summed
    per_layer = []
    for netdsl_name, origin_names in members.items():
        theirs = sum(p for n, _, _, p, _ in original if n in origin_names)
        ours = by_name[netdsl_name]["params"]
        if theirs or ours:
            per_layer.append({"netdsl": netdsl_name, "from": origin_names, "original_params": theirs,
                              "netdsl_params": ours, "equal": theirs == ours})
    if python2 and system == "cuda-convnet":
        own = own_code(python2, spec, originals, compiled["layers"][-1]["output"][0])
        row["own_code_params"] = sum(layer["params"] for layer in own.values())
        agree = 0
        for layer in layers:
            mine = own.get(layer["layer"])
            if mine is None or layer.get("compared_shape") is None:
                continue
            layer["own_code_outputs"] = mine["outputs"]
            agree += mine["outputs"] == math.prod(layer["original_shape"])
        row["own_code_outputs_equal"] = agree
    row.update(status="imported", netdsl_params=compiled["params"], original_params=original_params,
               params_equal=compiled["params"] == original_params, layers_compared=shapes_total,
               shapes_equal=shapes_equal, layer_params_equal=all(p["equal"] for p in per_layer),
               groups=groups, netdsl_layers=len(compiled["layers"]), layers=layers, params_by_layer=per_layer)
    row["all_equal"] = row["params_equal"] and shapes_equal == shapes_total and row["layer_params_equal"]
    if "own_code_params" in row:
        row["all_equal"] = row["all_equal"] and row["own_code_params"] == original_params \
            and row["own_code_outputs_equal"] == shapes_total
    return row


def layers_markdown(rows: list[dict]) -> str:
    lines = ["# Every layer of the imported networks beside the original's own counts", "",
             "Written by `python docs/import/check_originals.py` (docs/import.md says how); one table a network:",
             "each original layer, its output shape by the original system's rules, the netdsl layer that holds",
             "its output and that layer's shape from `netdsl compile --json` on the imported file.", ""]
    for row in rows:
        if row["status"] != "imported":
            continue
        lines += [f"## {row['network']}", "", f"`{row['command']}`", "",
                  "| original layer | type | shape (original's rules) | netdsl layer | shape (netdsl) | params (original) | equal |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for layer in row["layers"]:
            shape = "x".join(map(str, layer["compared_shape"])) if layer.get("compared_shape") else "-"
            got = "x".join(map(str, layer["netdsl_shape"])) if layer.get("netdsl_shape") else "-"
            equal = "yes" if layer.get("shape_equal") else (layer.get("note") or "dropped")
            lines.append(f"| {layer['layer']} | {layer['type']} | {shape} | {layer['netdsl'] or '-'} | {got} | "
                         f"{layer['original_params']:,} | {equal} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=Path, required=True, help="ORIGINALS/<owner>+<repo>/<path>")
    parser.add_argument("--extract", type=Path, metavar="MIRRORS", help="first copy the files out of git clones here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--layers", type=Path, help="write every layer's comparison here, as Markdown")
    parser.add_argument("--python2", metavar="PYTHON2", help="also run cuda-convnet's own layer.py with this "
                        "Python 2.7 (with numpy) on its files")
    args = parser.parse_args(argv)
    if args.extract:
        extract(args.extract, args.originals)
    pb2 = caffe_pb2(args.originals)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for entry in NETWORKS + REFUSED:
            row = measure(entry, args.originals, pb2, Path(work), args.python2)
            rows.append(row)
            if row["status"] == "imported":
                print(f"{row['network']:38} netdsl {row['netdsl_params']:>12,}  original {row['original_params']:>12,}  "
                      f"shapes {row['shapes_equal']}/{row['layers_compared']}  "
                      f"{'all equal' if row['all_equal'] else 'DIFFERENT'}"
                      + (f"  (layer.py itself: {row['own_code_params']:,}, outputs {row['own_code_outputs_equal']}/"
                         f"{row['layers_compared']})" if "own_code_params" in row else ""))
            else:
                print(f"{row['network']:38} refused: {row['message']}")
    if args.json:
        args.json.write_text(json.dumps({"networks": rows}, indent=1) + "\n")
    if args.layers:
        args.layers.write_text(layers_markdown(rows))
    return 0 if all(r.get("all_equal", r["status"] == "refused") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
