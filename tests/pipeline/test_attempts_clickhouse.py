"""The attempt rule through the whole pipeline: real proxy -> real collector -> ClickHouse
engine. `llm_calls`, `llm_attempts`, the daily aggregate and `make report` count what the clients
received: a retried or fallback-answered call is one successful call with its cost; only the call
whose every attempt failed is an error.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts import report
from scripts.native_stack.fake_upstream import FakeUpstream
from scripts.native_stack.harness import NativeStack, StackOptions
from tests.conftest import require_collector
from tests.support.attempts_config import RETRIES, write_attempts_config

# Every test reads `finished`, which starts the proxy, the collector and ClickHouse.
pytestmark = pytest.mark.stack
# (model group, message directives, expected attempts)
CALLS = [
    ("primary", "", 1),
    ("backup", "", 1),
    ("primary", "[[status=429]][[times=1]]", 2),
    ("backup", "[[status=429]][[times=1]]", 2),
    ("primary", "[[status=500]][[only_model=primary-up]]", 1 + RETRIES + 1),
    ("backup", "[[status=500]]", 1 + RETRIES),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every call of CALLS, sent once through the stack; what the clients received."""
    require_collector()
    workdir = tmp_path_factory.mktemp("attempts-ch")
    with FakeUpstream() as upstream:
        config = write_attempts_config(workdir / "litellm-config.yaml", upstream.base_url)
        options = StackOptions(
            clickhouse=True, litellm_config=config, upstream_base_url=upstream.base_url
        )
        with NativeStack(workdir / "stack", options) as stack:
            received: list[httpx.Response] = []
            for group, directives, _ in CALLS:
                text = f"{directives} {secrets.token_hex(6)}"
                received.append(stack.chat(group, text, timeout=60))
            yield {"stack": stack, "received": received}


def _query(stack: NativeStack, sql: str) -> list[dict[str, Any]]:
    reader = stack.clickhouse.client("otel_reader")
    return list(reader.query(sql).named_results())


def _wait_rows(stack: NativeStack, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        rows = _query(
            stack,
            "SELECT call_id, is_error, attempts, is_fallback, cost_usd, input_tokens, "
            "output_tokens, model_group FROM llm_calls ORDER BY timestamp",
        )
        return rows if len(rows) >= count else None

    return stack.wait_for(probe, timeout=30, what=f"{count} llm_calls rows")


def test_one_row_per_request_with_what_the_client_got(finished: dict[str, Any]) -> None:
    stack, received = finished["stack"], finished["received"]
    rows = {r["call_id"]: r for r in _wait_rows(stack, len(CALLS))}
    assert len(rows) == len(CALLS)
    for (group, directives, attempts), response in zip(CALLS, received, strict=True):
        row = rows[response.headers["x-litellm-call-id"]]
        assert row["attempts"] == attempts, (group, directives)
        assert row["is_error"] == (response.status_code != 200), (group, directives)
        if response.status_code == 200:
            usage = response.json()["usage"]
            assert row["input_tokens"] == usage["prompt_tokens"]
            assert row["output_tokens"] == usage["completion_tokens"]
            assert row["cost_usd"] == pytest.approx(
                float(response.headers["x-litellm-response-cost"])
            )
        else:
            assert row["cost_usd"] == 0


def test_attempts_view_lists_every_provider_attempt(finished: dict[str, Any]) -> None:
    stack, received = finished["stack"], finished["received"]
    _wait_rows(stack, len(CALLS))
    got = _query(
        stack,
        "SELECT call_id, count() AS attempts, countIf(is_error) AS failed, "
        "countIf(ended_call) AS ended, groupArray(model_group) AS groups "
        "FROM llm_attempts GROUP BY call_id",
    )
    by_call = {r["call_id"]: r for r in got}
    for (group, directives, attempts), response in zip(CALLS, received, strict=True):
        row = by_call[response.headers["x-litellm-call-id"]]
        assert row["attempts"] == attempts, (group, directives)
        assert row["ended"] == 1
        assert row["failed"] == attempts - (response.status_code == 200)
    fallback = by_call[received[4].headers["x-litellm-call-id"]]
    assert sorted(fallback["groups"]) == ["backup"] + ["primary"] * (1 + RETRIES)


def test_daily_aggregate_and_report_count_what_clients_got(finished: dict[str, Any]) -> None:
    stack, received = finished["stack"], finished["received"]
    _wait_rows(stack, len(CALLS))
    client_errors = sum(r.status_code != 200 for r in received)
    client_cost = sum(float(r.headers.get("x-litellm-response-cost") or 0) for r in received)
    (daily,) = _query(
        stack,
        "SELECT sum(calls) AS calls, sum(errors) AS errors, sum(cost_usd) AS cost, "
        "sum(retried_calls) AS retried, sum(failed_attempts) AS failed_attempts, "
        "sum(fallback_calls) AS fallbacks FROM llm_usage_daily",
    )
    assert daily["calls"] == len(CALLS)
    assert daily["errors"] == client_errors == 1
    assert daily["cost"] == pytest.approx(client_cost)
    assert daily["retried"] == sum(1 for _, _, attempts in CALLS if attempts > 1)
    assert daily["failed_attempts"] == sum(attempts - 1 for _, _, attempts in CALLS)
    assert daily["fallbacks"] == 1

    env_file = stack.write_env_file()
    settings = report.load_settings(env_file, explicit=True, environ={})
    client = report.connect(settings)
    try:
        built = report.build_report(client, settings, "model", "24h", 86400)
    finally:
        client.close()
    totals = built.totals
    assert totals["calls"] == len(CALLS)
    assert totals["errors"] == client_errors
    assert totals["cost_usd"] == pytest.approx(client_cost)
    assert totals["retries"] == sum(attempts - 1 for _, _, attempts in CALLS)
    assert totals["fallbacks"] == 1
