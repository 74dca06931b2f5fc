"""`make report` and `make verify` explain a ClickHouse failure the same way
(scripts/clickhouse_schema/errors.py), with advice that fits the bundled or the external server:
real failures from a ClickHouse-compatible server over chdb and from a closed port."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.verify.hops import clickhouse
from scripts.verify.results import Result, State
from tests.report.test_report import closed_port, one_paragraph, run_cli
from tests.support.chdb_engine import READER_PASSWORD, SchemaServer
from tests.verify.verify_context import make_ctx


def settings(port: int, external: bool, **extra: str) -> dict[str, str]:
    where = (
        {"CLICKHOUSE_URL": f"http://127.0.0.1:{port}"}
        if external
        else {"CLICKHOUSE_HTTP_PORT": str(port)}
    )
    return {"CLICKHOUSE_READER_PASSWORD": READER_PASSWORD, **where, **extra}


def report_says(tmp_path: Path, values: dict[str, str]) -> str:
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = run_cli("--env-file", str(env))
    assert result.returncode == 2, result
    return one_paragraph(result.stderr)


def verify_says(values: dict[str, str]) -> Result:
    result = clickhouse.run(make_ctx(http_timeout_s=5.0, **values))
    assert result.state is State.FAIL, result
    return result


CASES = {
    "wrong password": {"CLICKHOUSE_READER_PASSWORD": "not-the-password"},
    "no schema": {"CLICKHOUSE_DATABASE": "not_created"},
}


@pytest.mark.parametrize("external", [False, True], ids=["bundled", "external"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_fix_from_report_and_verify(
    schema_server: SchemaServer, tmp_path: Path, case: str, external: bool
) -> None:
    values = settings(schema_server.port, external, **CASES[case])
    told = verify_says(values)
    command = told.hint.split("   # ")[0]
    assert f"Fix: `{command}`" in report_says(tmp_path, values)


def test_advice_fits_where_clickhouse_runs(schema_server: SchemaServer) -> None:
    wrong = {"CLICKHOUSE_READER_PASSWORD": "not-the-password"}
    bundled = verify_says(settings(schema_server.port, external=False, **wrong))
    external = verify_says(settings(schema_server.port, external=True, **wrong))
    # The stack creates its own users from .env; an external server's users are the DBA's.
    assert bundled.hint.startswith("docker compose up -d --force-recreate clickhouse")
    assert "docs/SCALING.md" in external.hint and "docker compose" not in external.hint
    schema = verify_says(settings(schema_server.port, external=True, CLICKHOUSE_DATABASE="nope"))
    assert schema.hint.startswith("make schema") and "down -v" not in schema.hint


def test_closed_port(tmp_path: Path) -> None:
    port = closed_port()
    bundled = settings(port, external=False)
    assert verify_says(bundled).hint.startswith("make up")
    assert "Fix: `make up`" in report_says(tmp_path, bundled)
    external = settings(port, external=True)
    told = verify_says(external)
    assert "CLICKHOUSE_URL" in told.hint and "connection refused" in told.summary
    assert "check CLICKHOUSE_URL" in report_says(tmp_path, external)
