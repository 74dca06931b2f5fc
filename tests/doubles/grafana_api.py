"""A Grafana API double for `make verify`'s Grafana hop: health, the data source's health,
/api/ds/query doing what the ClickHouse plugin does (expand the macros, tests/support/
grafana_sql.py, and run the SQL as the read-only user the data source is provisioned with), and
the alerting provisioning API answering with what Grafana loaded from the files
grafana/alerting-env.sh writes (tests/support/grafana_alerting.py renders them)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from scripts.native_stack.clickhouse import NativeClickHouse
from scripts.native_stack.http_double import LocalServer, Reply, Request
from scripts.verify.hops import grafana
from tests.support.grafana_alerting import Rendered
from tests.support.grafana_sql import expand_macros

# Grafana's default contact point before 12.4 (later ones have no integration): never ours.
DEFAULT_EMAIL = {"uid": "", "name": "grafana-default-email", "type": "email", "settings": {}}


class FakeGrafana(LocalServer):
    def __init__(
        self, clickhouse: NativeClickHouse, admin_password: str, alerting: Rendered
    ) -> None:
        super().__init__(self._answer, name="fake-grafana")
        self.clickhouse = clickhouse
        self.admin_password = admin_password
        self.reader_password = clickhouse.secrets.reader_password  # what provisioning got
        self.alerting = alerting  # the provisioning files Grafana read at start
        self.failed_rules: set[str] = set()  # uids Grafana refused to load

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
        if route == ("GET", "/api/v1/provisioning/alert-rules"):
            return self._authorised(req) or Reply(body=self._rules())
        if route == ("GET", "/api/v1/provisioning/contact-points"):
            return self._authorised(req) or Reply(body=self._contact_points())
        return Reply(404, {"message": "not found"})

    def _rules(self) -> list[dict[str, Any]]:
        """ProvisionedAlertRule objects, as GET /api/v1/provisioning/alert-rules lists them."""
        (group,) = self.alerting.rules_file["groups"]
        return [
            {**rule, "ruleGroup": group["name"], "folderUID": "llm-gateway", "provenance": "file"}
            for rule in group["rules"]
            if rule["uid"] not in self.failed_rules
        ]

    def _contact_points(self) -> list[dict[str, Any]]:
        """EmbeddedContactPoint objects (one per integration); secure settings are not shown."""
        points = [DEFAULT_EMAIL]
        for point in self.alerting.contact_points.get("contactPoints", []):
            points += [
                {"uid": r["uid"], "name": point["name"], "type": r["type"], "settings": {}}
                for r in point["receivers"]
            ]
        return points

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
