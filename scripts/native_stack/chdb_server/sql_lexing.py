"""Just enough SQL lexing to find statement kinds, FORMAT clauses and where INSERT data starts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(sql: str) -> Iterator[tuple[str, int, int, int]]:
    """Yield (UPPER word, start, end, paren depth), skipping strings, quoted names, comments."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            i += 1
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            assert m is not None
            yield m.group().upper(), i, m.end(), depth
            i = m.end()
        elif ch.isdigit():
            while i < n and (sql[i].isalnum() or sql[i] in "._"):
                i += 1
        else:
            i += 1


def first_keyword(sql: str) -> str:
    for word, _s, _e, _d in _words(sql):
        return word
    return ""


def trailing_format(sql: str) -> str | None:
    """The output format named by a top-level `FORMAT name` clause, if any."""
    found, prev = None, ""
    for word, start, end, depth in _words(sql):
        if depth == 0 and prev == "FORMAT":
            found = sql[start:end]
        prev = word if depth == 0 else ""
    return found


@dataclass
class InsertSplit:
    statement: str  # the INSERT without its FORMAT clause, as chdb's send_insert wants it
    fmt: str
    data_start: int  # byte offset of the inline data in the request text


def split_insert(head: str) -> InsertSplit | None:
    """Find `INSERT ... FORMAT name` and where its data begins (ClickHouse's parser rules)."""
    words = _words(head)
    first = next(words, None)
    if first is None or first[0] != "INSERT":
        return None
    prev: tuple[str, int, int, int] | None = None
    for word in words:
        if word[3] == 0 and word[0] in ("VALUES", "SELECT", "WITH"):
            return None
        if prev is not None and prev[0] == "FORMAT" and prev[3] == 0 and word[3] == 0:
            # Data starts after the format name: spaces/tabs, then at most one CR LF/LF.
            pos = word[2]
            while pos < len(head) and head[pos] in " \t\f":
                pos += 1
            if head.startswith("\r", pos):
                pos += 1
            if head.startswith("\n", pos):
                pos += 1
            return InsertSplit(head[: prev[1]].rstrip(), head[word[1] : word[2]], pos)
        prev = word
    return None
