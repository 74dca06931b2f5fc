"""`make report`: LLM usage from ClickHouse - calls, errors, retries, fallbacks, tokens, cost,
latency and TTFT.

    python -m scripts.report [--since 24h] [--by model|team|key|user|app] [--json | --csv]
                             [--env-file .env]

Reads otel.llm_calls (one row per LLM span, see clickhouse/initdb/100_llm_views.sql) as the
read-only user over ClickHouse's HTTP port on this machine. Settings come from the .env file
(scripts/envfile); variables already set in the environment win over it.

The work is split so tests can run each piece on their own: `build_report_sql` /
`build_totals_sql` (pure SQL text, run by the tests on chdb), `fetch` (clickhouse-connect,
errors turned into one-paragraph messages) and `render_table` / `render_json` / `render_csv`.
Exit codes: 0 for a report (an empty window included), 2 for anything that stopped it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.clickhouse_schema.endpoint import (
    Endpoint,
    EndpointError,
    external_endpoint,
)
from scripts.clickhouse_schema.errors import Target, diagnose
from scripts.envfile.parser import read_values
from scripts.envfile.spec import PLACEHOLDER

EXIT_ERROR = 2
DEFAULT_PORT = "8124"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReportError(Exception):
    """A condition the user can fix; `str()` is the one paragraph shown to them."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    endpoint: Endpoint
    user: str
    password: str
    database: str
    env_file: Path
    external: bool = False  # CLICKHOUSE_URL: not the stack's own container

    @property
    def url(self) -> str:
        return self.endpoint.url


def parse_window(text: str) -> int:
    """'30m', '24h', '7d', '2w', '90s' -> seconds."""
    match = _WINDOW.match(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window like 30m, 24h, 7d or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def read_env(env_file: Path, explicit: bool, environ: Mapping[str, str]) -> dict[str, str]:
    """The .env values overlaid by the process environment (which wins)."""
    if not env_file.is_file() and explicit:
        raise ReportError(
            f"The env file {env_file} does not exist. Pass the path of your .env with "
            "--env-file, or run `make init` in the repository root to create one."
        )
    return {**read_values(env_file), **environ}


def load_settings(
    env_file: Path, explicit: bool = False, environ: Mapping[str, str] | None = None
) -> Settings:
    env = read_env(env_file, explicit, os.environ if environ is None else environ)
    where = f"{env_file}" if env_file.is_file() else f"{env_file} (not found) or the environment"
    password = env.get("CLICKHOUSE_READER_PASSWORD", "")
    if not password or password == PLACEHOLDER:
        state = f"still the {PLACEHOLDER} placeholder" if password == PLACEHOLDER else "not set"
        raise ReportError(
            f"CLICKHOUSE_READER_PASSWORD is {state} in {where}. The report logs in to "
            "ClickHouse as the read-only user with it: run `make init` to create .env with "
            "generated passwords (before the first `make up`), or set it to the value the "
            "running ClickHouse was started with."
        )
    database = env.get("CLICKHOUSE_DATABASE") or "otel"
    if not _IDENTIFIER.match(database):
        raise ReportError(
            f"CLICKHOUSE_DATABASE={database!r} in {where} is not a plain database name."
        )
    try:
        endpoint = external_endpoint(env, env_file.resolve().parent)
    except EndpointError as exc:
        raise ReportError(f"{exc} (in {where}).") from exc
    if endpoint is None:
        port_text = env.get("CLICKHOUSE_HTTP_PORT") or DEFAULT_PORT
        if not port_text.isdigit():
            raise ReportError(
                f"CLICKHOUSE_HTTP_PORT={port_text!r} in {where} is not a port number."
            )
        endpoint = Endpoint(report_host(env), int(port_text), secure=False)
    return Settings(
        endpoint=endpoint,
        user=env.get("CLICKHOUSE_READER_USER") or "otel_reader",
        password=password,
        database=database,
        env_file=env_file,
        external=bool((env.get("CLICKHOUSE_URL") or "").strip()),
    )


def report_host(env: Mapping[str, str]) -> str:
    """127.0.0.1 unless the ports are published on one specific other address (BIND_ADDRESS)."""
    bind = (env.get("BIND_ADDRESS") or "").strip()
    return bind if bind and bind not in {"0.0.0.0", "::", "127.0.0.1", "localhost"} else "127.0.0.1"


# ---------------------------------------------------------------- SQL

# --by -> (group key expression, label expression, column heading). Labels are the aliases
# people recognise; the key is the stable id, so a renamed alias does not split a group.
GROUPINGS: dict[str, tuple[str, str, str]] = {
    "model": (
        "request_model",
        "arrayStringConcat(arraySort(groupUniqArray(provider)), ',')",
        "Model",
    ),
    "team": ("team_id", "anyLast(team_alias)", "Team"),
    "key": ("api_key_hash", "anyLast(api_key_alias)", "API key"),
    # The caller's `user` field (OpenAI convention), as LiteLLM records it.
    "user": ("end_user", "''", "End user"),
    # The calling app: a request tag `app:NAME` (docs/CLIENTS.md).
    "app": ("app", "''", "App"),
}

AGGREGATES = """
    count() AS calls,
    countIf(is_error) AS errors,
    -- Failed provider attempts LiteLLM retried or fell back from, and calls a fallback model
    -- group answered: neither is an error of the call (the client got its answer).
    sum(attempts - 1) AS retries,
    countIf(is_fallback) AS fallbacks,
    countIf(is_stream) AS streamed,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    sum(reasoning_output_tokens) AS reasoning_output_tokens,
    sum(cost_usd) AS cost_usd,
    quantile(0.5)(duration_ms) AS p50_ms,
    quantile(0.95)(duration_ms) AS p95_ms,
    quantile(0.5)(ttft_ms) AS p50_ttft_ms,
    quantile(0.95)(ttft_ms) AS p95_ttft_ms"""

COLUMNS = [
    "group_key",
    "label",
    "calls",
    "errors",
    "retries",
    "fallbacks",
    "streamed",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
    "cost_usd",
    "p50_ms",
    "p95_ms",
    "p50_ttft_ms",
    "p95_ttft_ms",
]


# Counts and token sums; the rest are text, cost and percentiles.
INTEGER_COLUMNS = tuple(
    c
    for c in COLUMNS
    if c in ("calls", "errors", "retries", "fallbacks", "streamed") or c.endswith("_tokens")
)


def window_filter(since_seconds: int) -> str:
    # Absolute instants on both sides, so the server's timezone plays no part.
    return f"timestamp >= now64(9) - toIntervalSecond({int(since_seconds)})"


def build_report_sql(by: str, since_seconds: int, database: str = "otel") -> str:
    """One row per model / team / key over the window, most expensive first."""
    key, label, _ = GROUPINGS[by]
    if not _IDENTIFIER.match(database):
        raise ValueError(f"bad database name {database!r}")
    return f"""SELECT
    {key} AS group_key,
    {label} AS label,{AGGREGATES}
FROM {database}.llm_calls
WHERE {window_filter(since_seconds)}
GROUP BY group_key
ORDER BY cost_usd DESC, calls DESC, group_key ASC"""


def build_totals_sql(since_seconds: int, database: str = "otel") -> str:
    """The same figures over the whole window (percentiles cannot be summed from the groups)."""
    if not _IDENTIFIER.match(database):
        raise ValueError(f"bad database name {database!r}")
    return f"""SELECT
    'TOTAL' AS group_key,
    '' AS label,{AGGREGATES}
FROM {database}.llm_calls
WHERE {window_filter(since_seconds)}"""


# ---------------------------------------------------------------- fetching


def connect(settings: Settings) -> Any:
    """A clickhouse-connect client; connection and login problems become ReportError."""
    import clickhouse_connect

    # clickhouse-connect logs its own warnings for the failures explained below: keep output clean.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    try:
        return clickhouse_connect.get_client(
            **settings.endpoint.client_options(),
            username=settings.user,
            password=settings.password,
            database=settings.database,
            connect_timeout=5,
            send_receive_timeout=60,
            query_retries=0,
            autogenerate_session_id=False,
        )
    except Exception as exc:
        raise explain(exc, settings) from exc


def fetch(client: Any, sql: str, settings: Settings) -> list[dict[str, Any]]:
    try:
        return list(client.query(sql).named_results())
    except Exception as exc:
        raise explain(exc, settings) from exc


def explain(exc: BaseException, settings: Settings) -> ReportError:
    """Turn a client or server failure into the paragraph that tells the user what to do
    (the same explanation `make verify` gives)."""
    target = Target(
        url=settings.url,
        user=settings.user,
        database=settings.database,
        external=settings.external,
    )
    return ReportError(diagnose(exc, target, f"{settings.database}.llm_calls").paragraph())


# ---------------------------------------------------------------- shaping and rendering


def clean_number(value: Any) -> Any:
    """NaN (a percentile of nothing) and NULL both mean 'no value'."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def normalise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = {col: clean_number(row.get(col)) for col in COLUMNS}
        for col in INTEGER_COLUMNS:
            item[col] = int(item[col] or 0)
        item["cost_usd"] = float(item["cost_usd"] or 0.0)
        out.append(item)
    return out


def group_title(row: Mapping[str, Any], by: str) -> str:
    """What a person reads in the first column."""
    group: str | None = row["group_key"]
    label: str | None = row["label"]
    if by == "model":
        return group or "(no model)"
    if not group:
        return {"team": "(no team)", "user": "(no user)", "app": "(no app)"}.get(by, "(no key)")
    if by == "key" and not label:
        return group[:12] + "…" if len(group) > 13 else group
    return f"{label} ({group[:12]})" if label and label != group else group


@dataclass(frozen=True)
class Report:
    by: str
    window: str
    since_seconds: int
    generated_at: dt.datetime
    rows: list[dict[str, Any]]
    totals: dict[str, Any]

    @property
    def since(self) -> dt.datetime:
        return self.generated_at - dt.timedelta(seconds=self.since_seconds)

    @property
    def empty(self) -> bool:
        calls: int = self.totals.get("calls", 0)
        return calls == 0


def render_json(report: Report) -> str:
    doc = {
        "by": report.by,
        "window": report.window,
        "window_seconds": report.since_seconds,
        "since": report.since.isoformat(timespec="seconds"),
        "until": report.generated_at.isoformat(timespec="seconds"),
        "rows": report.rows,
        "totals": report.totals,
    }
    if report.empty:
        doc["note"] = empty_note(report)
    return json.dumps(doc, indent=2)


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def empty_note(report: Report) -> str:
    return (
        f"No LLM calls in the last {report.window} (since {report.since:%Y-%m-%d %H:%M} UTC). "
        "Send one through the gateway, or run `make verify`; spans reach ClickHouse within "
        "seconds."
    )


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


TABLE_HEADINGS = (
    "Calls",
    "Errors",
    "Retries",
    "Fallbacks",
    "In tokens",
    "Cached in",
    "Out tokens",
    "Reasoning",
    "Cost USD",
    "p50 ms",
    "p95 ms",
    "TTFT p50 ms",
    "TTFT p95 ms",
)


def table_cells(row: Mapping[str, Any]) -> list[str]:
    """One row's figures as people read them (thousands separators, error share, '-' for none).
    The streamed count is in --json and --csv only: the table keeps to 200 columns."""
    share = f" ({row['errors'] / row['calls']:.0%})" if row["errors"] else ""
    return [
        f"{row['calls']:,}",
        f"{row['errors']:,}{share}",
        f"{row['retries']:,}",
        f"{row['fallbacks']:,}",
        f"{row['input_tokens']:,}",
        f"{row['cache_read_input_tokens']:,}",
        f"{row['output_tokens']:,}",
        f"{row['reasoning_output_tokens']:,}",
        f"{row['cost_usd']:,.6f}",
        _fmt_ms(row["p50_ms"]),
        _fmt_ms(row["p95_ms"]),
        _fmt_ms(row["p50_ttft_ms"]),
        _fmt_ms(row["p95_ttft_ms"]),
    ]


def render_table(report: Report, console: Any | None = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # A pipe or a file has no width; rich would assume 80 columns and elide the figures.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    if report.empty:
        console.print(empty_note(report))
        return
    table = Table(
        title=(
            f"LLM usage, last {report.window} "
            f"(since {report.since:%Y-%m-%d %H:%M} UTC), by {report.by}"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column(GROUPINGS[report.by][2], overflow="fold")
    for heading in TABLE_HEADINGS:
        table.add_column(heading, justify="right", no_wrap=True)
    for row in report.rows:
        table.add_row(group_title(row, report.by), *table_cells(row))
    table.add_section()
    table.add_row("Total", *table_cells(report.totals), style="bold")
    console.print(table)


# ---------------------------------------------------------------- command line


def build_report(
    client: Any, settings: Settings, by: str, window: str, since_seconds: int
) -> Report:
    rows = normalise(
        fetch(client, build_report_sql(by, since_seconds, settings.database), settings)
    )
    totals = normalise(fetch(client, build_totals_sql(since_seconds, settings.database), settings))[
        0
    ]
    return Report(
        by=by,
        window=window,
        since_seconds=since_seconds,
        generated_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        rows=rows,
        totals=totals,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.report",
        description=(
            "LLM usage from ClickHouse: calls, errors, tokens, cost, p50/p95 latency and TTFT."
        ),
    )
    parser.add_argument(
        "--since", default="24h", metavar="WINDOW", help="how far back: 30m, 24h (default), 7d, 2w"
    )
    parser.add_argument(
        "--by", choices=sorted(GROUPINGS), default="model", help="group rows by (default: model)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON for machines")
    output.add_argument("--csv", action="store_true", help="CSV rows for spreadsheets")
    parser.add_argument(
        "--env-file", type=Path, default=None, help="settings file (default: ./.env)"
    )
    args = parser.parse_args(argv)
    try:
        args.since_seconds = parse_window(args.since)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.env_file or Path(".env"), explicit=args.env_file is not None)
        client = connect(settings)
        try:
            report = build_report(client, settings, args.by, args.since.strip(), args.since_seconds)
        finally:
            client.close()
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(render_json(report))
    elif args.csv:
        sys.stdout.write(render_csv(report))
        if report.empty:
            print(empty_note(report), file=sys.stderr)
    else:
        render_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
