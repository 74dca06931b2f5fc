"""The Grafana overlay's alert rules: provisioned as the container provisions them (compose's
loader gives the container's environment, grafana/alerting-env.sh writes the files), checked
against Grafana's file-provisioning format, and every rule evaluated as Grafana would
(tests/support/grafana_alerting.py) with its queries run on the ClickHouse engine, over data
made to fire it and data made not to. Thresholds are read from the provisioned model."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_otel.contract import LLM_OTEL_SPANS_DROPPED, LLM_OTEL_SPANS_HELD
from scripts.native_stack.paths import REPO
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.grafana_alerting import (
    ALERTING_ENV,
    RULES_TEMPLATE,
    Labels,
    Rendered,
    RenderError,
    evaluate,
    overlay_project,
    render,
    threshold_of,
)
from tests.support.grafana_sql import query_json
from tests.support.metric_rows import GAUGE_TABLE, SUM_TABLE, insert_metric_rows, metric_row
from tests.support.span_rows import LlmCall, exporter_span_row, insert_span_rows

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse-otel"}
RULE_UIDS = {
    "llm-cost-per-hour",
    "llm-cost-per-hour-by-app",
    "llm-error-rate-by-model",
    "llm-p95-latency-by-model",
    "llm-p95-ttft-by-model",
    "llm-pipeline-no-telemetry",
    "llm-pipeline-spans-not-stored",
    "llm-pipeline-hook-losing-spans",
    "llm-pipeline-collector-queue",
}


# ---- the container's environment and the provisioned files -------------------------------------


@pytest.fixture(scope="module")
def container_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The grafana service's environment as compose gives it with the .env `make init` writes."""
    project = overlay_project(tmp_path_factory.mktemp("grafana-alerts"))
    return {k: str(v) for k, v in project["services"]["grafana"]["environment"].items()}


@pytest.fixture(scope="module")
def provisioned(
    container_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    return render(container_env, tmp_path_factory.mktemp("provisioning-alerting"))


def test_the_defaults_are_those_env_example_documents(container_env: dict[str, str]) -> None:
    """Every threshold has its default in grafana/compose.yaml, and .env.example shows that one."""
    from scripts.envfile.spec import load_key_spec

    documented = load_key_spec(REPO).optional
    template = (REPO / "grafana" / "alerting" / "rules.yaml").read_text()
    used = set(re.findall(r"\$\{(GRAFANA_ALERT_[A-Z0-9_]+)\}", template))
    assert used, "the template names no threshold"
    for name in used:
        assert container_env[name] == documented[name], name


def test_every_rule_is_provisioned_in_grafanas_format(provisioned: Rendered) -> None:
    """The fields Grafana's provisioning requires (rules_types.go AlertRuleGroupV1.MapToModel,
    AlertRuleV1.mapToModel; docs "Use configuration files to provision alerting resources")."""
    doc = provisioned.rules_file
    assert doc["apiVersion"] == 1 and set(doc) == {"apiVersion", "groups"}
    assert set(provisioned.rules) == RULE_UIDS
    for group in doc["groups"]:
        assert group["name"].strip() and group["folder"].strip()
        assert re.fullmatch(r"\d+[smh]", group["interval"])
    for uid, rule in provisioned.rules.items():
        assert rule["title"].strip() and rule["condition"], uid
        assert "$" not in rule["title"] + str(rule["labels"]), f"{uid}: Grafana would interpolate"
        assert rule["noDataState"] in ("OK", "NoData", "Alerting"), uid
        assert rule["execErrState"] in ("OK", "Error", "Alerting"), uid
        assert re.fullmatch(r"\d+[smh]", rule["for"]), uid
        refs = [step["refId"] for step in rule["data"]]
        assert rule["condition"] in refs and len(refs) == len(set(refs)), uid
        for step in rule["data"]:
            model = step["model"]
            assert model["refId"] == step["refId"], uid
            if step["datasourceUid"] == "__expr__":
                assert model["datasource"] == {"type": "__expr__", "uid": "__expr__"}, uid
                assert model["type"] in ("reduce", "threshold", "math"), uid
                for ref in re.findall(r"\$([A-Z]+)", model.get("expression", "")) or [
                    model["expression"]
                ]:
                    assert ref in refs[: refs.index(step["refId"])], f"{uid}: {ref}"
            else:
                assert (
                    step["datasourceUid"] == DATASOURCE["uid"] and model["datasource"] == DATASOURCE
                )
                assert model["format"] == 1 and model["editorType"] == "sql", uid
                window = step["relativeTimeRange"]
                assert isinstance(window["from"], int) and window["from"] > window["to"] == 0
                assert "SpanAttributes" not in model["rawSql"], f"{uid}: read the views"


def test_every_query_reads_names_the_stack_writes(provisioned: Rendered) -> None:
    from llm_otel import contract

    hook_metrics = {v for k, v in vars(contract).items() if k.startswith("LLM_OTEL_")}
    for uid, rule in provisioned.rules.items():
        for step in rule["data"]:
            sql = step["model"].get("rawSql", "")
            for name in re.findall(r"'(llm_otel\.[a-z_.]+)'", sql):
                assert name in hook_metrics, f"{uid}: {name}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAFANA_ALERT_COST_PER_HOUR_USD", "ten"),
        ("GRAFANA_ALERT_ERROR_RATE_PERCENT", ""),
        ("GRAFANA_ALERT_P95_LATENCY_MS", "1.2.3"),
        ("GRAFANA_ALERT_STALL_MINUTES", "2.5"),
        ("GRAFANA_ALERT_STALL_MINUTES", "0"),
        ("GRAFANA_ALERT_QUEUE_PERCENT", "10; rm -rf /"),
    ],
)
def test_a_threshold_that_is_not_a_number_stops_the_start(
    container_env: dict[str, str], tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(RenderError) as failed:
        render({**container_env, name: value}, tmp_path)
    assert failed.value.code == 64 and name in failed.value.stderr


INTEGRATIONS = ("llm-gateway-webhook", "llm-gateway-slack", "llm-gateway-email")
# The top-level keys of an alerting provisioning file Grafana reads (AlertingFileV1 in
# pkg/services/provisioning/alerting/types.go) and the receiver types provisioned here.
FILE_KEYS = {"apiVersion", "contactPoints", "deleteContactPoints", "policies", "resetPolicies"}


def assert_contact_points_file(doc: dict[str, Any]) -> None:
    """The fields Grafana's contact point and policy provisioning requires (ContactPointV1,
    ReceiverV1.mapToModel: name, uid, type, non-empty settings; DeleteContactPointV1: uid)."""
    assert doc["apiVersion"] == 1 and set(doc) <= FILE_KEYS
    for point in doc.get("contactPoints", []):
        assert point["orgId"] == 1 and point["name"].strip()
        for receiver in point["receivers"]:
            assert receiver["uid"] in INTEGRATIONS and receiver["settings"]
            assert receiver["type"] in ("webhook", "slack", "email")
    names = {p["name"] for p in doc.get("contactPoints", [])}
    for policy in doc.get("policies", []):
        assert policy["receiver"] in names and policy["group_by"]
    for delete in doc.get("deleteContactPoints", []):
        assert delete["orgId"] == 1 and delete["uid"] in INTEGRATIONS


def test_no_contact_point_set_notifies_nobody(provisioned: Rendered) -> None:
    """Grafana's default policy again, and any integration an earlier start provisioned deleted
    (Grafana resets policies before it deletes contact points: provisioner.go)."""
    assert_contact_points_file(provisioned.contact_points)
    assert provisioned.contact_points == {
        "apiVersion": 1,
        "resetPolicies": [1],
        "deleteContactPoints": [{"orgId": 1, "uid": uid} for uid in INTEGRATIONS],
    }


def test_a_destination_removed_from_env_is_deleted(
    container_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**container_env, "GRAFANA_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"}
    doc = render(env, tmp_path).contact_points
    assert_contact_points_file(doc)
    assert [r["uid"] for r in doc["contactPoints"][0]["receivers"]] == ["llm-gateway-slack"]
    assert [d["uid"] for d in doc["deleteContactPoints"]] == [
        "llm-gateway-webhook",
        "llm-gateway-email",
    ]


def test_each_contact_point_set_is_provisioned(
    container_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **container_env,
        "GRAFANA_ALERT_WEBHOOK_URL": "https://hooks.example.com/llm",
        "GRAFANA_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "GRAFANA_ALERT_EMAIL_TO": "oncall@example.com",
        "GF_SMTP_HOST": "smtp.example.com:587",
    }
    doc = render(env, tmp_path).contact_points
    assert_contact_points_file(doc)
    (point,) = doc["contactPoints"]
    by_type = {r["type"]: r for r in point["receivers"]}
    assert set(by_type) == {"webhook", "slack", "email"}
    # The values stay ${VAR}: Grafana interpolates contact point settings itself, so no URL or
    # address is written to disk.
    assert by_type["webhook"]["settings"]["url"] == "${GRAFANA_ALERT_WEBHOOK_URL}"
    assert by_type["slack"]["settings"]["url"] == "${GRAFANA_ALERT_SLACK_WEBHOOK_URL}"
    assert by_type["email"]["settings"]["addresses"] == "${GRAFANA_ALERT_EMAIL_TO}"
    assert all(r["uid"] for r in point["receivers"])
    (policy,) = doc["policies"]
    assert policy["receiver"] == point["name"]
    assert "deleteContactPoints" not in doc and "resetPolicies" not in doc
    assert "hooks.example.com" not in (tmp_path / "contact-points.yaml").read_text()


def test_email_turns_grafanas_smtp_on(container_env: dict[str, str], tmp_path: Path) -> None:
    """alerting-env.sh hands the next command (Grafana) GF_SMTP_ENABLED with an address set."""
    env = {
        **container_env,
        "GRAFANA_ALERT_EMAIL_TO": "oncall@example.com",
        "GF_SMTP_HOST": "smtp.example.com:587",
        "GRAFANA_ALERT_TEMPLATE": str(RULES_TEMPLATE),
        "GRAFANA_ALERT_DIR": str(tmp_path),
    }
    done = subprocess.run(
        ["sh", str(ALERTING_ENV), "env"], env=env, capture_output=True, text=True, check=True
    )
    assert "GF_SMTP_ENABLED=true" in done.stdout.splitlines()


def test_email_without_an_smtp_server_stops_the_start(
    container_env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(RenderError, match="GRAFANA_SMTP_HOST"):
        render({**container_env, "GRAFANA_ALERT_EMAIL_TO": "a@example.com"}, tmp_path)


def test_a_threshold_from_env_reaches_the_rule(
    container_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**container_env, "GRAFANA_ALERT_COST_PER_HOUR_USD": "0.5"}
    rule = render(env, tmp_path).rules["llm-cost-per-hour"]
    assert threshold_of(rule) == 0.5
    assert "0.5 USD" in rule["annotations"]["summary"]


# ---- every rule on the engine --------------------------------------------------------------------

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ago(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def engine(fresh_otel_db: FreshOtelDatabase) -> Iterator[FreshOtelDatabase]:
    yield fresh_otel_db


def states(
    engine: FreshOtelDatabase,
    rule: dict[str, Any],
    calls: list[LlmCall] = (),  # type: ignore[assignment]
    sums: list[dict[str, object]] = (),  # type: ignore[assignment]
    gauges: list[dict[str, object]] = (),  # type: ignore[assignment]
    spans: list[dict[str, object]] = (),  # type: ignore[assignment]
) -> dict[Labels, str]:
    """Empty the tables, store this data, evaluate the rule at NOW."""
    for table in ("otel.otel_traces", SUM_TABLE, GAUGE_TABLE):
        engine.execute(f"TRUNCATE TABLE {table}")
    insert_span_rows(engine.execute, [c.row() for c in calls] + list(spans))
    insert_metric_rows(engine.execute, SUM_TABLE, list(sums))
    insert_metric_rows(engine.execute, GAUGE_TABLE, list(gauges))

    def run(sql: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return query_json(engine.execute, sql, start, end, interval_s=1)

    return evaluate(rule, run, NOW)


def label(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


NO_SERIES: Labels = ()


def test_cost_per_hour(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-cost-per-hour"]
    budget = threshold_of(rule)

    def spend(total: float) -> list[LlmCall]:
        # Three calls in the last hour, and an expensive one before it (outside the window).
        return [LlmCall("m", ago(m), 100, 10, 10, total / 3) for m in (5, 20, 50)] + [
            LlmCall("m", ago(70), 100, 10, 10, budget * 10)
        ]

    assert states(engine, rule, spend(budget * 1.2)) == {NO_SERIES: "Alerting"}
    assert states(engine, rule, spend(budget * 0.8)) == {NO_SERIES: "Normal"}
    assert states(engine, rule) == {NO_SERIES: "Normal"}  # no calls: zero cost


def test_cost_per_hour_by_app(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-cost-per-hour-by-app"]
    budget = threshold_of(rule)
    calls = [
        LlmCall("m", ago(10), 100, 1, 1, budget * 0.7, app="crm"),
        LlmCall("m", ago(30), 100, 1, 1, budget * 0.7, app="crm"),  # crm: 1.4 x budget
        LlmCall("m", ago(10), 100, 1, 1, budget * 0.9, app="chat-ui"),
        LlmCall("m", ago(10), 100, 1, 1, budget * 0.5),  # no app header
        LlmCall("m", ago(90), 100, 1, 1, budget * 5, app="chat-ui"),  # before the hour
    ]
    assert states(engine, rule, calls) == {
        label(app="crm"): "Alerting",
        label(app="chat-ui"): "Normal",
        label(app="(no app)"): "Normal",
    }
    assert states(engine, rule) == {NO_SERIES: "Normal"}  # no calls: no data, stays quiet


def test_error_rate_by_model_excludes_retried_successes(
    engine: FreshOtelDatabase, provisioned: Rendered
) -> None:
    rule = provisioned.rules["llm-error-rate-by-model"]
    percent = threshold_of(rule)
    (min_calls,) = re.findall(r"count\(\) >= (\d+)", rule["data"][0]["model"]["rawSql"])
    n = max(int(min_calls), 20)
    over = int(n * percent / 100) + 1  # just above the bound
    at_bound = int(n * percent / 100)  # at most the bound: quiet

    def model_calls(model: str, errors: int, total: int, **kw: Any) -> list[LlmCall]:
        return [
            LlmCall(
                model,
                ago(1 + i % 4),
                100,
                1,
                1,
                0.0,
                error_type="APIError" if i < errors else "",
                **kw,
            )
            for i in range(total)
        ]

    calls = (
        model_calls("failing", over, n)
        + model_calls("healthy", at_bound, n)
        # Every call answered after LiteLLM retried it: the client saw no error.
        + model_calls("retried", 0, n, attempts=3)
        + model_calls("retried-fallback", 0, n, attempts=2, fallback=True)
        # Too few calls to judge, all failed.
        + model_calls("rare", int(min_calls) - 1, int(min_calls) - 1)
        # Failures older than 5 minutes do not count.
        + [LlmCall("healthy", ago(7), 100, error_type="APIError") for _ in range(n)]
    )
    assert states(engine, rule, calls) == {
        label(model="failing"): "Alerting",
        label(model="healthy"): "Normal",
        label(model="retried"): "Normal",
        label(model="retried-fallback"): "Normal",
    }


def test_p95_latency_by_model(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-p95-latency-by-model"]
    bound = threshold_of(rule)
    calls = [LlmCall("slow", ago(2), bound * 1.5) for _ in range(20)]
    calls += [LlmCall("fast", ago(2), bound / 2) for _ in range(20)]
    # One outlier in twenty: the 95th percentile (interpolated) stays under the bound.
    calls += [LlmCall("one-outlier", ago(2), bound / 2) for _ in range(19)]
    calls += [LlmCall("one-outlier", ago(2), bound * 10)]
    calls += [LlmCall("fast", ago(8), bound * 100) for _ in range(20)]  # before the window
    assert states(engine, rule, calls) == {
        label(model="slow"): "Alerting",
        label(model="fast"): "Normal",
        label(model="one-outlier"): "Normal",
    }


def test_p95_time_to_first_token_by_model(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-p95-ttft-by-model"]
    bound_s = threshold_of(rule) / 1000
    calls = [LlmCall("slow-start", ago(1), 9e5, stream=True, ttft_s=bound_s * 2) for _ in range(5)]
    calls += [LlmCall("quick", ago(1), 9e5, stream=True, ttft_s=bound_s / 4) for _ in range(5)]
    # Calls that did not stream have no time to first token, however long they took.
    calls += [LlmCall("no-stream", ago(1), 9e5) for _ in range(5)]
    assert states(engine, rule, calls) == {
        label(model="slow-start"): "Alerting",
        label(model="quick"): "Normal",
    }


def accepted(at: dt.datetime, value: float, instance: str = "inst-1") -> dict[str, object]:
    attrs = {"receiver": "otlp", "transport": "http"}
    return metric_row(
        "otelcol_receiver_accepted_spans", at, value, attrs, instance, cumulative=True
    )


def test_no_telemetry_stored(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-pipeline-no-telemetry"]
    minutes = threshold_of(rule)
    stopped = [accepted(ago(minutes + 3), 10), accepted(ago(minutes + 2), 12)]
    flowing = [accepted(ago(minutes + 3), 10), accepted(ago(1), 12)]
    assert states(engine, rule, sums=stopped) == {NO_SERIES: "Alerting"}
    assert states(engine, rule, sums=flowing) == {NO_SERIES: "Normal"}
    assert states(engine, rule) == {NO_SERIES: "Alerting"}  # nothing at all ever arrived


def test_spans_received_but_not_stored(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-pipeline-spans-not-stored"]
    window_min = rule["data"][0]["relativeTimeRange"]["from"] / 60
    traffic = [accepted(ago(window_min - 2), 100), accepted(ago(1), 300)]
    idle = [accepted(ago(window_min - 2), 100), accepted(ago(1), 100)]
    old_call = [LlmCall("m", ago(window_min * 2), 100)]
    assert states(engine, rule, old_call, sums=traffic) == {NO_SERIES: "Alerting"}
    fresh_call = [LlmCall("m", ago(2), 100)]
    assert states(engine, rule, old_call + fresh_call, sums=traffic) == {NO_SERIES: "Normal"}
    # Any span stored counts (an app's own spans too), not only the gateway's.
    app_span = exporter_span_row(
        start_ns=int(ago(2).timestamp()) * 10**9, duration_ns=10**6, name="app", attributes={}
    )
    assert states(engine, rule, spans=[app_span], sums=traffic) == {NO_SERIES: "Normal"}
    assert states(engine, rule, old_call, sums=idle) == {NO_SERIES: "Normal"}  # no traffic


def test_a_gateway_holds_or_drops_spans(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-pipeline-hook-losing-spans"]
    window_min = rule["data"][0]["relativeTimeRange"]["from"] / 60

    def held(instance: str, *values: float) -> list[dict[str, object]]:
        times = [ago(window_min - 1 - i) for i in range(len(values))]
        return [
            metric_row(LLM_OTEL_SPANS_HELD, t, v, instance=instance, hook=True)
            for t, v in zip(times, values, strict=True)
        ]

    def dropped(instance: str, before: float, after: float) -> list[dict[str, object]]:
        return [
            metric_row(
                LLM_OTEL_SPANS_DROPPED,
                ago(window_min - 1),
                before,
                instance=instance,
                hook=True,
                cumulative=True,
            ),
            metric_row(
                LLM_OTEL_SPANS_DROPPED, ago(1), after, instance=instance, hook=True, cumulative=True
            ),
        ]

    gauges = held("gw-stuck", 5, 7, 9) + held("gw-caught-up", 5, 0, 3) + held("gw-ok", 0, 0)
    sums = dropped("gw-losing", 0, 2) + dropped("gw-lost-before", 2, 2)
    assert states(engine, rule, sums=sums, gauges=gauges) == {
        label(instance="gw-stuck", problem="spans held"): "Alerting",
        label(instance="gw-caught-up", problem="spans held"): "Normal",
        label(instance="gw-ok", problem="spans held"): "Normal",
        label(instance="gw-losing", problem="spans dropped"): "Alerting",
        label(instance="gw-lost-before", problem="spans dropped"): "Normal",
    }


def test_the_collector_queue_backs_up(engine: FreshOtelDatabase, provisioned: Rendered) -> None:
    rule = provisioned.rules["llm-pipeline-collector-queue"]
    percent = threshold_of(rule)
    window_min = rule["data"][0]["relativeTimeRange"]["from"] / 60
    capacity = 10000

    def queue(exporter: str, *fills: float) -> list[dict[str, object]]:
        rows = []
        for i, fill in enumerate(fills):
            at, attrs = ago(window_min - 1 - i), {"exporter": exporter}
            rows.append(metric_row("otelcol_exporter_queue_size", at, capacity * fill / 100, attrs))
            rows.append(metric_row("otelcol_exporter_queue_capacity", at, capacity, attrs))
        return rows

    gauges = queue("clickhouse", percent * 2, percent * 3, percent * 1.5)
    gauges += queue("langfuse", percent * 5, 0, percent * 5)  # drained once: not backing up
    assert states(engine, rule, gauges=gauges) == {
        label(exporter="clickhouse", instance="inst-1"): "Alerting",
        label(exporter="langfuse", instance="inst-1"): "Normal",
    }
