"""A mutation fuzzer for `.net` files: mutants of seed files, and the contract each must keep.

    from fuzzing import Mutator, load_seeds, try_mutant
    mutator = Mutator(load_seeds(), seed=1)
    for mutant in mutator.mutants(500):
        outcome = try_mutant(mutant.data)      # Outcome(kind, seconds, detail)

tests/test_fuzz.py runs a fixed few hundred mutants with the test suite
(`python -m pytest tests/test_fuzz.py`); bench/fuzz.py runs as many as you ask for
(`python bench/fuzz.py --mutants 100000 --seed 1 --json out.json`).

A mutant is a seed (a network of nets/ or a broken file of tests/broken/) with one to three
mutations: a line deleted, duplicated or swapped with another, a byte's bit flipped, a section
of another network spliced in, an entry added, or a token inserted or a value replaced from
the dictionaries below: the language's own words, and hostile values (numbers too large for
any type, calls and brackets thousands deep, long lists, NUL bytes and invalid UTF-8, names
that Python or the generated module already use, very long names, huge shapes, CRLF, CR and
byte-order marks in odd places).

The contract, for every mutant: `netdsl.parse_string` then `netdsl.compile_net` give a module
whose forward pass on one random image of the data layer's shape returns 1 x classes logits,
or raise NetError with a line number and a one-line message; nothing else, and within
MUTANT_SECONDS. A network too large to run here within that second (RUN_BUDGET) is built and
run on PyTorch's meta device, which checks every shape and allocates nothing, or, with more
SI scales than the meta device resizes in that time, only built there.
"""
from __future__ import annotations

import random
import re
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import torch

import netdsl
from netdsl.language.check import NET_KEYS, TRAIN_KEYS
from netdsl.layers.registry import REGISTRY
from netdsl.codegen.render import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
SEED_GLOBS = ("nets/*.net", "tests/broken/*.net")
MUTANT_SECONDS = 1.0     # the contract's bound on one mutant, parse to forward pass
HANG_SECONDS = 20.0      # past this a mutant is stopped and reported as a hang


def load_seeds(root: Path = ROOT) -> dict[str, bytes]:
    """Every seed file as bytes, by its path relative to the repository."""
    paths = sorted(path for pattern in SEED_GLOBS for path in root.glob(pattern))
    return {str(path.relative_to(root)): path.read_bytes() for path in paths}


# ---------------------------------------------------------------- hostile dictionary

PYTHON_NAMES = ("__init__", "self", "forward", "torch", "import", "lambda", "def", "class", "F", "nn",
                "build", "super", "None", "True", "print", "exec", "__import__", "os", "sys",
                "Exception", "object", "type", "match", "_")


def generated_names(seed_texts: dict[str, bytes]) -> tuple[str, ...]:
    """Identifiers the generated modules of the seed networks use, both backends: the names a
    layer or network is most likely to collide with."""
    names: set[str] = set()
    for path, data in seed_texts.items():
        if not path.startswith("nets/"):
            continue
        net = netdsl.parse_string(data, path)
        for backend in BACKENDS:
            names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", netdsl.generate_source(net, backend)))
    return tuple(sorted(names))


def language_words() -> tuple[str, ...]:
    """Every key, layer type and choice of the language, and small values that fit most keys."""
    keys = {key for kind in REGISTRY.values() for key in kind.keys} | set(NET_KEYS) | set(TRAIN_KEYS)
    choices = ("relu", "tanh", "sigmoid", "none", "all", "group", "floor", "ceil", "yes", "no", "test",
               "train", "sgd", "nesterov", "plateau", "image", "channel", "center", "tencrop")
    small = ("0", "1", "2", "3", "4", "5", "7", "8", "11", "16", "32", "96", "0.5", "1e-4", "0.75", "2.0",
             "3x32x32", "1x28x28", "3x8x8", "0.5, 1, 2", "1, 2", "step(0.5)", "multistep(2, 4)")
    return tuple(sorted(keys)) + tuple(REGISTRY) + ("type", "input") + choices + small


def nested(opening: str, depth: int, inner: str = "0", closing: str = ")") -> str:
    return opening * depth + inner + closing * depth


def hostile_values(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Values and tokens that have broken, or could break, a parser, checker or code generator,
    by kind."""
    numbers = ("1e400", "-1e400", "1e-400", str(10**30), "99999999999", "9" * 5000, "2147483647", "2147483648",
               "999999", "65537", "1e308", "1.7976931348623157e308", "4.9e-324",
               "9223372036854775808", "-9223372036854775809", "0", "-0", "+7", "-1", "1.5", ".5e3",
               "nan", "inf", "0x10", "1_000")
    nesting = (nested("normal(", 2), nested("normal(", 50), nested("normal(", 5000),
               nested("step(", 3000, "0.5"), "(" * 5000, ")" * 5000, "[" * 1000, nested("(", 3000))
    lists = (", ".join(["1"] * 5_000), ", ".join(f"{1 + i / 10_000:.4f}" for i in range(2_000)),
             ", ".join(f"conv{i}" for i in range(3_000)), "1, 2", "0.5, 1, 2", ",", "1,,2")
    shapes = ("3x99999x99999", "3x60000x60000", "1x1x1", "0x0x0", "3x224x224x224", "1x2147483648x1",
              "99999999999x1x1", "3x" + "9" * 5000 + "x1", "1x1", "x")
    text = ("\0", "\xff", "\x80\x80", "\ufeff", "\r", "\r\n", "\t", "#", "=", "[", "]", ",", "(", ")",
            "x", "é", "\u2028", "\x1b[31m", "'", '"', "\\", "a" * 100_000, "__init__" * 2000)
    calls = ("normal(0, 0.01)", "normal()", "normal(0)", "uniform(1, 0)", "step(2)", "multistep(1, 1)",
             "multistep(" + ", ".join(map(str, range(1, 3001))) + ")", "normal(-1e400, 1e400)")
    return {"numbers": numbers, "nesting": nesting, "lists": lists, "shapes": shapes, "text": text,
            "calls": calls, "python names": PYTHON_NAMES, "generated names": names}


# ---------------------------------------------------------------- mutations

class Mutant(NamedTuple):
    seed: str                # the seed file it came from
    steps: tuple[str, ...]   # the mutations, in order, in words
    data: bytes


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def _encode(token: str, rng: random.Random) -> bytes:
    """A token as bytes: UTF-8, or now and then as the invalid bytes it stands for."""
    if token in ("\xff", "\x80\x80") and rng.random() < 0.5:
        return token.encode("latin-1")  # invalid UTF-8
    return token.encode("utf-8")


class Mutator:
    """Mutants of the seeds, the same ones for the same `seed`.

    A network of nets/ is the seed three times in four, a broken file the fourth; a token is
    a word of the language (a key, a type, a small value) half the time, a hostile one else."""

    def __init__(self, seeds: dict[str, bytes], seed: int):
        self.seeds = seeds
        self.networks = sorted(name for name in seeds if name.startswith("nets/"))
        self.broken = sorted(name for name in seeds if not name.startswith("nets/"))
        self.rng = random.Random(seed)
        self.words = language_words()
        self.hostile = hostile_values(generated_names(seeds))
        self.mutations: dict[str, Callable[[bytes], tuple[bytes, str]]] = {
            "delete line": self.delete_line, "duplicate line": self.duplicate_line,
            "swap lines": self.swap_lines, "flip bit": self.flip_bit,
            "insert token": self.insert_token, "replace value": self.replace_value,
            "rename section": self.rename_section, "line endings": self.line_endings,
            "add entry": self.add_entry, "splice section": self.splice_section,
        }

    def mutants(self, count: int) -> Iterator[Mutant]:
        for _ in range(count):
            yield self.mutant()

    def mutant(self) -> Mutant:
        seeds = self.networks if self.rng.random() < 0.75 or not self.broken else self.broken
        seed = self.rng.choice(seeds)
        data, steps = self.seeds[seed], []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            name = self.rng.choice(list(self.mutations))
            data, what = self.mutations[name](data)
            steps.append(f"{name}: {what}")
        return Mutant(seed, tuple(steps), data)

    def _token(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(self.words)
        return self.rng.choice(self.hostile[self.rng.choice(sorted(self.hostile))])

    def delete_line(self, data: bytes) -> tuple[bytes, str]:
        lines = _lines(data)
        i = self.rng.randrange(len(lines))
        return b"".join(lines[:i] + lines[i + 1:]), f"line {i + 1}"

    def duplicate_line(self, data: bytes) -> tuple[bytes, str]:
        lines = _lines(data)
        i = self.rng.randrange(len(lines))
        return b"".join(lines[:i + 1] + lines[i:]), f"line {i + 1}"

    def swap_lines(self, data: bytes) -> tuple[bytes, str]:
        lines = _lines(data)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines), f"lines {i + 1} and {j + 1}"

    def flip_bit(self, data: bytes) -> tuple[bytes, str]:
        if not data:
            return data, "nothing to flip"
        i, bit = self.rng.randrange(len(data)), self.rng.randrange(8)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:], f"byte {i} bit {bit}"

    def insert_token(self, data: bytes) -> tuple[bytes, str]:
        token = self._token()
        i = self.rng.randrange(len(data) + 1)
        return data[:i] + _encode(token, self.rng) + data[i:], f"{_short(token)} at byte {i}"

    def replace_value(self, data: bytes) -> tuple[bytes, str]:
        """The value of one `key = value` line replaced by a dictionary token."""
        lines = _lines(data)
        entries = [i for i, line in enumerate(lines) if b"=" in line and not line.lstrip().startswith(b"#")]
        if not entries:
            return self.insert_token(data)
        i, token = self.rng.choice(entries), self._token()
        key = lines[i].split(b"=", 1)[0]
        lines[i] = key + b"= " + _encode(token, self.rng) + b"\n"
        return b"".join(lines), f"line {i + 1} value {_short(token)}"

    def add_entry(self, data: bytes) -> tuple[bytes, str]:
        """A `key = value` line, a key of the language, inserted after a line."""
        lines = _lines(data)
        i, key, token = self.rng.randrange(len(lines) + 1), self.rng.choice(self.words), self._token()
        line = key.encode() + b" = " + _encode(token, self.rng) + b"\n"
        return b"".join(lines[:i] + [line] + lines[i:]), f"line {i + 1}: {key} = {_short(token)}"

    def splice_section(self, data: bytes) -> tuple[bytes, str]:
        """A section of another seed network, its `[name]` line to the next one's, put in after a line."""
        donor = self.rng.choice(self.networks)
        lines = _lines(self.seeds[donor])
        starts = [i for i, line in enumerate(lines) if line.startswith(b"[")]
        first = self.rng.choice(starts)
        end = next((i for i in starts if i > first), len(lines))
        into = _lines(data)
        at = self.rng.randrange(len(into) + 1)
        spliced = into[:at] + [b"\n"] + lines[first:end] + into[at:]
        return b"".join(spliced), f"{donor} lines {first + 1}-{end} at line {at + 1}"

    def rename_section(self, data: bytes) -> tuple[bytes, str]:
        """One `[name]` line renamed to a dictionary token."""
        lines = _lines(data)
        sections = [i for i, line in enumerate(lines) if line.lstrip().startswith(b"[")]
        if not sections:
            return self.insert_token(data)
        i, token = self.rng.choice(sections), self._token()
        lines[i] = b"[" + _encode(token, self.rng) + b"]\n"
        return b"".join(lines), f"line {i + 1} to [{_short(token)}]"

    def line_endings(self, data: bytes) -> tuple[bytes, str]:
        """A byte-order mark, CRLF or CR endings, on some lines or all, or a missing last newline."""
        choice = self.rng.randrange(5)
        if choice == 0:
            return b"\xef\xbb\xbf" + data, "BOM at the start"
        if choice == 1:
            return data.replace(b"\n", b"\r\n"), "CRLF everywhere"
        if choice == 2:
            lines = _lines(data)
            mixed = [line.replace(b"\n", self.rng.choice((b"\r\n", b"\r", b"\n"))) for line in lines]
            return b"".join(mixed), "CRLF, CR and LF mixed"
        if choice == 3:
            return data.rstrip(b"\n"), "no final newline"
        i = self.rng.randrange(len(data) + 1)
        return data[:i] + b"\xef\xbb\xbf" + data[i:], f"BOM at byte {i}"


def _short(token: str) -> str:
    shown = repr(token)
    return shown if len(shown) <= 40 else f"{shown[:30]}...({len(token)} chars)"


# ---------------------------------------------------------------- the contract

class Budget(NamedTuple):
    """The most a network may need for this harness to build and run it within a second."""
    params: int = 10_000_000
    flops: int = 1_000_000_000      # forward FLOPs of one image, as the IR counts them
    values: int = 10_000_000        # every layer's output of one image, SI layers' resized maps too
    steps: int = 200                # torch calls of a forward pass: a layer one, an SI scale three
    meta_scales: int = 6            # SI scales of a forward pass on the meta device, where each
                                    # costs some 40 ms: PyTorch decomposes bilinear resizing there


RUN_BUDGET = Budget()


def values_of(net: netdsl.Net) -> int:
    """The values one image's forward pass holds: every layer's output, and each SI scale's
    resized input and convolved map."""
    total = 0
    for layer in net.layers:
        total += layer.out_shape.numel
        for _, h, w, ch, cw in layer.derived.get("scale_maps", ()):
            total += layer.in_shape.c * h * w + layer.out_shape.c * ch * cw
    return total


def scales_of(net: netdsl.Net) -> int:
    return sum(len(layer.options.get("scales", ())) for layer in net.layers)


def plan(net: netdsl.Net, budget: Budget = RUN_BUDGET) -> str:
    """`run` within the budget; else `shapes` (built and run on the meta device) or, for more
    SI scales than the meta device resizes in time, `build` (built on the meta device only)."""
    steps = len(net.layers) + 3 * scales_of(net)
    if net.params <= budget.params and net.flops <= budget.flops and values_of(net) <= budget.values \
            and steps <= budget.steps:
        return "run"
    return "shapes" if scales_of(net) <= budget.meta_scales and steps <= budget.steps else "build"


def compile_and_run(net: netdsl.Net) -> str:
    """Compile the network and run one image through it as `plan` says; the logits' shape is
    checked against the IR's class count. Returns the plan carried out."""
    how = plan(net)
    device = "cpu" if how == "run" else "meta"
    with torch.device(device), torch.no_grad():
        model = netdsl.compile_net(net, backend="torch")
        if how != "build":
            model.eval()
            logits = model(torch.randn(1, *net.input_shape))
            if tuple(logits.shape) != (1, net.classes):
                raise AssertionError(f"the forward pass gave {tuple(logits.shape)}, the IR says (1, {net.classes})")
    return how


class Outcome(NamedTuple):
    kind: str        # run, shapes, build (compiled), NetError, or violation
    seconds: float
    detail: str      # the error line, or for a violation what broke the contract


class Hang(BaseException):
    """Raised by the alarm in a mutant that runs past HANG_SECONDS."""


@dataclass
class _Alarm:
    seconds: float

    def __enter__(self):
        def ring(signum, frame):
            raise Hang(f"still running after {self.seconds:.0f} s")
        self.previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def warm_up(seeds: dict[str, bytes]) -> None:
    """Compile and run each seed network once, outside any mutant's second: the first network
    to run on the CPU or on the meta device pays for loading the grammar, the templates and
    PyTorch's kernels there (two seconds or more for the meta device)."""
    for name, data in seeds.items():
        if name.startswith("nets/"):
            compile_and_run(netdsl.parse_string(data, name))


def try_mutant(data: bytes) -> Outcome:
    """Parse, check, compile and run one mutant; say how it ended and whether it kept the contract."""
    start = time.perf_counter()
    try:
        with _Alarm(HANG_SECONDS):
            kind, detail = compile_and_run(netdsl.parse_string(data)), ""
    except netdsl.NetError as err:
        kind, detail = "NetError", str(err)
        if err.line is None or "\n" in str(err):
            kind, detail = "violation", f"NetError without a line, or of more than one line: {err!r}"
    except (Exception, Hang):
        kind, detail = "violation", traceback.format_exc(limit=-6)
    seconds = time.perf_counter() - start
    if seconds > MUTANT_SECONDS and kind != "violation":
        kind, detail = "violation", f"took {seconds:.2f} s, more than {MUTANT_SECONDS} s ({kind}: {detail[:200]})"
    return Outcome(kind, seconds, detail)
