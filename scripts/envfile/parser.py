"""A strict `.env` reader that reports what python-dotenv silently tolerates.

python-dotenv (and compose) skip or guess on lines without `=`, unterminated quotes and repeated
keys; a doctor has to point at those lines instead, so this module parses the file itself and
keeps the line number of every key and every problem. Values are never echoed in messages:
`.env` holds secrets and the output ends up in CI logs and bug reports.

Problems are plain data (a line, a message, error or warning); the verify settings hop turns
them into its results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUOTES = ("'", '"')
# Unquoted values: ' #' starts an inline comment (compose semantics); a '#' inside a word is kept.
_INLINE_COMMENT = re.compile(r"\s#")

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """A problem found in the file. line is 1-based; 0 means the file as a whole.

    error: compose would read something other than what was meant; warning: harmless but untidy.
    """

    line: int
    severity: Severity
    message: str
    key: str | None = None

    def render(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class Assignment:
    """One `KEY=value` line; comment is the trailing ` # ...` as written (kept on rewrites)."""

    key: str
    value: str
    comment: str = ""


@dataclass
class EnvFile:
    path: Path
    exists: bool = True
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line of the definition that wins
    problems: list[Problem] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


def load_env_file(path: Path) -> EnvFile:
    if not path.is_file():
        return EnvFile(path=path, exists=False)
    # utf-8-sig drops the BOM some Windows editors add; it would glue itself to the first key.
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return parse_env_text(text, path)


def read_values(path: Path) -> dict[str, str]:
    """KEY -> value of a `.env` file, empty when there is none (for scripts that only read it)."""
    return load_env_file(path).values


def parse_line(raw: str, number: int = 0) -> tuple[Assignment | None, Problem | None]:
    """One line: its assignment (None for blanks, comments and broken lines) and its problem."""
    line = raw.rstrip("\r").strip()
    if not line or line.startswith("#"):
        return None, None
    if line.startswith("export "):  # accepted by compose and shells alike
        line = line[len("export ") :].lstrip()
    key, sep, rest = line.partition("=")
    key = key.strip()
    if not sep:
        # Echo the text only when it looks like a bare key: anything else may be a secret.
        shown = f"'{key}'" if KEY_RE.match(key) else "this line"
        return None, Problem(number, "error", f"no '=' in {shown} (expected KEY=value)")
    if not KEY_RE.match(key):
        message = "invalid key name (letters, digits and '_' only, not starting with a digit)"
        return None, Problem(number, "error", message)
    value, comment, problem = _parse_value(rest.strip())
    if problem is None:
        return Assignment(key, value, comment), None
    severity, message = problem
    found = Problem(number, severity, f"{key}: {message}", key)
    return (None if severity == "error" else Assignment(key, value, comment)), found


def parse_env_text(text: str, path: Path = Path(".env")) -> EnvFile:
    env = EnvFile(path=path)
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        assignment, problem = parse_line(raw, number)
        if problem is not None:
            env.problems.append(problem)
        if assignment is None:
            continue
        key, value = assignment.key, assignment.value
        if key in env.values:
            same = env.values[key] == value
            env.problems.append(
                Problem(
                    number,
                    "warning" if same else "error",
                    f"{key} is set more than once (lines {first_line[key]} and {number})"
                    + (
                        ""
                        if same
                        else " with different values; the last one wins, rarely what was meant"
                    ),
                    key,
                )
            )
        else:
            first_line[key] = number
        env.values[key] = value
        env.lines[key] = number
    return env


def _parse_value(rest: str) -> tuple[str, str, tuple[Severity, str] | None]:
    """(value, comment, problem). Quoted values must close on the same line, as in compose."""
    if rest[:1] in _QUOTES:
        quote = rest[0]
        end = _closing_quote(rest, quote)
        if end < 0:
            return rest, "", ("error", f"unbalanced quotes: the opening {quote} is never closed")
        inner = rest[1:end]
        trailer = rest[end + 1 :]
        if trailer.strip() and not trailer.strip().startswith("#"):
            return inner, "", ("error", f"unexpected text after the closing {quote}")
        if quote == '"':
            inner = inner.replace('\\"', '"').replace("\\\\", "\\")
        return inner, trailer.rstrip() if trailer.strip() else "", None
    comment_at = _INLINE_COMMENT.search(rest)
    value = (rest[: comment_at.start()] if comment_at else rest).rstrip()
    comment = rest[len(value) :] if comment_at else ""
    if value[-1:] in _QUOTES:
        return (
            value,
            comment,
            ("warning", f"value ends with a stray {value[-1]} but does not start with one"),
        )
    return value, comment, None


def _closing_quote(text: str, quote: str) -> int:
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote == '"':
            i += 2
            continue
        if ch == quote:
            return i
        i += 1
    return -1
