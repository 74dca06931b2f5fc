"""Hop 8: Grafana (only when the overlay is enabled): up, its provisioned ClickHouse data
source healthy through Grafana's API, one dashboard query answered, the alert rules it loaded
(against grafana/alerting/rules.yaml) and where they notify (the contact points from .env)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
RULES_TEMPLATE = Path("grafana") / "alerting" / "rules.yaml"
# The contact point grafana/alerting-env.sh provisions from .env, when any destination is set.
CONTACT_POINT = "llm-gateway"
NOBODY = "alerts notify nobody: set GRAFANA_ALERT_WEBHOOK_URL, _SLACK_WEBHOOK_URL or _EMAIL_TO"


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
            rules = http.get(f"{base}/api/v1/provisioning/alert-rules", auth=auth)
            contacts = http.get(f"{base}/api/v1/provisioning/contact-points", auth=auth)
        except httpx.HTTPError as exc:
            return unreachable(
                exc, f"{base}/api/health", "grafana", "GRAFANA_PORT", ctx.options.http_timeout_s
            )
    result = (answer.json().get("results") or {}).get("A", {}) if answer.status_code == 200 else {}
    if answer.status_code != 200 or result.get("error") or not result.get("frames"):
        return Result.fail(f"a dashboard query failed: {_message(answer)}", [QUERY], HINT_LOGS, WHY)
    version = health.json().get("version", "?")
    summary = f"Grafana {version}, data source healthy, a dashboard query answered"
    return _alerting(ctx, summary, rules, contacts)


def expected_rules(root: Path) -> list[str]:
    """The uids of the rules the overlay provisions (its template, as alerting-env.sh renders)."""
    text = (root / RULES_TEMPLATE).read_text(encoding="utf-8")
    return re.findall(r"^      - uid: (\S+)$", text, re.M)


def _alerting(
    ctx: Context, summary: str, rules: httpx.Response, contacts: httpx.Response
) -> Result:
    """The alert rules Grafana loaded and the contact points configured: a FAIL when a rule of
    the template is missing, else the OK result listing both."""
    if rules.status_code != 200 or contacts.status_code != 200:
        failed = rules if rules.status_code != 200 else contacts
        return Result.fail(
            f"Grafana's alerting API answered HTTP {failed.status_code}: {_message(failed)}",
            [str(failed.request.url)],
            HINT_LOGS,
            "alert rules Grafana did not load never fire",
        )
    loaded: list[dict[str, Any]] = rules.json()
    by_uid = {r.get("uid"): r for r in loaded}
    missing = [uid for uid in expected_rules(ctx.root) if uid not in by_uid]
    if missing:
        return Result.fail(
            f"Grafana loaded {len(loaded)} alert rules; missing: {', '.join(missing)}",
            [f"provisioned from {RULES_TEMPLATE} by grafana/alerting-env.sh at start"],
            f"{HINT_LOGS}   # the provisioning error names the file and the rule",
            "alert rules Grafana did not load never fire",
        )
    ours = [c for c in contacts.json() if c.get("name") == CONTACT_POINT]
    destinations = sorted({str(c.get("type")) for c in ours})
    where = f"alerts go to {', '.join(destinations)}" if destinations else NOBODY
    details = [f"alert rule: {r.get('title')} ({r.get('uid')})" for r in loaded]
    details += [f"contact point {CONTACT_POINT}: {c.get('type')} ({c.get('uid')})" for c in ours]
    return Result.ok(f"{summary}, {len(loaded)} alert rules loaded, {where}", details)


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
