"""`make verify`'s Grafana hop against a Grafana API double (tests/doubles/grafana_api.py) whose
query endpoint does what the plugin does: expands the macros and runs the SQL on the ClickHouse
engine as the read-only user the data source is provisioned with."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.envfile.parser import parse_env_text
from scripts.envfile.spec import load_key_spec
from scripts.native_stack.clickhouse import start_clickhouse
from scripts.native_stack.paths import REPO
from scripts.verify.context import Context, Options
from scripts.verify.hops import grafana
from scripts.verify.results import State
from tests.doubles.grafana_api import FakeGrafana
from tests.support.grafana_alerting import documented_env, render

ADMIN_PASSWORD = secrets.token_hex(12)


@dataclass
class Secrets:
    writer_password: str = secrets.token_hex(8)
    reader_password: str = secrets.token_hex(8)
    admin_password: str = secrets.token_hex(8)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGrafana]:
    clickhouse = start_clickhouse(tmp_path_factory.mktemp("grafana-ch"), Secrets())
    try:
        alerting = render(documented_env(), tmp_path_factory.mktemp("alerting"))
        with FakeGrafana(clickhouse, ADMIN_PASSWORD, alerting) as server:
            yield server
    finally:
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


def test_lists_the_alert_rules_loaded_and_says_they_notify_nobody(fake: FakeGrafana) -> None:
    result = grafana.run(ctx_for(fake.port))
    uids = grafana.expected_rules(REPO)
    assert sorted(uids) == sorted(fake.alerting.rules)  # the template's rules, all provisioned
    assert result.state is State.OK, result
    assert f"{len(uids)} alert rules loaded" in result.summary
    assert "notify nobody" in result.summary  # Grafana's own default contact point is not ours
    for rule in fake.alerting.rules.values():
        assert f"alert rule: {rule['title']} ({rule['uid']})" in result.details


def test_names_where_alerts_go(
    fake: FakeGrafana, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = documented_env() | {
        "GRAFANA_ALERT_WEBHOOK_URL": "https://hooks.example.com/llm",
        "GRAFANA_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
    }
    monkeypatch.setattr(fake, "alerting", render(env, tmp_path))
    result = grafana.run(ctx_for(fake.port))
    assert result.state is State.OK, result
    assert result.summary.endswith("alerts go to slack, webhook")
    assert "contact point llm-gateway: webhook (llm-gateway-webhook)" in result.details


def test_a_rule_grafana_did_not_load(fake: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "failed_rules", {"llm-pipeline-no-telemetry"})
    result = grafana.run(ctx_for(fake.port))
    assert result.state is State.FAIL
    assert "missing: llm-pipeline-no-telemetry" in result.summary
    assert "make logs s=grafana" in result.hint
