"""`make verify`'s Grafana hop against a Grafana API double whose query endpoint does what the
plugin does: expands the macros (tests/support/grafana_sql.py) and runs the SQL on the ClickHouse
engine as the read-only user the data source is provisioned with."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts.native_stack.clickhouse import NativeClickHouse, start_clickhouse
from scripts.native_stack.paths import REPO
from scripts.verify.context import Context, Options
from scripts.verify.envfile import parse_env_text
from scripts.verify.hops import grafana
from scripts.verify.keys import load_key_spec
from scripts.verify.model import State
from tests.support.grafana_sql import expand_macros

ADMIN_PASSWORD = secrets.token_hex(12)


@dataclass
class Secrets:
    writer_password: str = secrets.token_hex(8)
    reader_password: str = secrets.token_hex(8)
    admin_password: str = secrets.token_hex(8)


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self, clickhouse: NativeClickHouse) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.clickhouse = clickhouse
        self.reader_password = clickhouse.secrets.reader_password  # what provisioning got

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _reply(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        expected = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {expected}":
            return True
        self._reply(401, {"message": "invalid username or password"})
        return False

    def _reader(self) -> Any:
        return self.server.clickhouse.client("otel_reader", self.server.reader_password)

    def do_GET(self) -> None:
        if self.path == "/api/health":
            self._reply(200, {"database": "ok", "version": "13.2.2"})
        elif self.path == f"/api/datasources/uid/{grafana.DATASOURCE_UID}/health":
            if self._authorised():
                try:
                    self._reader().query("SELECT 1")
                    self._reply(200, {"status": "OK", "message": "Data source is working"})
                except Exception as exc:  # noqa: BLE001 - reported like Grafana does
                    self._reply(400, {"status": "ERROR", "message": str(exc)[:200]})
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/api/ds/query" or not self._authorised():
            return None if self.path == "/api/ds/query" else self._reply(404, {})
        query = body["queries"][0]
        end = dt.datetime.now(dt.UTC)
        sql = expand_macros(query["rawSql"], end - dt.timedelta(hours=24), end, 60)
        try:
            rows = self._reader().query(sql).result_rows
            self._reply(200, {"results": {"A": {"frames": [{"data": {"values": rows}}]}}})
        except Exception as exc:  # noqa: BLE001
            self._reply(400, {"results": {"A": {"error": str(exc)[:200]}}})
        return None


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGrafana]:
    clickhouse = start_clickhouse(tmp_path_factory.mktemp("grafana-ch"), Secrets())
    server = FakeGrafana(clickhouse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    clickhouse.stop()


def ctx_for(port: int, password: str = ADMIN_PASSWORD, overlay: bool = True) -> Context:
    env = {"GRAFANA_PORT": str(port), "GRAFANA_ADMIN_PASSWORD": password}
    if overlay:
        env["COMPOSE_FILE"] = "docker-compose.yml:grafana/compose.yaml"
    text = "".join(f"{k}={v}\n" for k, v in env.items())
    options = Options(native=True, native_reason="test", timeout_s=2, http_timeout_s=5)
    return Context(options=options, env=parse_env_text(text), spec=load_key_spec(REPO))


def test_skipped_without_the_overlay(fake: FakeGrafana) -> None:
    assert grafana.run(ctx_for(fake.port, overlay=False)).state is State.SKIP


def test_ok_when_the_data_source_answers_a_dashboard_query(fake: FakeGrafana) -> None:
    result = grafana.run(ctx_for(fake.port))
    assert result.state is State.OK, result


def test_wrong_admin_password(fake: FakeGrafana) -> None:
    result = grafana.run(ctx_for(fake.port, password="not-it"))
    assert result.state is State.FAIL and "admin password" in result.summary


def test_data_source_with_a_wrong_reader_password(
    fake: FakeGrafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "reader_password", "stale")
    result = grafana.run(ctx_for(fake.port))
    assert result.state is State.FAIL and "unhealthy" in result.summary
    assert "make verify clickhouse" in result.hint


def test_grafana_not_running(tmp_path: Path) -> None:
    from scripts.native_stack.procs import free_port

    result = grafana.run(ctx_for(free_port()))
    assert result.state is State.FAIL and "connection refused" in result.summary
