"""A Grafana API double for `make verify`'s Grafana hop: health, the data source's health and
/api/ds/query doing what the ClickHouse plugin does (expand the macros, tests/support/
grafana_sql.py, and run the SQL as the read-only user the data source is provisioned with)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from scripts.native_stack.clickhouse import NativeClickHouse
from scripts.native_stack.http_double import LocalServer, Reply, Request
from scripts.verify.hops import grafana
from tests.support.grafana_sql import expand_macros


class FakeGrafana(LocalServer):
    def __init__(self, clickhouse: NativeClickHouse, admin_password: str) -> None:
        super().__init__(self._answer, name="fake-grafana")
        self.clickhouse = clickhouse
        self.admin_password = admin_password
        self.reader_password = clickhouse.secrets.reader_password  # what provisioning got

    def _reader(self) -> Any:
        return self.clickhouse.client("otel_reader", self.reader_password)

    def _answer(self, req: Request) -> Reply:
        route = (req.method, req.path)
        if route == ("GET", "/api/health"):
            return Reply(body={"database": "ok", "version": "13.2.2"})
        if route == ("GET", f"/api/datasources/uid/{grafana.DATASOURCE_UID}/health"):
            return self._authorised(req) or self._data_source_health()
        if route == ("POST", "/api/ds/query"):
            return self._authorised(req) or self._query(req.json()["queries"][0])
        return Reply(404, {"message": "not found"})

    def _authorised(self, req: Request) -> Reply | None:
        """None when the admin's Basic credentials are right, else Grafana's 401."""
        expected = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
        if req.headers.get("authorization") == f"Basic {expected}":
            return None
        return Reply(401, {"message": "invalid username or password"})

    def _data_source_health(self) -> Reply:
        try:
            self._reader().query("SELECT 1")
            return Reply(body={"status": "OK", "message": "Data source is working"})
        except Exception as exc:  # noqa: BLE001 - reported like Grafana does
            return Reply(400, {"status": "ERROR", "message": str(exc)[:200]})

    def _query(self, query: dict[str, Any]) -> Reply:
        end = dt.datetime.now(dt.UTC)
        sql = expand_macros(query["rawSql"], end - dt.timedelta(hours=24), end, 60)
        try:
            rows = self._reader().query(sql).result_rows
            return Reply(body={"results": {"A": {"frames": [{"data": {"values": rows}}]}}})
        except Exception as exc:  # noqa: BLE001 - reported like Grafana does
            return Reply(400, {"results": {"A": {"error": str(exc)[:200]}}})
