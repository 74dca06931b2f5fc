"""One explanation per ClickHouse failure, shared by `make report` and `make verify`.

Each failure gets what happened and a fix that fits where ClickHouse runs: the bundled
container (the stack creates its users from .env) or an external server (CLICKHOUSE_URL; the
user's DBA created the users as docs/SCALING.md shows). `make schema` is the fix for a missing
schema in both. Stdlib only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .endpoint import tls_problem

# ClickHouse error codes (src/Common/ErrorCodes.cpp).
AUTH_CODES = frozenset({192, 193, 516})  # UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED
UNKNOWN_DATABASE = 81
UNKNOWN_TABLE = 60
COLUMN_CODES = frozenset({16, 47})  # NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_IDENTIFIER
ACCESS_DENIED = 497

FIX_SCHEMA = "make schema   # applies clickhouse/initdb as admin; idempotent, keeps data"
FIX_LOGS = "make logs s=clickhouse"
USERS_DOC = "docs/SCALING.md (External ClickHouse)"

# Client-side symptoms of a server that is down or not listening there.
_REFUSED = (
    "connection refused",
    "failed to establish",
    "name or service not known",
    "connection reset",
    "remote end closed",
    "max retries exceeded",
)
_TIMEOUT = re.compile(r"timed? ?out", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """The ClickHouse a script talked to, as the explanation names it."""

    url: str  # as the message names it: host:port or the external URL
    user: str
    database: str
    external: bool  # CLICKHOUSE_URL is set: not the stack's own container
    password_key: str = "CLICKHOUSE_READER_PASSWORD"  # the user names are fixed
    timeout_s: float | None = None  # the client's limit, to say how long it waited


@dataclass(frozen=True)
class Diagnosis:
    summary: str  # what happened, one line
    fix: str  # a command or the one step to take
    server: str = ""  # the server's own sentence, when it answered
    detail: str = ""  # why the fix is the fix

    def paragraph(self) -> str:
        """For a CLI error: what happened, the server's words, then the fix."""
        parts = [self.summary.rstrip(".") + "."]
        if self.server:
            parts.append(f"ClickHouse said: {self.server}")
        if self.detail:
            parts.append(self.detail.rstrip(".") + ".")
        command, _, comment = self.fix.partition("   # ")
        parts.append(f"Fix: `{command}`" + (f" ({comment})." if comment else "."))
        return " ".join(parts)


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code a driver exception carries (attribute or 'Code: N' text)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    # "Code: 60. DB::Exception: ..." (the colon keeps an HTTP "status code 500" out).
    match = re.search(r"\bcode:\s*(\d+)", " | ".join(map(str, _chain(exc))), re.IGNORECASE)
    return int(match.group(1)) if match else None


def server_message(text: str) -> str:
    """The server's own sentence, without the driver's wrapping and the version trailer."""
    match = re.search(r"DB::Exception: (.*?)(?: \(version [^)]*\))?(?: \(for url .*)?$", text, re.S)
    found = (match.group(1) if match else "").strip()
    return found.splitlines()[0][:300] if found else ""


def diagnose(exc: BaseException, target: Target, table: str | None = None) -> Diagnosis:
    """What went wrong talking to ClickHouse and the fix, for the bundled or external server."""
    text = " | ".join(f"{type(link).__name__}: {link}" for link in _chain(exc))
    code = error_code(exc)
    server = server_message(text)
    if code is None:
        return _transport(text, target)
    if code in AUTH_CODES:
        return _auth(code, server, target)
    if code in (UNKNOWN_DATABASE, UNKNOWN_TABLE):
        missing = f"table or view {table or '?'}"
        if code == UNKNOWN_DATABASE:
            missing = f"database {target.database}"
        return Diagnosis(
            f"{missing} is missing on {target.url} (code {code})",
            FIX_SCHEMA,
            server,
            "the schema in clickhouse/initdb is missing or older than this checkout; "
            "`make schema` is the same command for the bundled and an external ClickHouse",
        )
    if code in COLUMN_CODES:
        return Diagnosis(
            f"{table or 'a table'} on {target.url} lacks a column this script reads (code {code})",
            FIX_SCHEMA,
            server,
            "the schema is older than this checkout's scripts (scripts/clickhouse_schema/names.py)",
        )
    if code == ACCESS_DENIED:
        fix = (
            f"grant it as {USERS_DOC} shows: GRANT SELECT ON {target.database}.* TO {target.user}"
            if target.external
            else "check the <grants> of the users in clickhouse/users.d/otel-users.xml"
        )
        return Diagnosis(
            f"{target.user} may not read {table or target.database} on {target.url} (code 497)",
            fix,
            server,
        )
    return Diagnosis(f"{target.url}: ClickHouse error {code}", FIX_LOGS, server)


def _auth(code: int, server: str, target: Target) -> Diagnosis:
    if target.external:
        return Diagnosis(
            f"{target.url} rejected user '{target.user}' (code {code})",
            f"create the user, or set its password in .env, as {USERS_DOC} shows",
            server,
            f"{target.password_key} in .env must be the password of {target.user} on that server",
        )
    return Diagnosis(
        f"ClickHouse at {target.url} rejected user '{target.user}' (code {code})",
        "docker compose up -d --force-recreate clickhouse   # after editing .env",
        server,
        f"{target.password_key} in .env must match the server's, which the container takes "
        "from .env when it is created: a plain restart keeps the old password",
    )


def _transport(text: str, target: Target) -> Diagnosis:
    tls = tls_problem(text)
    if tls:
        return Diagnosis(
            f"TLS handshake with {target.url} failed",
            "set CLICKHOUSE_CA_FILE=path/to/ca.pem in .env   # the CA that signed the server's",
            detail=tls,
        )
    low = text.lower()
    if _TIMEOUT.search(text):
        fix = (
            "check that this host may reach CLICKHOUSE_URL (firewall, IP allow list)"
            if target.external
            else FIX_LOGS
        )
        limit = f"within {target.timeout_s:g}s" if target.timeout_s else "in time"
        summary = f"no answer from {target.url} {limit}"
        return Diagnosis(summary, fix, detail=_first(text))
    if any(symptom in low for symptom in _REFUSED):
        if target.external:
            return Diagnosis(
                f"cannot reach the external ClickHouse at {target.url} (connection refused)",
                "check CLICKHOUSE_URL in .env and that the server is up",
                detail=_first(text),
            )
        return Diagnosis(
            f"ClickHouse is not running: connection refused on {target.url}",
            "make up   # then, if it keeps failing: make logs s=clickhouse",
            detail="CLICKHOUSE_HTTP_PORT in .env must be the port compose published",
        )
    return Diagnosis(f"{target.url}: {_first(text)}", FIX_LOGS)


def _first(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0][:300] if stripped else "no message"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes: drivers wrap the socket error they saw."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen
