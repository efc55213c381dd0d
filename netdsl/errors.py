"""The one exception a user sees: NetError, pointing into a `.net` file or naming a bad input."""
from __future__ import annotations

import difflib


class NetError(Exception):
    """A user error: a bad `.net` file, flag or data directory.

    `path`, `line` and `col` locate it in a `.net` file when it comes from one
    (line and col count from 1); the CLI prints `path:line:col: error: message`.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 col: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.path and self.line:
            return f"{self.path}:{self.line}:{self.col or 1}: error: {self.message}"
        if self.path:
            return f"{self.path}: error: {self.message}"
        return f"error: {self.message}"


def did_you_mean(word: str, candidates) -> str:
    """' (did you mean `x`?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
