"""The `.net` text an importer writes, checked by netdsl itself before anyone sees it.

    out = NetText(["Imported by ..."])
    layer = out.layer("conv1", "conv", origin)          # origin: where it came from
    layer.set("filters", 96).set("size", 11)
    imported = out.finish("alexnet.net")                # the text, parsed and checked by netdsl

Every section remembers the original layer it came from (Origin: file, line, name, type), so
that anything netdsl refuses in the converted text comes back as a refusal of that layer, in
the original file: `train_val.prototxt:112: error: layer 'pool5' (Pooling): ...`. A layer's
own `expect` check runs on the checked network (netdsl's inferred shapes), so an importer can
hold netdsl's shape against the original system's rule for that layer.
"""
from __future__ import annotations

import contextlib
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import NetError
from ..language.check import check_name


class Refusal(NetError):
    """A layer, or a setting, that netdsl cannot express exactly: `FILE:LINE: error: ...`, no column."""

    def __str__(self) -> str:
        if self.path and self.line:
            return f"{self.path}:{self.line}: error: {self.message}"
        return super().__str__()


@dataclass
class Origin:
    """One layer of the original file and what became of it."""
    name: str                 # its name there
    type: str                 # its type there (Caffe's type, cuda-convnet's `type =`)
    path: str
    line: int
    netdsl: str | None = None  # the netdsl layer that holds its output; None: dropped
    made: str | None = None    # the netdsl layer made from it (its weights), where it made one
    note: str = ""             # how it was converted, or why it was dropped

    def refuse(self, text: str) -> Refusal:
        return Refusal(f"layer '{shown(self.name)}' ({shown(self.type)}): {text}", self.path, self.line)


_UNPRINTABLE = re.compile(r"[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd]")


def shown(text: str) -> str:
    """A name from the original file as one line can show it: control characters, line breaks
    and the like escaped (`co\\nv1`), so that no message or comment spills onto a second line."""
    text = str(text)
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def written(x: Any) -> str:
    """A value as a .net file writes it: 0.0001, 1e-05, 96, `normal(0, 0.01)`, `1, 2`."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if x == int(x) and abs(x) < 1e15:
            return str(int(x))
        short = f"{x:g}"
        return short if float(short) == x else repr(x)
    if isinstance(x, (tuple, list)):
        return ", ".join(written(item) for item in x)
    return str(x)


def call(name: str, *args) -> str:
    """`normal(0, 0.01)`, `leaky(0.1)`, `xavier(out)`."""
    return f"{name}({', '.join(written(a) for a in args)})" if args else name


@contextlib.contextmanager
def one_line_errors():
    """Any error's text made one printable line: a name in the original file may hold anything."""
    try:
        yield
    except NetError as err:
        err.message = shown(err.message)
        err.args = (err.message,)
        raise


@dataclass
class Section:
    name: str
    entries: list[tuple[str, str, str]] = field(default_factory=list)   # key, value, comment
    comments: list[str] = field(default_factory=list)                   # lines above [name]
    origin: Origin | None = None
    expect: list[Callable] = field(default_factory=list)                # f(net layer) -> error text or None

    def set(self, key: str, value: Any, comment: str = "") -> "Section":
        text = value if isinstance(value, str) else written(value)
        for i, (k, _, c) in enumerate(self.entries):
            if k == key:
                self.entries[i] = (key, text, comment or c)
                return self
        self.entries.append((key, text, comment))
        return self

    def get(self, key: str) -> str | None:
        return next((v for k, v, _ in self.entries if k == key), None)

    def drop(self, key: str) -> None:
        self.entries = [e for e in self.entries if e[0] != key]


_NAME = re.compile(r"[^A-Za-z0-9_]")


class Names:
    """Original names made netdsl names: `conv1/7x7_s2` -> conv1_7x7_s2, `conv4-1024` -> conv4_1024,
    a Python keyword or an nn.Module attribute (`eval`) given a trailing `_`, each name once."""

    def __init__(self):
        self.taken: set[str] = {"net", "train"}

    def make(self, original: str) -> str:
        name = _NAME.sub("_", original) or "layer"
        if not name[0].isalpha():
            name = "l" + name
        if check_name(name) is not None or keyword.iskeyword(name) or name in ("net", "train"):
            name += "_"
        base, n = name, 2
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name


@dataclass
class Imported:
    """An import's result: the .net text, the checked network, and what became of each original layer."""
    text: str
    net: Any                       # netdsl.Net
    origins: list[Origin]


class NetText:
    def __init__(self, header: list[str]):
        self.header = header
        self.net = Section("net")
        self.layers: list[Section] = []
        self.train = Section("train")
        self.train_comments: list[str] = []

    def layer(self, name: str, type_: str, origin: Origin | None, type_comment: str = "") -> Section:
        section = Section(name, origin=origin)
        section.set("type", type_, type_comment)
        self.layers.append(section)
        return section

    def find(self, name: str) -> Section | None:
        return next((s for s in self.layers if s.name == name), None)

    def render(self) -> tuple[str, list[tuple[int, Section]]]:
        """The text, and (first line, section) for every section, to map a line back to its layer."""
        lines = [f"# {shown(line)}" if line else "#" for line in self.header]
        starts: list[tuple[int, Section]] = []

        def emit(section: Section):
            width = max((len(k) for k, _, _ in section.entries), default=0)
            lines.append("")
            lines.extend(f"# {shown(c)}" if c else "#" for c in section.comments)
            starts.append((len(lines) + 1, section))
            lines.append(f"[{section.name}]")
            for key, value, comment in section.entries:
                text = f"{key.ljust(width)} = {value}"
                if comment:
                    text = f"{text.ljust(width + 24)} # {shown(comment)}"
                lines.append(text)

        if self.net.entries:
            emit(self.net)
        for section in self.layers:
            emit(section)
        if self.train.entries:
            self.train.comments = self.train_comments
            emit(self.train)
        return "\n".join(lines) + "\n", starts

    def finish(self, out_path: str, origins: list[Origin]) -> Imported:
        """Render, then parse and check the text with netdsl; a fault becomes the origin layer's refusal."""
        from .. import parse_string

        text, starts = self.render()
        try:
            net = parse_string(text, out_path)
        except NetError as err:
            section = None
            for first, candidate in starts:
                if err.line and err.line >= first:
                    section = candidate
            if section is not None and section.origin is not None:
                raise section.origin.refuse(f"netdsl refuses the converted layer [{section.name}]: "
                                            f"{err.message}") from None
            raise NetError(f"netdsl refuses the converted network: {err.message}",
                           origins[0].path if origins else out_path, origins[0].line if origins else 1) from None
        for section in self.layers:
            for check in section.expect:
                problem = check(net.layer(section.name))
                if problem:
                    raise section.origin.refuse(problem)
        return Imported(text, net, origins)
