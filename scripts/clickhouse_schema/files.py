"""The owned ClickHouse schema's files (clickhouse/initdb/*.sql): their order and statements.

The server image runs these files through `clickhouse-client --multiquery` on a fresh volume.
The native stack and the tests run the very same files statement by statement through
`apply_schema(execute)`, where `execute(sql)` runs one statement (chdb, clickhouse-connect, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
INITDB_DIR = REPO_ROOT / "clickhouse" / "initdb"

TELEMETRY_DATABASE = "otel"  # fixed in the initdb files; CLICKHOUSE_DATABASE must match

Execute = Callable[[str], Any]


def split_sql(text: str) -> list[str]:
    """Split a multi-statement SQL script on top-level semicolons.

    Semicolons inside quoted strings ('...', with '' or backslash escapes), quoted identifiers
    (`...`, "..."), `--` line comments and /* ... */ block comments do not end a statement.
    (ClickHouse also reads `#` comments; the initdb files do not use them.) Pieces holding
    nothing but comments and whitespace are dropped, so a file may end with a comment.
    """
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            current.append(text[i:end])
            i = end
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            current.append(text[i:end])
            i = end
        elif ch in "'`\"":
            end = _end_of_quoted(text, i)
            current.append(text[i:end])
            has_code = True
            i = end
        elif ch == ";":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
            i += 1
        else:
            current.append(ch)
            has_code = has_code or not ch.isspace()
            i += 1
    if has_code:
        statements.append("".join(current).strip())
    return statements


def _end_of_quoted(text: str, start: int) -> int:
    """Index just past the quoted token opening at `start` (doubled quote or backslash escapes)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError(f"unterminated {quote} quote starting at offset {start}")


def initdb_files(directory: Path = INITDB_DIR) -> list[Path]:
    """The initdb SQL files in the order the image's entrypoint runs them (by name)."""
    files = sorted(directory.glob("*.sql"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no *.sql files in {directory}")
    return files


def apply_schema(execute: Execute, directory: Path = INITDB_DIR) -> list[str]:
    """Run every statement of every initdb file in order; return the file names applied.

    A failing statement raises RuntimeError naming the file and the statement, with the
    engine's error chained, so a broken migration points at its own line of SQL.
    """
    applied: list[str] = []
    for path in initdb_files(directory):
        for statement in split_sql(path.read_text(encoding="utf-8")):
            try:
                execute(statement)
            except Exception as exc:
                raise RuntimeError(
                    f"{path.name}: statement failed: {exc}\n---\n{statement}"
                ) from exc
        applied.append(path.name)
    return applied


def file_version(path: Path) -> int:
    """The schema_version a file records: its number prefix (`110_usage_and_apps.sql` -> 110)."""
    prefix = path.name.split("_", 1)[0]
    if not prefix.isdigit():
        raise ValueError(f"{path.name}: initdb files are named NNN_name.sql")
    return int(prefix)


def latest_version(directory: Path = INITDB_DIR) -> int:
    """The version a fully migrated database reports: the last initdb file's number."""
    return file_version(initdb_files(directory)[-1])
