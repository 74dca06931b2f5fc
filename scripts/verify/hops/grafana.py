"""Hop 8: Grafana (only when the overlay is enabled): up, its provisioned ClickHouse data
source healthy through Grafana's API, and one dashboard query answered."""

from __future__ import annotations

import httpx

from ..context import Context
from ..hop import Hop
from ..httpcheck import client, unreachable
from ..results import Result

DATASOURCE_UID = "clickhouse-otel"  # grafana/provisioning/datasources/clickhouse.yaml
# The "Calls" panel's question, without the dashboard's variables (the API does not expand them).
QUERY = "SELECT count() AS calls FROM otel.llm_calls WHERE $__timeFilter(timestamp)"
WHY = "the dashboards read ClickHouse through this data source; without it every panel is empty"
HINT_LOGS = "make logs s=grafana"


def run(ctx: Context) -> Result:
    if "grafana" not in ctx.overlays:
        return Result.skip("overlay not enabled (COMPOSE_FILE in .env does not include grafana)")
    base = ctx.url("GRAFANA_PORT", "")
    auth = ("admin", ctx.setting("GRAFANA_ADMIN_PASSWORD"))
    with client(ctx) as http:
        try:
            health = http.get(f"{base}/api/health")
            if health.status_code != 200 or health.json().get("database") != "ok":
                return Result.fail(
                    f"/api/health answered HTTP {health.status_code}",
                    [health.text[:200]],
                    HINT_LOGS,
                    WHY,
                )
            source = http.get(f"{base}/api/datasources/uid/{DATASOURCE_UID}/health", auth=auth)
            if source.status_code == 401:
                return Result.fail(
                    "Grafana refused the admin password from .env",
                    ["GRAFANA_ADMIN_PASSWORD applies on Grafana's first start only"],
                    "grafana cli admin reset-admin-password (docker compose exec grafana ...)",
                    WHY,
                )
            if source.status_code != 200 or source.json().get("status") != "OK":
                return Result.fail(
                    f"data source {DATASOURCE_UID} unhealthy: {_message(source)}",
                    [f"GET {base}/api/datasources/uid/{DATASOURCE_UID}/health"],
                    "make verify clickhouse   # the reader user and password in .env",
                    WHY,
                )
            answer = http.post(
                f"{base}/api/ds/query",
                auth=auth,
                json={
                    "from": "now-24h",
                    "to": "now",
                    "queries": [
                        {
                            "refId": "A",
                            "datasource": {"uid": DATASOURCE_UID},
                            "rawSql": QUERY,
                            "format": 1,
                        }
                    ],
                },
            )
        except httpx.HTTPError as exc:
            return unreachable(
                exc, f"{base}/api/health", "grafana", "GRAFANA_PORT", ctx.options.http_timeout_s
            )
    result = (answer.json().get("results") or {}).get("A", {}) if answer.status_code == 200 else {}
    if answer.status_code != 200 or result.get("error") or not result.get("frames"):
        return Result.fail(f"a dashboard query failed: {_message(answer)}", [QUERY], HINT_LOGS, WHY)
    version = health.json().get("version", "?")
    return Result.ok(
        f"Grafana {version}, data source healthy, a dashboard query answered",
        [f"dashboards: {base}/dashboards"],
    )


def _message(resp: httpx.Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}"
    results = doc.get("results") if isinstance(doc, dict) else None
    if isinstance(results, dict) and results.get("A", {}).get("error"):
        return str(results["A"]["error"])[:200]
    return str(doc.get("message") or f"HTTP {resp.status_code}")[:200]


HOP = Hop(name="grafana", title="Grafana (optional overlay)", run=run, why=WHY)
