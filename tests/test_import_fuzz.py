"""Mutants of the import tests' files (tests/import_files/): a positioned error or a valid .net, never a crash.

    python -m pytest tests/test_import_fuzz.py

Each mutant is one of the test files with one to three mutations: a line deleted, duplicated or
swapped, a bit flipped, a token of the format (`{`, `}`, `:`, `=`, `[x]`, a field or key name,
an enum) or a hostile value (huge and non-finite numbers, deep braces, NUL and invalid UTF-8,
long strings) inserted or put in place of a value. `netdsl import` on it (parsing and the
conversion, which checks its output with netdsl) must return a `.net` that netdsl parses, or
raise NetError with a line number and a one-line message, within a second.
"""
import random
import time
from pathlib import Path

import pytest

import netdsl
from netdsl.errors import NetError
from netdsl.importers.caffe import convert_caffe
from netdsl.importers.cuda_convnet import convert_cuda_convnet

FILES = Path(__file__).resolve().parent / "import_files"
MUTANTS = 2000
SEED = 20260621
MUTANT_SECONDS = 1.0

# (what is mutated, how it is imported): every seed is one of the test files
CAFFE_NETS = {"every_layer.prototxt": None, "v1_layers.prototxt": None, "train_val.prototxt": (3, 16, 16)}
SOLVERS = ("solver_step.prototxt", "solver_multistep.prototxt", "solver_fixed.prototxt", "solver_each_epoch.prototxt")
CFG_PAIRS = {"every_layer.cfg": ("every_layer_params.cfg", (3, 15, 15)),
             "model_parallel.cfg": ("model_parallel_params.cfg", (3, 8, 8))}

WORDS = ("{", "}", ":", "<", ">", "[", "]", ",", ";", "=", '"', "#", "layer", "layers", "name", "type", "bottom",
         "top", "param", "lr_mult", "num_output", "kernel_size", "stride", "pad", "group", "pool", "MAX", "AVE",
         "global_pooling: true", "local_size", "norm_region", "WITHIN_CHANNEL", "include { phase: TEST }",
         "bias_term: false", '"Convolution"', '"Pooling"', '"ReLU"', '"BatchNorm"', '"Scale"', '"Eltwise"',
         '"Concat"', '"Softmax"', '"SoftmaxWithLoss"', '"PReLU"', "CONVOLUTION", "loss_weight", "[conv1]",
         "[data]", "type=conv", "type=pool", "inputs=data", "channels=3", "filters=16", "neuron=relu",
         "neuron=tanh[1,2]", "sizeX=3", "start=-1", "gpu=0,1", "epsW=0.001", "scale=", "pow=0.75", "%(x)s",
         "base_lr", "lr_policy", '"step"', "stepsize", "max_iter", "[DEFAULT]")
HOSTILE = ("1e400", "-1e400", "nan", "inf", "-inf", "0", "-1", "99999999999", "9" * 5000, "2147483648", "0x7fffffff",
           "010", "1.5", "1e-45", "\0", "\xff", "\ufeff", "\r", "{" * 3000, "}" * 3000, "[" * 1000,
           '"' + "a" * 100_000 + '"', "é", "\\", "'", "\t", ", " * 500)


class Mutant:
    def __init__(self, kind, seed, data, steps):
        self.kind, self.seed, self.data, self.steps = kind, seed, data, steps


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    lines = data.splitlines(keepends=True) or [b""]
    choice = rng.randrange(7)
    token = rng.choice(WORDS if rng.random() < 0.5 else HOSTILE)
    encoded = token.encode("latin-1") if token == "\xff" else token.encode("utf-8")
    if choice == 0:
        i = rng.randrange(len(lines))
        return b"".join(lines[:i] + lines[i + 1:]), f"delete line {i + 1}"
    if choice == 1:
        i = rng.randrange(len(lines))
        return b"".join(lines[:i + 1] + lines[i:]), f"duplicate line {i + 1}"
    if choice == 2:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines), f"swap lines {i + 1} and {j + 1}"
    if choice == 3 and data:
        i, bit = rng.randrange(len(data)), rng.randrange(8)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:], f"flip byte {i} bit {bit}"
    if choice == 4:
        i = rng.randrange(len(data) + 1)
        return data[:i] + encoded + data[i:], f"insert {token[:20]!r} at {i}"
    # a value replaced: after the first `:` or `=` of a line
    candidates = [i for i, line in enumerate(lines) if b":" in line or b"=" in line]
    if not candidates:
        return data + encoded, f"append {token[:20]!r}"
    i = rng.choice(candidates)
    sep = b":" if b":" in lines[i] else b"="
    key = lines[i].split(sep, 1)[0]
    lines[i] = key + sep + b" " + encoded + b"\n"
    return b"".join(lines), f"line {i + 1} value {token[:20]!r}"


def mutants(count: int, seed: int):
    rng = random.Random(seed)
    seeds = ([("caffe", name) for name in CAFFE_NETS] + [("solver", name) for name in SOLVERS]
             + [("cfg", name) for name in CFG_PAIRS] + [("params", CFG_PAIRS[name][0]) for name in CFG_PAIRS])
    for _ in range(count):
        kind, name = rng.choice(seeds)
        data, steps = (FILES / name).read_bytes(), []
        for _ in range(rng.choice((1, 1, 2, 3))):
            data, step = mutate(rng, data)
            steps.append(step)
        yield Mutant(kind, name, data, steps)


def try_import(mutant: Mutant):
    """The imported network, or NetError: the contract. Anything else propagates."""
    if mutant.kind == "caffe":
        return convert_caffe(mutant.seed, input_shape=CAFFE_NETS[mutant.seed], data=mutant.data)
    if mutant.kind == "solver":
        from netdsl.importers.caffe import CaffeImporter
        net = FILES / "train_val.prototxt"
        return CaffeImporter(str(net), net.read_bytes(), (3, 16, 16), (mutant.seed, mutant.data), 1000).convert()
    if mutant.kind == "cfg":
        params, shape = CFG_PAIRS[mutant.seed]
        return convert_cuda_convnet(mutant.seed, FILES / params, shape, data=mutant.data, network_only=True)
    layers = next(name for name, (params, _) in CFG_PAIRS.items() if params == mutant.seed)
    return convert_cuda_convnet(FILES / layers, mutant.seed, CFG_PAIRS[layers][1], params_data=mutant.data)


def test_every_mutant_imports_or_is_refused_with_a_positioned_error():
    outcomes = {"imported": 0, "refused": 0}
    broken, slowest = [], 0.0
    for mutant in mutants(MUTANTS, SEED):
        start = time.perf_counter()
        try:
            imported = try_import(mutant)
            netdsl.parse_string(imported.text)       # the text itself, read again
            outcomes["imported"] += 1
        except NetError as err:
            outcomes["refused"] += 1
            if err.line is None or "\n" in str(err):
                broken.append(f"{mutant.seed} {mutant.steps}: an error without a line, or of several: {err!r}")
        except Exception as err:   # the contract broken: a crash
            broken.append(f"{mutant.seed} {mutant.steps}: {type(err).__name__}: {err}")
        slowest = max(slowest, time.perf_counter() - start)
    assert broken == []
    assert slowest < MUTANT_SECONDS
    # both sides of the contract are exercised
    assert outcomes["imported"] >= MUTANTS // 10 and outcomes["refused"] >= MUTANTS // 4, outcomes


def test_the_same_seed_gives_the_same_mutants():
    first = [(m.seed, m.data) for m in mutants(20, 5)]
    assert first == [(m.seed, m.data) for m in mutants(20, 5)]
    assert first != [(m.seed, m.data) for m in mutants(20, 6)]


def test_a_crash_would_be_reported(monkeypatch):
    import netdsl.importers.caffe as caffe

    def crash(self):
        raise ValueError("a crash in the importer")
    monkeypatch.setattr(caffe.CaffeImporter, "convert", crash)
    with pytest.raises(ValueError):
        try_import(Mutant("caffe", "v1_layers.prototxt", (FILES / "v1_layers.prototxt").read_bytes(), []))
