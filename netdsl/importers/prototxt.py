"""Protocol buffers' text format (Caffe's .prototxt nets and solvers) read with Lark, positions kept.

    doc = parse_prototxt(open("train_val.prototxt", "rb").read(), "train_val.prototxt")
    layer = doc.all("layer")[0]                 # a Message, with .line and .col
    Reader(layer, path).string("name")          # "conv1"; NetError(path, line, col) if malformed

The grammar is prototxt.lark, beside this file: fields, nested messages and lists, and no knowledge of
Caffe's schema. Every value keeps its line and column, so that an importer can point at the
field it refuses. Reader reads typed fields the way protobuf does (a singular field written
twice is an error; an integer field refuses 1.5; a bool is true/false/1/0), with Caffe's
defaults supplied by the caller.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import lark
from lark import Lark, Transformer

from ..errors import NetError


@dataclass(frozen=True)
class Scalar:
    kind: str           # number, string or ident
    text: str           # a number's or identifier's token; a string's decoded value
    line: int
    col: int


@dataclass(frozen=True)
class Field:
    name: str
    value: "Scalar | Message"
    line: int
    col: int


@dataclass(frozen=True)
class Message:
    fields: tuple[Field, ...]
    line: int
    col: int

    def all(self, name: str) -> list:
        """The values of every field called `name`, in order (a list field's items one by one)."""
        return [f.value for f in self.fields if f.name == name]

    def field_list(self, name: str) -> list[Field]:
        return [f for f in self.fields if f.name == name]

    def names(self) -> list[str]:
        return list(dict.fromkeys(f.name for f in self.fields))

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)


class _ToMessages(Transformer):
    def start(self, fields):
        return Message(tuple(_flatten(fields)), 1, 1)

    def scalar_field(self, children):
        name, value = children
        return Field(str(name), value, name.line, name.column)

    def list_field(self, children):
        name, *items = children
        return [Field(str(name), item, name.line, name.column) for item in items if item is not None]

    def message_field(self, children):
        name, value = children
        return Field(str(name), value, name.line, name.column)

    def braces(self, children):
        return self._message(children)

    def angles(self, children):
        return self._message(children)

    def _message(self, children):
        fields = tuple(_flatten(children))
        first = fields[0] if fields else None
        return Message(fields, first.line if first else 0, first.col if first else 0)

    def number(self, children):
        (tok,) = children
        return Scalar("number", str(tok), tok.line, tok.column)

    def ident(self, children):
        (tok,) = children
        return Scalar("ident", str(tok), tok.line, tok.column)

    def string(self, children):
        first = children[0]
        return Scalar("string", "".join(_unquote(tok) for tok in children), first.line, first.column)


def _flatten(items) -> Iterable[Field]:
    for item in items:
        if isinstance(item, list):
            yield from item
        elif isinstance(item, Field):
            yield item


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")


def _unquote(token: lark.Token) -> str:
    """A quoted string token's value, its C escapes decoded as protobuf's text format decodes them."""
    def one(match):
        code = match.group(1)
        if code[0] == "x":
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise NetError(f"a string with the escape `\\{code}`, which protobuf does not know",
                       None, token.line, token.column)
    return _ESCAPE.sub(one, str(token)[1:-1])


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "prototxt.lark").read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=False, transformer=_ToMessages())


_TOKEN_WORDS = {
    "NAME": "a field name", "NUMBER": "a number", "STRING": "a string", "MINUS_NAME": "a value",
    "COLON": "`:`", "LBRACE": "`{`", "RBRACE": "`}`", "LSQB": "`[`", "RSQB": "`]`",
    "LESSTHAN": "`<`", "MORETHAN": "`>`", "COMMA": "`,`", "SEMICOLON": "`;`", "$END": "the end of the file",
}


def _expected(names) -> str:
    words = sorted({_TOKEN_WORDS.get(n, f"`{n}`") for n in names})
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def decode(data: bytes | str, path: str, what: str) -> str:
    """Bytes to text: UTF-8 (a byte-order mark allowed), CRLF and CR as LF; a binary file refused."""
    if isinstance(data, bytes):
        if b"\0" in data:
            raise NetError(f"this is a binary file, not {what}", path, 1, 1)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise NetError("the file is not UTF-8 text", path, line, 1) from None
    if "\0" in data:
        raise NetError(f"this is a binary file, not {what}", path, 1, 1)
    return data.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def parse_prototxt(data: bytes | str, path: str = "<string>") -> Message:
    """Parse protobuf text; raise NetError(path, line, col) at the first fault."""
    text = decode(data, path, "a protobuf text file (.prototxt)")
    try:
        return _parser().parse(text)
    except lark.UnexpectedCharacters as err:
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        what = f"unexpected character `{char}`" if char.isprintable() else f"unexpected character {char!r}"
        hint = "; expected " + _expected(err.allowed) if err.allowed else ""
        raise NetError(what + hint, path, err.line, err.column) from None
    except lark.UnexpectedToken as err:
        if err.token.type == "$END":
            line, col = max(1, text.count("\n")), 1
            message = f"the file ends inside a message; expected {_expected(err.expected)}"
        else:
            line, col = err.line, err.column
            message = f"unexpected `{err.token}`; expected {_expected(err.expected)}"
        raise NetError(message, path, line, col) from None
    except lark.UnexpectedEOF as err:
        raise NetError(f"the file ends early; expected {_expected(err.expected)}", path,
                       max(1, text.count("\n")), 1) from None
    except NetError as err:
        err.path = path
        raise


class Reader:
    """Typed access to one message's fields, errors positioned in `path`.

    Each getter takes the field name and a default (returned when the field is absent); a
    singular field written twice, or a value of the wrong kind, is a NetError at that value."""

    def __init__(self, message: Message, path: str):
        self.message = message
        self.path = path

    def fail(self, where, text: str):
        raise NetError(text, self.path, where.line or self.message.line or 1, where.col or 1)

    def _one(self, name: str) -> Field | None:
        found = self.message.field_list(name)
        if len(found) > 1:
            self.fail(found[1], f"`{name}` is given {len(found)} times; it takes one value (first on line "
                                f"{found[0].line})")
        return found[0] if found else None

    def _scalar(self, name: str) -> Scalar | None:
        found = self._one(name)
        if found is None:
            return None
        if not isinstance(found.value, Scalar):
            self.fail(found, f"`{name}` takes a value, not a message in braces")
        return found.value

    def message_of(self, name: str) -> Message | None:
        found = self._one(name)
        if found is None:
            return None
        if not isinstance(found.value, Message):
            self.fail(found, f"`{name}` is a message: write `{name} {{ ... }}`")
        return found.value

    def messages(self, name: str) -> list[Message]:
        values = []
        for found in self.message.field_list(name):
            if not isinstance(found.value, Message):
                self.fail(found, f"`{name}` is a message: write `{name} {{ ... }}`")
            values.append(found.value)
        return values

    def where(self, name: str):
        """The field itself (for its position), or the message."""
        found = self.message.field_list(name)
        return found[0] if found else self.message

    def number(self, value: Scalar, name: str, integer: bool) -> float | int:
        if value.kind == "ident" and not integer and value.text.lower().lstrip("-") in ("inf", "infinity", "nan"):
            self.fail(value, f"`{name}` is `{value.text}`; netdsl takes finite numbers")
        if value.kind != "number":
            self.fail(value, f"`{name}` takes a number, got `{value.text}`")
        text = value.text.rstrip("fF") if not value.text.lower().startswith(("0x", "-0x")) else value.text
        if integer:
            try:
                if text.lstrip("-").lower().startswith("0x"):
                    return int(text, 16)
                if len(text.lstrip("-")) > 1 and text.lstrip("-").startswith("0") and text.lstrip("-").isdigit():
                    return int(text, 8)      # protobuf reads a leading 0 as octal
                if len(text) > 40:
                    raise ValueError
                return int(text)
            except ValueError:
                self.fail(value, f"`{name}` takes an integer, got `{value.text}`")
        if text.lower().lstrip("-").startswith("0x"):
            return float(int(text, 16))
        try:
            x = float(text)
        except ValueError:
            self.fail(value, f"`{name}` takes a number, got `{value.text}`")
        if math.isinf(x):
            self.fail(value, f"`{name}` is too large for a number: `{value.text[:40]}`")
        return x

    def integer(self, name: str, default: int | None = None, low: int | None = 0) -> int | None:
        value = self._scalar(name)
        if value is None:
            return default
        x = self.number(value, name, True)
        if low is not None and x < low:
            self.fail(value, f"`{name}` must be at least {low}, got {x}")
        if x > 2**31 - 1:
            self.fail(value, f"`{name}` {x} is beyond any size Caffe takes (2**31 - 1)")
        return x

    def integers(self, name: str, low: int | None = 0) -> list[tuple[int, Scalar]]:
        """A repeated integer field: (value, where) for each."""
        out = []
        for found in self.message.field_list(name):
            if not isinstance(found.value, Scalar):
                self.fail(found, f"`{name}` takes a value, not a message in braces")
            x = self.number(found.value, name, True)
            if low is not None and x < low:
                self.fail(found.value, f"`{name}` must be at least {low}, got {x}")
            if x > 2**31 - 1:
                self.fail(found.value, f"`{name}` {x} is beyond any size Caffe takes (2**31 - 1)")
            out.append((x, found.value))
        return out

    def floats(self, name: str) -> list[tuple[float, Scalar]]:
        out = []
        for found in self.message.field_list(name):
            if not isinstance(found.value, Scalar):
                self.fail(found, f"`{name}` takes a value, not a message in braces")
            out.append((float(self.number(found.value, name, False)), found.value))
        return out

    def real(self, name: str, default: float | None = None) -> float | None:
        value = self._scalar(name)
        if value is None:
            return default
        x = float(self.number(value, name, False))
        if math.isnan(x):
            self.fail(value, f"`{name}` is not a number (nan)")
        return x

    def boolean(self, name: str, default: bool) -> bool:
        value = self._scalar(name)
        if value is None:
            return default
        if value.text in ("true", "True", "t", "1"):
            return True
        if value.text in ("false", "False", "f", "0"):
            return False
        self.fail(value, f"`{name}` takes true or false, got `{value.text}`")

    def enum(self, name: str, choices: tuple[str, ...], default: str, numbers: dict[int, str] | None = None) -> str:
        value = self._scalar(name)
        if value is None:
            return default
        if value.kind == "number" and numbers is not None:
            number = self.number(value, name, True)
            if number in numbers:
                return numbers[number]
        if value.kind == "ident" and value.text in choices:
            return value.text
        if value.kind == "string" and value.text in choices:   # protobuf would refuse the quotes
            self.fail(value, f"`{name}` takes an enum value without quotes: {value.text}")
        self.fail(value, f"`{name}` takes one of {', '.join(choices)}, got `{value.text}`")

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self._scalar(name)
        if value is None:
            return default
        if value.kind != "string":
            self.fail(value, f"`{name}` takes a string in quotes, got `{value.text}`")
        return value.text

    def strings(self, name: str) -> list[tuple[str, Scalar]]:
        out = []
        for found in self.message.field_list(name):
            if not isinstance(found.value, Scalar) or found.value.kind != "string":
                self.fail(found, f"`{name}` takes a string in quotes")
            out.append((found.value.text, found.value))
        return out

    def only(self, known: Iterable[str], what: str) -> None:
        """Refuse any field not in `known`: what netdsl does not read, it cannot promise to keep."""
        known = set(known)
        for found in self.message.fields:
            if found.name not in known:
                self.fail(found, f"{what} has the field `{found.name}`, which netdsl does not import; "
                                 "it cannot promise the same network with it")
