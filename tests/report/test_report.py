"""`make report` (scripts/report.py): its SQL on the real engine (chdb), its rendering and its CLI.

The report's SQL text is run directly on chdb over exporter-shaped fixture spans and checked
against figures computed here from the fixture. The CLI is run as a subprocess for its error
paths (a closed port, a missing key) and, through the chdb HTTP adapter (a ClickHouse-HTTP
server over chdb, scripts/native_stack/chdb_server/), end to end with --json.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import report
from scripts.clickhouse_schema.files import REPO_ROOT
from tests.support.chdb_engine import (
    ADMIN_PASSWORD,
    READER_PASSWORD,
    FreshOtelDatabase,
    SchemaServer,
)
from tests.support.span_rows import LlmCall, http_server_span, insert_span_rows, quantile_linear

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ALICE = {
    "team_id": "team-1",
    "team_alias": "Research",
    "key_hash": "hash-alice",
    "key_alias": "alice",
    "end_user": "customer-a",
    "app": "crm",
}
BOB = {
    "team_id": "team-2",
    "team_alias": "Support",
    "key_hash": "hash-bob",
    "key_alias": "bob",
    "end_user": "customer-b",
    "app": "chat-ui",
}


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def fixture_calls() -> list[LlmCall]:
    """Calls 5 minutes, 2 hours, 3 days and 10 days back, so each window sees a different set."""
    return [
        LlmCall("gpt-mini", ago(minutes=9), 200.0, 100, 50, 0.0015, **ALICE),
        LlmCall(
            "gpt-mini",
            ago(minutes=8),
            400.0,
            200,
            80,
            0.003,
            stream=True,
            ttft_s=0.12,
            cache_read=150,
            cache_creation=20,
            reasoning=64,
            **ALICE,
        ),
        LlmCall("gpt-mini", ago(minutes=7), 50.0, error_type="RateLimitError", **BOB),
        LlmCall("verify-mock", ago(minutes=6), 100.0, 10, 5, 5e-7, stream=True, ttft_s=0.05),
        LlmCall("verify-mock", ago(hours=2), 300.0, 20, 10, 0.00001),
        LlmCall(
            "gpt-mini", ago(hours=2, minutes=1), 800.0, 300, 120, 0.0045, cache_read=256, **ALICE
        ),
        LlmCall("gpt-mini", ago(days=3), 1200.0, 1000, 400, 0.01, stream=True, ttft_s=0.4, **BOB),
        LlmCall("text-embed", ago(days=10), 20.0, 30, 0, 0.000003, operation="embeddings", **ALICE),
    ]


def in_window(calls: list[LlmCall], seconds: int) -> list[LlmCall]:
    return [c for c in calls if c.start >= NOW - dt.timedelta(seconds=seconds)]


def expected_rows(calls: list[LlmCall], key: str | None) -> dict[str, dict[str, Any]]:
    """The figures the report must show per group (None: one group of everything)."""
    groups: dict[str, list[LlmCall]] = {}
    for call in calls:
        groups.setdefault(getattr(call, key) if key else "TOTAL", []).append(call)
    out = {}
    for group, members in groups.items():
        ok = [c for c in members if not c.error_type]
        ttfts = [c.ttft_s * 1000 for c in members if c.ttft_s is not None]
        durations = [c.duration_ms for c in members]
        out[group] = {
            "calls": len(members),
            "errors": len(members) - len(ok),
            "streamed": sum(c.stream for c in members),
            "input_tokens": sum(c.input_tokens for c in ok),
            "output_tokens": sum(c.output_tokens for c in ok),
            "cache_read_input_tokens": sum(c.cache_read or 0 for c in ok),
            "cache_creation_input_tokens": sum(c.cache_creation or 0 for c in ok),
            "reasoning_output_tokens": sum(c.reasoning or 0 for c in ok),
            "cost_usd": sum(c.cost or 0.0 for c in members),
            "p50_ms": quantile_linear(durations, 0.5),
            "p95_ms": quantile_linear(durations, 0.95),
            "p50_ttft_ms": quantile_linear(ttfts, 0.5) if ttfts else None,
            "p95_ttft_ms": quantile_linear(ttfts, 0.95) if ttfts else None,
        }
    return out


def assert_figures(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for name, value in want.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-9), f"{where}: {name}"
        else:
            assert got[name] == value, f"{where}: {name}"
    assert got["total_tokens"] == want["input_tokens"] + want["output_tokens"], where


# ---------------------------------------------------------------- the SQL on chdb


@pytest.fixture(scope="module")
def calls() -> list[LlmCall]:
    # The windows are read against the engine's clock when the tests query, which may be many
    # minutes after collection (the Docker tests run first): anchor the data now, not at import.
    global NOW
    NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return fixture_calls()


@pytest.fixture(scope="module")
def db_with_calls(fresh_otel_db: FreshOtelDatabase, calls: list[LlmCall]) -> FreshOtelDatabase:
    """`otel` holding the calls above and an HTTP server span beside each."""
    noise = [http_server_span(c.start, c.duration_ms + 5) for c in calls]
    insert_span_rows(fresh_otel_db.execute, [c.row() for c in calls] + noise)
    return fresh_otel_db


def run(db: FreshOtelDatabase, sql: str) -> list[dict[str, Any]]:
    return report.normalise(db.rows(sql))


WINDOWS = {"30m": 1800, "24h": 86400, "7d": 604800, "30d": 2592000}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_by_model_over_each_window(
    db_with_calls: FreshOtelDatabase, calls: list[LlmCall], window: str
) -> None:
    seconds = report.parse_window(window)
    assert seconds == WINDOWS[window]
    rows = run(db_with_calls, report.build_report_sql("model", seconds))
    want = expected_rows(in_window(calls, seconds), "model")
    assert {r["group_key"] for r in rows} == set(want), window
    for row in rows:
        assert_figures(row, want[row["group_key"]], f"{window}/{row['group_key']}")
    costs = [r["cost_usd"] for r in rows]
    assert costs == sorted(costs, reverse=True), "most expensive first"


def test_by_team_and_key_labels(db_with_calls: FreshOtelDatabase, calls: list[LlmCall]) -> None:
    seconds = WINDOWS["24h"]
    recent = in_window(calls, seconds)
    teams = {
        r["group_key"]: r for r in run(db_with_calls, report.build_report_sql("team", seconds))
    }
    want = expected_rows(recent, "team_id")
    assert set(teams) == set(want) == {"team-1", "team-2", ""}
    for team, row in teams.items():
        assert_figures(row, want[team], f"team {team!r}")
    assert teams["team-1"]["label"] == "Research"
    assert report.group_title(teams["team-1"], "team") == "Research (team-1)"
    assert report.group_title(teams[""], "team") == "(no team)"

    keys = {r["group_key"]: r for r in run(db_with_calls, report.build_report_sql("key", seconds))}
    assert set(keys) == {"hash-alice", "hash-bob", "litellm_proxy_master_key"}
    assert keys["hash-bob"]["label"] == "bob" and keys["hash-bob"]["errors"] == 1


def test_by_end_user(db_with_calls: FreshOtelDatabase, calls: list[LlmCall]) -> None:
    seconds = report.parse_window("30d")
    users = {
        r["group_key"]: r for r in run(db_with_calls, report.build_report_sql("user", seconds))
    }
    want_rows = expected_rows(in_window(calls, seconds), "end_user")
    assert {"customer-a", "customer-b"} <= set(want_rows)
    for user, want in want_rows.items():
        assert_figures(users[user], want, f"user {user!r}")
    # The end user is named by its own id, never by the key's internal user (Open WebUI's users
    # all call with one key, whose user is LiteLLM's `default_user_id`).
    assert report.group_title(users["customer-a"], "user") == "customer-a"


def test_by_app(db_with_calls: FreshOtelDatabase, calls: list[LlmCall]) -> None:
    seconds = report.parse_window("30d")
    apps = {r["group_key"]: r for r in run(db_with_calls, report.build_report_sql("app", seconds))}
    want_rows = expected_rows(in_window(calls, seconds), "app")
    assert {"crm", "chat-ui", ""} <= set(want_rows)  # "": calls that named no app
    for app, want in want_rows.items():
        assert_figures(apps[app], want, f"app {app!r}")
    assert report.group_title({"group_key": "", "label": ""}, "app") == "(no app)"


def test_totals_cover_the_whole_window(
    db_with_calls: FreshOtelDatabase, calls: list[LlmCall]
) -> None:
    seconds = WINDOWS["7d"]
    (totals,) = run(db_with_calls, report.build_totals_sql(seconds))
    want = expected_rows(in_window(calls, seconds), None)["TOTAL"]
    assert_figures(totals, want, "totals")


def test_sql_is_a_pure_read(db_with_calls: FreshOtelDatabase) -> None:
    """The reader's profile is readonly=1: the report must not need to write or change settings."""
    for sql in (report.build_report_sql("team", 3600), report.build_totals_sql(3600)):
        db_with_calls.query(sql + "\nSETTINGS readonly = 1", "JSONEachRow")


def test_empty_window(db_with_calls: FreshOtelDatabase) -> None:
    seconds = report.parse_window("1s")
    rows = run(db_with_calls, report.build_report_sql("model", seconds))
    (totals,) = run(db_with_calls, report.build_totals_sql(seconds))
    assert rows == [] and totals["calls"] == 0 and totals["p50_ms"] is None
    built = report.Report("model", "1s", seconds, NOW, rows, totals)
    assert built.empty
    doc = json.loads(report.render_json(built))
    assert doc["rows"] == [] and "No LLM calls in the last 1s" in doc["note"]


# ---------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def built(db_with_calls: FreshOtelDatabase) -> report.Report:
    seconds = WINDOWS["24h"]
    rows = run(db_with_calls, report.build_report_sql("model", seconds))
    (totals,) = run(db_with_calls, report.build_totals_sql(seconds))
    return report.Report("model", "24h", seconds, NOW, rows, totals)


def test_render_json(built: report.Report) -> None:
    doc = json.loads(report.render_json(built))
    assert doc["by"] == "model" and doc["window_seconds"] == 86400
    assert [r["group_key"] for r in doc["rows"]] == [r["group_key"] for r in built.rows]
    assert doc["totals"]["calls"] == sum(r["calls"] for r in doc["rows"]) == 6
    assert "note" not in doc


def test_render_csv(built: report.Report) -> None:
    parsed = list(csv.DictReader(io.StringIO(report.render_csv(built))))
    assert list(parsed[0]) == report.COLUMNS
    assert {r["group_key"] for r in parsed} == {"gpt-mini", "verify-mock"}
    verify = next(r for r in parsed if r["group_key"] == "verify-mock")
    assert verify["calls"] == "2" and float(verify["cost_usd"]) == pytest.approx(1.05e-5)


def test_render_table(built: report.Report) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    report.render_table(built, console)
    text = console.export_text()
    assert "gpt-mini" in text and "verify-mock" in text and "Total" in text
    assert "1 (25%)" in text, "gpt-mini: one error in four calls"
    assert "Cached in" in text and "Reasoning" in text


# ---------------------------------------------------------------- settings


def test_parse_window() -> None:
    assert [report.parse_window(w) for w in ("90s", "30m", "24h", "7d", "2w")] == [
        90,
        1800,
        86400,
        604800,
        1209600,
    ]
    for bad in ("0h", "24", "1y", "-1d", ""):
        with pytest.raises(Exception, match="not a window"):
            report.parse_window(bad)


def test_settings_env_file_then_environment(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "CLICKHOUSE_HTTP_PORT=9999\nCLICKHOUSE_READER_PASSWORD=from-file\n"
        "CLICKHOUSE_READER_USER=otel_reader\nBIND_ADDRESS=0.0.0.0\n"
    )
    settings = report.load_settings(env, environ={"CLICKHOUSE_READER_PASSWORD": "from-env"})
    assert (settings.endpoint.host, settings.endpoint.port) == ("127.0.0.1", 9999)
    assert settings.password == "from-env"
    assert settings.database == "otel"
    assert (
        report.load_settings(env, environ={"BIND_ADDRESS": "10.1.2.3"}).endpoint.host == "10.1.2.3"
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("CLICKHOUSE_HTTP_PORT=8124\n", "CLICKHOUSE_READER_PASSWORD is not set"),
        ("CLICKHOUSE_READER_PASSWORD=CHANGEME # CHANGEME\n", "still the CHANGEME placeholder"),
        ("CLICKHOUSE_READER_PASSWORD=x\nCLICKHOUSE_HTTP_PORT=eighty\n", "not a port number"),
    ],
)
def test_settings_errors(tmp_path: Path, content: str, needle: str) -> None:
    env = tmp_path / ".env"
    env.write_text(content)
    with pytest.raises(report.ReportError, match=needle):
        report.load_settings(env, environ={})


# ---------------------------------------------------------------- the CLI as a subprocess


def clean_environ() -> dict[str, str]:
    """The caller's environment without settings that would override the test's env file."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLICKHOUSE_") and k != "BIND_ADDRESS"
    }


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.report", *args],
        cwd=REPO_ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_env(path: Path, port: int, password: str) -> Path:
    path.write_text(
        f"CLICKHOUSE_HTTP_PORT={port}\nCLICKHOUSE_READER_USER=otel_reader\n"
        f"CLICKHOUSE_READER_PASSWORD={password}\nCLICKHOUSE_DATABASE=otel\n"
    )
    return path


def one_paragraph(stderr: str) -> str:
    text = stderr.strip()
    assert text.startswith("error: ") and "\n" not in text and "Traceback" not in text, stderr
    return text


def test_cli_unreachable_clickhouse(tmp_path: Path) -> None:
    port = closed_port()
    result = run_cli("--env-file", str(write_env(tmp_path / ".env", port, "x")))
    assert result.returncode == 2, result
    message = one_paragraph(result.stderr)
    assert f"127.0.0.1:{port}" in message and "connection refused" in message
    assert "`make up`" in message and "make logs s=clickhouse" in message
    assert result.stdout == ""


def test_cli_missing_env_keys(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("CLICKHOUSE_HTTP_PORT=8124\n")
    result = run_cli("--json", "--env-file", str(env))
    assert result.returncode == 2
    message = one_paragraph(result.stderr)
    assert "CLICKHOUSE_READER_PASSWORD is not set" in message and str(env) in message
    assert "`make init`" in message


def test_cli_missing_env_file(tmp_path: Path) -> None:
    result = run_cli("--env-file", str(tmp_path / "nope.env"))
    assert result.returncode == 2 and "does not exist" in one_paragraph(result.stderr)


def test_cli_bad_window() -> None:
    result = run_cli("--since", "forever")
    assert result.returncode == 2 and "not a window" in result.stderr


# ---------------------------------------------------------------- end to end over HTTP


@pytest.fixture(scope="module")
def server_with_calls(schema_server: SchemaServer, calls: list[LlmCall]) -> SchemaServer:
    """The schema on a ClickHouse-compatible HTTP server over chdb, holding the calls above."""
    insert_span_rows(schema_server.admin.command, [c.row() for c in calls])
    return schema_server


def test_cli_json_through_clickhouse_http(
    server_with_calls: SchemaServer, tmp_path: Path, calls: list[LlmCall]
) -> None:
    """The whole CLI: .env -> clickhouse-connect as the reader -> HTTP -> engine -> JSON."""
    env = write_env(tmp_path / ".env", server_with_calls.port, READER_PASSWORD)
    result = run_cli("--json", "--since", "24h", "--by", "model", "--env-file", str(env))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    want = expected_rows(in_window(calls, 86400), "model")
    assert {r["group_key"] for r in doc["rows"]} == set(want)
    for row in doc["rows"]:
        assert_figures(row, want[row["group_key"]], f"cli/{row['group_key']}")
    assert doc["totals"]["calls"] == sum(w["calls"] for w in want.values())


def test_cli_table_and_csv_through_clickhouse_http(
    server_with_calls: SchemaServer, tmp_path: Path
) -> None:
    env = write_env(tmp_path / ".env", server_with_calls.port, READER_PASSWORD)
    table = run_cli("--since", "7d", "--by", "team", "--env-file", str(env))
    assert table.returncode == 0, table.stderr
    assert "Research (team-1)" in table.stdout and "Total" in table.stdout
    rows = list(
        csv.DictReader(io.StringIO(run_cli("--csv", "--by", "key", "--env-file", str(env)).stdout))
    )
    assert {r["group_key"] for r in rows} == {"hash-alice", "hash-bob", "litellm_proxy_master_key"}


def test_cli_wrong_password(server_with_calls: SchemaServer, tmp_path: Path) -> None:
    env = write_env(tmp_path / ".env", server_with_calls.port, "not-the-password")
    result = run_cli("--json", "--env-file", str(env))
    assert result.returncode == 2 and result.stdout == ""
    message = one_paragraph(result.stderr)
    assert "rejected user 'otel_reader'" in message and "CLICKHOUSE_READER_PASSWORD" in message


def test_cli_empty_window_exits_zero(server_with_calls: SchemaServer, tmp_path: Path) -> None:
    env = write_env(tmp_path / ".env", server_with_calls.port, READER_PASSWORD)
    result = run_cli("--since", "1s", "--env-file", str(env))
    assert result.returncode == 0, result.stderr
    assert "No LLM calls in the last 1s" in result.stdout


def test_cli_schema_missing(server_with_calls: SchemaServer, tmp_path: Path) -> None:
    """Runs last in this module: it drops the telemetry database on the adapter."""
    import clickhouse_connect

    admin = clickhouse_connect.get_client(
        host=server_with_calls.host,
        port=server_with_calls.port,
        username="admin",
        password=ADMIN_PASSWORD,
    )
    admin.command("DROP DATABASE IF EXISTS otel SYNC")
    admin.close()
    env = write_env(tmp_path / ".env", server_with_calls.port, READER_PASSWORD)
    result = run_cli("--env-file", str(env))
    assert result.returncode == 2
    message = one_paragraph(result.stderr)
    assert "database otel is missing" in message
    # The advice make verify gives too, right for an external ClickHouse as for the bundled
    # one: never "drop the volume".
    assert "make schema" in message and "down -v" not in message
