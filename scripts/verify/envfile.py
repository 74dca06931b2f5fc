"""A strict `.env` reader that reports what python-dotenv silently tolerates.

python-dotenv (and compose) skip or guess on lines without `=`, unterminated quotes and repeated
keys; a doctor has to point at those lines instead, so this module parses the file itself and
keeps the line number of every key and every problem. Values are never echoed in messages:
`.env` holds secrets and the output ends up in CI logs and bug reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .model import State

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUOTES = ("'", '"')


@dataclass(frozen=True)
class EnvIssue:
    """A problem found in the file. line is 1-based; 0 means the file as a whole."""

    line: int
    level: State
    message: str
    key: str | None = None

    def render(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class EnvFile:
    path: Path
    exists: bool = True
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line of the definition that wins
    issues: list[EnvIssue] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


def load_env_file(path: Path) -> EnvFile:
    if not path.is_file():
        return EnvFile(path=path, exists=False)
    # utf-8-sig drops the BOM some Windows editors add; it would glue itself to the first key.
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return parse_env_text(text, path)


def parse_env_text(text: str, path: Path = Path(".env")) -> EnvFile:
    env = EnvFile(path=path)
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.rstrip("\r").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):  # accepted by compose and shells alike
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            # Echo the text only when it looks like a bare key: anything else may be a secret.
            shown = f"'{key}'" if KEY_RE.match(key) else "this line"
            env.issues.append(
                EnvIssue(number, State.FAIL, f"no '=' in {shown} (expected KEY=value)")
            )
            continue
        if not KEY_RE.match(key):
            env.issues.append(
                EnvIssue(
                    number,
                    State.FAIL,
                    "invalid key name (letters, digits and '_' only, not starting with a digit)",
                )
            )
            continue
        value, problem = _parse_value(rest.strip())
        if problem is not None:
            level, message = problem
            env.issues.append(EnvIssue(number, level, f"{key}: {message}", key))
            if level is State.FAIL:
                continue
        if key in env.values:
            same = env.values[key] == value
            env.issues.append(
                EnvIssue(
                    number,
                    State.WARN if same else State.FAIL,
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


def _parse_value(rest: str) -> tuple[str, tuple[State, str] | None]:
    """Return (value, problem). Quoted values must close on the same line, as in compose."""
    if rest[:1] in _QUOTES:
        quote = rest[0]
        end = _closing_quote(rest, quote)
        if end < 0:
            return rest, (State.FAIL, f"unbalanced quotes: the opening {quote} is never closed")
        inner = rest[1:end]
        trailer = rest[end + 1 :].strip()
        if trailer and not trailer.startswith("#"):
            return inner, (State.FAIL, f"unexpected text after the closing {quote}")
        if quote == '"':
            inner = inner.replace('\\"', '"').replace("\\\\", "\\")
        return inner, None
    # Unquoted: ' #' starts an inline comment (compose semantics); a '#' inside a word is kept.
    value = re.split(r"\s#", rest, maxsplit=1)[0].rstrip()
    if value[-1:] in _QUOTES:
        return value, (
            State.WARN,
            f"value ends with a stray {value[-1]} but does not start with one",
        )
    return value, None


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
