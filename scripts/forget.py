"""`make forget user=ID` (or `conversation=ID`, `app=NAME`): delete that data from ClickHouse.

Every MergeTree table of the telemetry database is searched, so a table added later is covered
without a change here: its attribute maps (spans, logs, metric points) by the attribute keys
that carry the id, its own columns by name (an aggregate that keeps `user_id`, say). Rows are
counted, then deleted with `ALTER TABLE ... DELETE` (parts rewritten, not only hidden), waited
for; running it again finds nothing and deletes nothing. Runs as the ClickHouse admin only.
Langfuse and AgentOps keep copies of their own: what to do there is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.clickhouse_schema.apply import SchemaError, connect
from scripts.clickhouse_schema.endpoint import EndpointError, external_endpoint
from scripts.clickhouse_schema.files import REPO_ROOT, TELEMETRY_DATABASE
from scripts.envfile.parser import read_values
from scripts.envfile.spec import PLACEHOLDER
from scripts.span_contract import contract

# What identifies each kind: attribute keys (in span, log and metric attribute maps), and the
# column names an aggregate would give them.
KEYS: dict[str, tuple[str, ...]] = {
    "user": (contract.LITELLM_END_USER, contract.LITELLM_USER_ID),
    "conversation": (contract.GEN_AI_CONVERSATION_ID,),
    "app": (contract.LITELLM_APP,),
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("end_user", "user_id"),
    "conversation": ("conversation_id",),
    "app": ("app",),
}
ATTRIBUTE_MAPS = ("SpanAttributes", "LogAttributes", "Attributes")
ADMIN_USER = "admin"  # fixed by clickhouse/users.d

# (sql, parameters) -> rows; one per transport (HTTP client, the bundled server's own client).
Run = Callable[[str, Mapping[str, str]], list[tuple[Any, ...]]]


class ForgetError(Exception):
    """What the user must fix; the message says how."""


@dataclass(frozen=True)
class Deleted:
    table: str
    rows: int


def conditions(columns: Sequence[str], kind: str) -> list[str]:
    """The WHERE terms for one table with these columns ({id:String} is the value)."""
    terms = [
        f"{column}['{key}'] = {{id:String}}"
        for column in ATTRIBUTE_MAPS
        if column in columns
        for key in KEYS[kind]
    ]
    terms += [f"{column} = {{id:String}}" for column in COLUMNS[kind] if column in columns]
    return terms


def tables_holding(run: Run, kind: str) -> dict[str, str]:
    """{table: WHERE clause} for every table of the database that can hold this kind's id."""
    rows = run(
        "SELECT c.table, groupArray(c.name) FROM system.columns AS c "
        "INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = {db:String} AND t.engine LIKE '%MergeTree' "
        "GROUP BY c.table ORDER BY c.table",
        {"db": TELEMETRY_DATABASE},
    )
    found = {}
    for table, columns in rows:
        terms = conditions(list(columns), kind)
        if terms:
            found[str(table)] = " OR ".join(terms)
    return found


def trace_ids(run: Run, where: Mapping[str, str], value: str) -> list[str]:
    """The traces that hold this id (what a Langfuse or AgentOps copy is found by)."""
    ids: set[str] = set()
    for table, clause in where.items():
        if table.startswith("otel_traces"):
            sql = f"SELECT DISTINCT TraceId FROM {TELEMETRY_DATABASE}.`{table}` WHERE {clause}"
            ids.update(str(row[0]) for row in run(sql, {"id": value}))
    return sorted(ids)


def forget(run: Run, kind: str, value: str) -> list[Deleted]:
    """Delete every row carrying `value` as this kind's id; what each table held."""
    if kind not in KEYS:
        raise ForgetError(f"forget what? one of {', '.join(KEYS)}")
    if not value:
        raise ForgetError(f"{kind}= is empty: name the {kind} to forget")
    deleted = []
    for table, clause in tables_holding(run, kind).items():
        qualified = f"{TELEMETRY_DATABASE}.`{table}`"
        count = int(run(f"SELECT count() FROM {qualified} WHERE {clause}", {"id": value})[0][0])
        if count:
            run(
                f"ALTER TABLE {qualified} DELETE WHERE {clause} SETTINGS mutations_sync = 2",
                {"id": value},
            )
        deleted.append(Deleted(table, count))
    return deleted


# ---------------------------------------------------------------- transports


def http_runner(client: Any) -> Run:
    """Through clickhouse-connect (an external server, or the tests' engine)."""

    def run(sql: str, parameters: Mapping[str, str]) -> list[tuple[Any, ...]]:
        if sql.startswith("ALTER"):
            client.command(sql, parameters=dict(parameters))
            return []
        return [tuple(row) for row in client.query(sql, parameters=dict(parameters)).result_rows]

    return run


def bundled_runner(password: str) -> Run:
    """Through the bundled server's own client: its admin logs in from inside only."""
    compose = (os.environ.get("COMPOSE") or "docker compose").split()
    script = 'exec clickhouse-client --user "$1" --password "$FORGET_PASSWORD" "${@:2}"'

    def run(sql: str, parameters: Mapping[str, str]) -> list[tuple[Any, ...]]:
        params = [f"--param_{key}={value}" for key, value in parameters.items()]
        exec_in = [*compose, "exec", "-T", "-e", "FORGET_PASSWORD", "clickhouse"]
        client = [ADMIN_USER, *params, "--format", "TabSeparated", "--query", sql]
        done = subprocess.run(
            [*exec_in, "bash", "-c", script, "forget", *client],
            env={**os.environ, "FORGET_PASSWORD": password},
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise ForgetError(f"ClickHouse refused: {done.stderr.strip() or done.stdout.strip()}")
        return [_tsv_row(line) for line in done.stdout.splitlines() if line]

    return run


def _tsv_row(line: str) -> tuple[Any, ...]:
    fields: list[Any] = []
    for field in line.split("\t"):
        if field.startswith("[") and field.endswith("]"):  # groupArray: ['a','b']
            fields.append([part.strip("'") for part in field[1:-1].split(",") if part])
        else:
            fields.append(field)
    return tuple(fields)


# ---------------------------------------------------------------- the command


def admin_password(values: Mapping[str, str]) -> str:
    password = (values.get("CLICKHOUSE_ADMIN_PASSWORD") or "").strip()
    if not password or password == PLACEHOLDER:
        raise ForgetError(
            "make forget deletes as the ClickHouse admin: set CLICKHOUSE_ADMIN_PASSWORD in .env"
        )
    return password


def overlay_advice(
    values: Mapping[str, str], kind: str, value: str, traces: list[str]
) -> list[str]:
    """What the user must do by hand where the collector sent copies."""
    compose_file = values.get("COMPOSE_FILE") or ""
    ids = ", ".join(traces) if traces else "(none found now; if deleted earlier, use those)"
    lines = []
    if "langfuse/" in compose_file:
        lines += [
            f"Langfuse keeps its own copy of these traces: {ids}",
            "  delete them in its UI (Traces, select, Delete) or through its public API:",
            '  curl -u "$LANGFUSE_INIT_PROJECT_PUBLIC_KEY:$LANGFUSE_INIT_PROJECT_SECRET_KEY" '
            "-X DELETE http://127.0.0.1:3000/api/public/traces "
            '-H "Content-Type: application/json" -d \'{"traceIds": [...]}\'',
        ]
    if "agentops/" in compose_file or values.get("AGENTOPS_OTLP_ENDPOINT"):
        lines += [
            f"AgentOps keeps its own copy of these traces: {ids}",
            "  delete them in your AgentOps deployment (its dashboard, or its database).",
        ]
    if lines:
        lines.insert(0, f"Copies outside ClickHouse for {kind}={value}:")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make forget", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=REPO_ROOT / ".env")
    args = parser.parse_args(argv)
    # make passes user=, conversation= and app= as these variables (no shell quoting involved).
    chosen = {kind: os.environ.get(f"FORGET_{kind.upper()}", "") for kind in KEYS}
    chosen = {kind: value for kind, value in chosen.items() if value}
    values = {**read_values(args.env_file), **os.environ}
    try:
        if len(chosen) != 1:
            raise ForgetError("name exactly one: make forget user=ID | conversation=ID | app=NAME")
        ((kind, value),) = chosen.items()
        password = admin_password(values)
        if (values.get("CLICKHOUSE_CLUSTER") or "").strip():
            raise ForgetError(
                "CLICKHOUSE_CLUSTER is set: a cluster is not handled yet. Run it once per shard "
                "with CLICKHOUSE_URL naming one of that shard's servers and CLICKHOUSE_CLUSTER "
                "unset (a replicated table's delete reaches the shard's other replicas)"
            )
        endpoint = external_endpoint(values, args.env_file.resolve().parent)
        if endpoint is None:
            run = bundled_runner(password)
        else:
            run = http_runner(connect(endpoint, {**values, "CLICKHOUSE_ADMIN_USER": ADMIN_USER}))
        traces = trace_ids(run, tables_holding(run, kind), value)
        deleted = forget(run, kind, value)
    except (ForgetError, SchemaError, EndpointError) as exc:
        print(f"make forget: {exc}", file=sys.stderr)
        return 2
    for item in deleted:
        print(f"  {item.table:<40} {item.rows:>8} rows deleted")
    print(f"{kind}={value}: {sum(item.rows for item in deleted)} rows deleted in ClickHouse")
    for line in overlay_advice(values, kind, value, traces):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
