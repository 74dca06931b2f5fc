"""The Grafana overlay's dashboards and provisioning: every panel's SQL, taken from the
provisioned JSON and expanded as Grafana and the ClickHouse plugin expand it, runs on the real
ClickHouse engine (chdb) over the owned schema filled with known spans and collector metrics,
and returns the expected figures."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_otel.contract import LLM_OTEL_SPANS_DROPPED, LLM_OTEL_SPANS_HELD
from scripts.native_stack.paths import REPO
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.grafana_alerting import overlay_project
from tests.support.grafana_sql import ALL, query_json
from tests.support.metric_rows import GAUGE_TABLE, SUM_TABLE, insert_metric_rows, metric_row
from tests.support.span_rows import LlmCall, insert_span_rows

GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# The call explorer's queries need a conversation and a trace: test_call_explorer.py runs them.
TOTALS_DASHBOARDS = [p for p in DASHBOARDS if p.stem != "llm-call-explorer"]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0) - dt.timedelta(hours=1)  # a whole hour, fully past
RANGE = (NOW - dt.timedelta(hours=3), NOW)


def calls() -> list[LlmCall]:
    at = [HOUR + dt.timedelta(minutes=m) for m in (5, 15, 25, 35, 45)]
    return [
        LlmCall(
            "qwen/qwen3",
            at[0],
            900,
            2000,
            300,
            0.02,
            team_id="team-1",
            app="crm",
            end_user="u1",
            cache_read=1500,
            reasoning=100,
        ),
        LlmCall(
            "qwen/qwen3",
            at[1],
            400,
            100,
            50,
            0.001,
            stream=True,
            ttft_s=0.2,
            team_id="team-1",
            app="crm",
            end_user="u2",
        ),
        LlmCall("qwen/qwen3", at[2], 50, error_type="RateLimitError", team_id="team-2"),
        LlmCall(
            "verify-mock", at[3], 20, 10, 20, 0.00005, team_id="team-2", app="chat-ui", attempts=3
        ),
        LlmCall(
            "verify-mock",
            at[4],
            30,
            10,
            20,
            0.00005,
            team_id="team-2",
            app="chat-ui",
            attempts=2,
            fallback=True,
        ),
    ]


def metric_rows() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """What the collector's self-telemetry writes: cumulative sums and queue gauges."""

    def at(minute: int) -> dt.datetime:
        return HOUR + dt.timedelta(minutes=minute)

    receiver = {"receiver": "otlp", "transport": "http"}
    exporter = {"exporter": "clickhouse"}
    sums = [
        metric_row("otelcol_receiver_accepted_spans", at(m), v, receiver, cumulative=True)
        for m, v in ((10, 10), (30, 40), (50, 100))
    ]
    sums += [
        metric_row("otelcol_exporter_sent_spans", at(m), v, exporter, cumulative=True)
        for m, v in ((10, 5), (50, 95))
    ]
    # The gateway hook's own health: gw-2 dropped 2 spans and held 5 at one point.
    sums.append(
        metric_row(LLM_OTEL_SPANS_DROPPED, at(40), 2, instance="gw-2", hook=True, cumulative=True)
    )
    gauges = [
        metric_row("otelcol_exporter_queue_size", at(50), 3, exporter),
        metric_row("otelcol_exporter_queue_capacity", at(50), 10000, exporter),
        metric_row(LLM_OTEL_SPANS_HELD, at(20), 0, instance="gw-1", hook=True),
        metric_row(LLM_OTEL_SPANS_HELD, at(40), 5, instance="gw-2", hook=True),
    ]
    return sums, gauges


@pytest.fixture(scope="module")
def execute(fresh_otel_db: FreshOtelDatabase) -> Iterator[Any]:
    """SQL on `otel` loaded with the dashboards' calls and collector metrics."""
    run = fresh_otel_db.execute
    insert_span_rows(run, [c.row() for c in calls()])
    sums, gauges = metric_rows()
    insert_metric_rows(run, SUM_TABLE, sums)
    insert_metric_rows(run, GAUGE_TABLE, gauges)
    yield run


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(path: Path) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in load(path)["panels"]}


def run_sql(
    execute: Any, sql: str, variables: dict[str, str] | None = None, interval_s: int = 3600
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = query_json(execute, sql, *RANGE, interval_s, variables)["data"]
    return rows


ALL_VARS = {"environment": ALL, "model": ALL, "team": ALL}


@pytest.mark.parametrize("path", TOTALS_DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_and_variable_query_answers(execute: Any, path: Path) -> None:
    doc = load(path)
    for variable in doc["templating"]["list"]:
        assert run_sql(execute, variable["query"]), variable["name"]
    for panel in doc["panels"]:
        for target in panel["targets"]:
            rows = run_sql(execute, target["rawSql"], ALL_VARS)
            assert rows, f"{panel['title']}: no rows for non-empty data"


def test_usage_figures(execute: Any) -> None:
    by_title = panels(GRAFANA / "dashboards" / "llm-usage.json")

    def query(title: str, **chosen: str) -> list[dict[str, Any]]:
        return run_sql(execute, by_title[title]["targets"][0]["rawSql"], {**ALL_VARS, **chosen})

    ok = [c for c in calls() if not c.error_type]
    assert int(query("Calls")[0]["calls"]) == 5
    assert query("Error rate")[0]["error_rate"] == pytest.approx(1 / 5)
    assert query("Cost")[0]["cost"] == pytest.approx(sum(c.cost or 0 for c in calls()))
    tokens = query("Tokens")[0]
    assert int(tokens["input"]) == sum(c.input_tokens for c in ok)
    assert int(tokens["cached_input"]) == 1500
    # A chosen model narrows every panel; so does a team.
    assert int(query("Calls", model="verify-mock")[0]["calls"]) == 2
    assert int(query("Calls", team="team-1")[0]["calls"]) == 2
    assert int(query("Calls", environment="nowhere")[0]["calls"]) == 0
    models = {r["model"]: r for r in query("By model: cost, tokens, latency, time to first token")}
    assert int(models["qwen/qwen3"]["calls"]) == 3 and int(models["qwen/qwen3"]["errors"]) == 1
    assert models["qwen/qwen3"]["ttft_p50_ms"] == pytest.approx(200)
    top = query("Top 20 most expensive calls")
    assert top[0]["cost_usd"] == pytest.approx(0.02) and len(top[0]["trace_id"]) == 32
    apps = {(r["end_user"], r["app"]): int(r["calls"]) for r in query("By end user and app")}
    assert apps[("", "chat-ui")] == 2 and apps[("u1", "crm")] == 1
    series = query("Calls and errors")
    assert sum(int(r["calls"]) for r in series) == 5
    daily = query("Cost and calls per day (daily aggregate, for long ranges)")
    assert sum(int(r["calls"]) for r in daily) == 5
    retries = query(
        "Retries, fallbacks and client disconnects (calls that still answered are not errors)"
    )
    assert sum(int(r["failed_attempts"]) for r in retries) == 2 + 1
    assert sum(int(r["retried_successes"]) for r in retries) == 2
    assert sum(int(r["fallback_answers"]) for r in retries) == 1
    assert query("Error rate")[0]["error_rate"] == pytest.approx(1 / 5)  # retries are not errors


def test_pipeline_health_figures(execute: Any) -> None:
    by_title = panels(GRAFANA / "dashboards" / "pipeline-health.json")

    def query(title: str) -> list[dict[str, Any]]:
        return run_sql(execute, by_title[title]["targets"][0]["rawSql"])

    accepted = query("Spans accepted, refused, failed by the collector")
    assert {r["metric"]: r["value"] for r in accepted} == {"receiver_accepted_spans": 90}
    sent = {r["metric"]: r["value"] for r in query("Spans sent and failed by exporter")}
    assert sent == {"exporter_sent_spans": 90}
    queue = {r["series"]: r["value"] for r in query("Exporter queue size against capacity")}
    assert queue == {"clickhouse queue_size": 3, "clickhouse queue_capacity": 10000}
    rows = {r["table_name"]: int(r["rows"]) for r in query("Rows per table")}
    assert rows["otel_traces"] == 5 and rows["otel_metrics_sum"] == 6
    held = query("Gateway hook: spans held per instance")
    assert {(r["instance"], r["held"]) for r in held} == {("gw-1", 0), ("gw-2", 5)}
    hook_totals = query(
        "Gateway hook: spans dropped, failed exports, expired calls, missing LiteLLM internals "
        "(since start, per instance)"
    )
    assert [(r["series"], r["total"]) for r in hook_totals] == [
        (f"gw-2 {LLM_OTEL_SPANS_DROPPED}", 2)
    ]
    fresh = query("Newest span stored (seconds ago)")[0]["seconds_ago"]
    assert 0 < int(fresh) < 2 * 3600


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_files_are_well_formed(path: Path) -> None:
    doc = load(path)
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text()
    )["datasources"][0]
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] == 42
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in doc["templating"]["list"]}
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": datasource["type"], "uid": datasource["uid"]}
            assert target["format"] in (0, 1) and target["editorType"] == "sql"
            sql = target["rawSql"]
            for name in re.findall(r"\$\{?([a-z_]+)", sql):
                assert name.startswith("_") or name in names, f"{panel['title']}: ${name}"
            # Queries read the owned views and tables, never the raw attribute maps (captured
            # content too: the view otel.llm_content).
            assert "SpanAttributes" not in sql, panel["title"]


def test_datasource_is_provisioned_read_only() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (source,) = doc["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["username"] == "${CLICKHOUSE_READER_USER}"
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_READER_PASSWORD}"
    assert source["jsonData"]["defaultDatabase"] == "otel"  # `database` would be ignored
    assert source.get("editable") is False
    from scripts.verify.hops.grafana import DATASOURCE_UID

    assert source["uid"] == DATASOURCE_UID  # what `make verify` asks Grafana about
    # Address and TLS from the environment (grafana/clickhouse-env.sh), the CA from the mount.
    assert source["jsonData"]["host"] == "${CLICKHOUSE_HOST}"
    assert source["jsonData"]["secure"] == "${CLICKHOUSE_SECURE}"
    assert source["jsonData"]["tlsAuthWithCACert"] == "${CLICKHOUSE_TLS_CA}"
    assert source["secureJsonData"]["tlsCACert"] == "$__file{/etc/grafana/clickhouse-ca.pem}"
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize(
    "url",
    [
        "http://clickhouse:8123",
        "https://abc.eu-west-1.aws.clickhouse.cloud:8443",
        "https://abc.clickhouse.cloud",
        "http://10.0.0.5",
        "https://ch1.internal:9443,ch2.internal:9443",
    ],
)
def test_grafana_reads_clickhouse_url_as_the_scripts_do(url: str, tmp_path: Path) -> None:
    """grafana/clickhouse-env.sh (the image's entrypoint) derives the data source's host, port
    and TLS from CLICKHOUSE_URL exactly as scripts/clickhouse_schema/endpoint.py does, and
    exports every variable the provisioned data source reads."""
    from scripts.clickhouse_schema.endpoint import external_endpoint

    ca = tmp_path / "ca.pem"
    provisioned = (GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text()
    wanted = set(re.findall(r"\$\{(CLICKHOUSE_[A-Z_]+)\}", provisioned))
    for ca_text, tls_ca in (("", "false"), ("-----BEGIN CERTIFICATE-----\n", "true")):
        ca.write_text(ca_text)
        env = {"PATH": "/usr/bin:/bin", "CLICKHOUSE_URL": url, "CLICKHOUSE_CA_PATH": str(ca)}
        done = subprocess.run(
            ["sh", str(GRAFANA / "clickhouse-env.sh"), "env"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        exported = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        expected = external_endpoint({"CLICKHOUSE_URL": url}, tmp_path)
        assert expected is not None
        assert exported["CLICKHOUSE_HOST"] == expected.host
        assert exported["CLICKHOUSE_PORT"] == str(expected.port)
        assert exported["CLICKHOUSE_SECURE"] == str(expected.secure).lower()
        assert exported["CLICKHOUSE_TLS_CA"] == tls_ca
        assert wanted - {"CLICKHOUSE_READER_USER", "CLICKHOUSE_READER_PASSWORD"} <= set(exported)


def test_grafana_refuses_a_url_it_cannot_use(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", str(GRAFANA / "clickhouse-env.sh"), "true"],
        env={"PATH": "/usr/bin:/bin", "CLICKHOUSE_URL": "ftp://x"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 64 and "http:// or https://" in done.stderr


# ---- the overlay, through compose's own loader ------------------------------------------------


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return overlay_project(tmp_path_factory.mktemp("grafana-compose"))


def test_overlay_service_follows_the_stack_conventions(overlay: dict[str, Any]) -> None:
    service = overlay["services"]["grafana"]
    (port,) = service["ports"]
    assert (port["host_ip"], port["target"], str(port["published"])) == ("127.0.0.1", 3000, "3001")
    assert service["restart"] == "unless-stopped"
    assert service["deploy"]["resources"]["limits"]["memory"]
    assert service["healthcheck"]["test"][-1].endswith("/api/health")
    assert service["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert service["cap_drop"] == ["ALL"]
    env = service["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_PLUGINS_PREINSTALL_DISABLED"] == "true"  # nothing downloaded at start
    assert len(env["GF_SECURITY_ADMIN_PASSWORD"]) >= 32  # generated, never a default
    assert env["CLICKHOUSE_READER_USER"] == "otel_reader"  # the read-only user, no other
    args = service["build"]["args"]
    assert args["GRAFANA_IMAGE"] == "grafana/grafana:13.2.2"
    assert args["CLICKHOUSE_PLUGIN_VERSION"] == "4.20.0"


def test_overlay_refuses_a_missing_admin_password(tmp_path: Path) -> None:
    from scripts.envfile.init import render
    from scripts.native_stack.compose_project import load_project

    text, _ = render((REPO / ".env.example").read_text())
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            line for line in text.splitlines() if not line.startswith("GRAFANA_ADMIN_PASSWORD=")
        )
        + "\n"
    )
    with pytest.raises(RuntimeError, match="GRAFANA_ADMIN_PASSWORD"):
        load_project(env_file, ("docker-compose.yml", "grafana/compose.yaml"))


def test_overlay_follows_an_external_clickhouse(tmp_path: Path) -> None:
    """With clickhouse/external.yaml Grafana gets CLICKHOUSE_URL and the CA, and its dependency
    on the (never started) bundled ClickHouse is dropped instead of refusing the project."""
    from scripts.envfile.init import render
    from scripts.native_stack.compose_project import load_project

    text, _ = render((REPO / ".env.example").read_text())
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    env_file = tmp_path / ".env"
    env_file.write_text(
        text + f"CLICKHOUSE_URL=https://ch.example:8443\nCLICKHOUSE_CA_FILE={tmp_path}/ca.pem\n"
    )
    project = load_project(
        env_file, ("docker-compose.yml", "clickhouse/external.yaml", "grafana/compose.yaml")
    )
    assert "clickhouse" not in project["services"]
    grafana = project["services"]["grafana"]
    assert grafana["environment"]["CLICKHOUSE_URL"] == "https://ch.example:8443"
    assert grafana["depends_on"]["clickhouse"]["required"] is False
    mounts = {v["target"]: v["source"] for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/clickhouse-ca.pem"] == str(tmp_path / "ca.pem")
