"""Stage 1, parse: `.net` text to sections of entries, every one with its line and column.

    doc = parse_text(open("nets/alexnet.net").read(), "nets/alexnet.net")
    doc.sections[1].entries[0]   # Entry(key='type', value=Value('name', 'conv', ...), line=9, col=1)

Nothing here knows what a layer is; that is the checker's job (check.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Transformer

from ..errors import NetError


@dataclass(frozen=True)
class Value:
    """One value as written. kind: int, float, name, shape, list or call.

    data: int | float | str | tuple[int, ...] (shape) | tuple[Value, ...] (list)
    | tuple[str, tuple[Value, ...]] (call: function name, arguments).
    """
    kind: str
    data: Any
    line: int
    col: int

    def __str__(self) -> str:
        if self.kind == "shape":
            return "x".join(map(str, self.data))
        if self.kind == "list":
            return ", ".join(map(str, self.data))
        if self.kind == "call":
            name, args = self.data
            return f"{name}({', '.join(map(str, args))})"
        return str(self.data)


@dataclass(frozen=True)
class Entry:
    key: str
    value: Value
    line: int
    col: int


@dataclass(frozen=True)
class Section:
    name: str
    entries: tuple[Entry, ...]
    line: int
    col: int


@dataclass(frozen=True)
class Document:
    path: str
    text: str
    sections: tuple[Section, ...]


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser, with _ToDocument run as it reduces each rule: no tree is built and walked
    again, which halves the time of a long file; every position comes from a token."""
    grammar = (Path(__file__).parent / "netdsl.lark").read_text()   # the language's own, beside it
    return Lark(grammar, parser="lalr", maybe_placeholders=False, transformer=_ToDocument())


INT_LIMIT = 2**63 - 1  # integers are 64-bit, as PyTorch's sizes are


def integer(text: str, line: int, col: int) -> int:
    """An integer literal's value; NetError if it does not fit in 64 bits (checked on its digits
    first, since Python will not even convert a literal of more than 4,300)."""
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) <= len(str(INT_LIMIT)) and abs(int(text)) <= INT_LIMIT:
        return int(text)
    what = f"the integer {text}" if len(text) <= 40 else f"an integer of {len(digits)} digits"
    raise NetError(f"{what} does not fit in 64 bits (at most {INT_LIMIT}); "
                   "write a number this large with an exponent, as 1e30", None, line, col)


def number(text: str, line: int, col: int) -> float:
    """A number literal's value; NetError if it is beyond a 64-bit float (1e400 is not infinity)."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 40 else f"of {len(text)} characters"
        raise NetError(f"the number {shown} is too large for a 64-bit float", None, line, col)
    return value


class _ToDocument(Transformer):
    """Lark tree to the dataclasses above."""

    def start(self, sections):
        return tuple(sections)

    def section(self, children):
        name, *entries = children
        return Section(str(name), tuple(entries), name.line, name.column - 1)  # the `[`

    def entry(self, children):
        key, value = children
        return Entry(str(key), value, key.line, key.column)

    def shape(self, children):
        (tok,) = children
        sizes, col = [], tok.column
        for part in tok.split("x"):
            sizes.append(integer(part, tok.line, col))
            col += len(part) + 1
        return Value("shape", tuple(sizes), tok.line, tok.column)

    def float(self, children):
        (tok,) = children
        return Value("float", number(tok, tok.line, tok.column), tok.line, tok.column)

    def int(self, children):
        (tok,) = children
        return Value("int", integer(tok, tok.line, tok.column), tok.line, tok.column)

    def name(self, children):
        (tok,) = children
        return Value("name", str(tok), tok.line, tok.column)

    def call(self, children):
        fn, *args = children
        return Value("call", (str(fn), tuple(args)), fn.line, fn.column)

    def list(self, items):
        return Value("list", tuple(items), items[0].line, items[0].col)


_TOKEN_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "SHAPE": "a shape like 3x224x224",
    "EQUAL": "`=`", "LSQB": "`[`", "RSQB": "`]`", "LPAR": "`(`", "RPAR": "`)`",
    "COMMA": "`,`", "_NL": "the end of the line", "$END": "the end of the file",
    "SIGNED_NUMBER": "a number",
}


def _describe(token: lark.Token) -> str:
    return "the end of the file" if token.type == "$END" else f"`{token}`"


def _inside_call(text: str, line: int, col: int) -> bool:
    """Whether the spot follows an open `(` on its line."""
    before = text.split("\n")[line - 1][:col - 1]
    return before.count("(") > before.count(")")


def _expected(names, text: str = "", line: int = 0, col: int = 0) -> str:
    """The expected tokens in words; `)` only inside an open call on that line."""
    if line and not _inside_call(text, line, col):
        names = [n for n in names if n != "RPAR"]
    words = sorted({_TOKEN_WORDS.get(n, f"`{n}`") for n in names})
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _decode(data: bytes | str, path: str) -> str:
    if isinstance(data, bytes):
        if b"\0" in data:
            raise NetError("this is a binary file, not a network description", path, 1, 1)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise NetError("the file is not UTF-8 text", path, line, 1) from None
    if "\0" in data:
        raise NetError("this is a binary file, not a network description", path, 1, 1)
    # A byte-order mark, CRLF or CR line endings and a missing final newline are all fine.
    text = data.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def parse_text(data: bytes | str, path: str = "<string>") -> Document:
    """Parse `.net` text (str or raw bytes) into a Document; raise NetError with line and column."""
    text = _decode(data, path)
    try:
        sections = _parser().parse(text)
    except lark.UnexpectedCharacters as err:
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        what = f"unexpected character `{char}`" if char.isprintable() else f"unexpected character {char!r}"
        hint = "; expected " + _expected(err.allowed, text, err.line, err.column) if err.allowed else ""
        raise NetError(what + hint, path, err.line, err.column) from None
    except lark.UnexpectedToken as err:
        if err.token.type == "$END":
            line, col = text.count("\n"), 1
        else:
            line, col = err.line, err.column
        if err.token.type == "_NL":
            message = f"the line ends too soon; expected {_expected(err.expected, text, line, col)}"
        else:
            message = f"unexpected {_describe(err.token)}; expected {_expected(err.expected, text, line, col)}"
        if err.token.type == "NAME" and "LSQB" in err.expected and len(err.expected) <= 2:
            message = f"`{err.token}` stands outside any section; start one with `[name]` first"
        if err.token.type == "LPAR" and _inside_call(text, line, col):
            message = ("unexpected `(`: values nest one level at most, a call of plain values "
                       "such as `normal(0, 0.01)`")
        raise NetError(message, path, line, col) from None
    except lark.UnexpectedEOF as err:
        raise NetError(f"the file ends early; expected {_expected(err.expected)}", path,
                       text.count("\n"), 1) from None
    except NetError as err:  # from the transformer: a literal out of range
        err.path = path
        raise
    return Document(path, text, sections)
