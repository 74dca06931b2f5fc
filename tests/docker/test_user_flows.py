"""The user's path on a real Docker engine, through the Makefile: from a clone with no .env,
`make up`, the README's own commands, `make verify`, calls through a fake OpenRouter container,
`make report`, `make down` / `make up` keeping data, `docker compose down -v` leaving nothing.

Tests run in file order on one stack (module scope); each depends on the stack the first made.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from scripts.native_stack.paths import REPO
from tests.docker.stack import PROVIDER_MODEL, ComposeStack, Run

pytestmark = pytest.mark.timeout(900)

MOCK_ANSWER = "The gateway works. This answer is a local mock."


@pytest.fixture(scope="module")
def first_up(fresh_clone: tuple[ComposeStack, dict[str, str]]) -> tuple[ComposeStack, Run]:
    """`make up` in a clone with no .env. The test's settings come from the shell the way a
    user exports them; afterwards they are written to .env, which alone holds them from then on."""
    stack, settings = fresh_clone
    assert not (stack.root / ".env").exists()
    up = stack.make("up", **settings)
    if up.code == 0:
        stack.set_env(settings)
    return stack, up


@pytest.fixture
def up_stack(first_up: tuple[ComposeStack, Run]) -> ComposeStack:
    running, up = first_up
    if up.code != 0:
        pytest.fail("`make up` failed; see test_make_up_from_a_clean_clone")
    return running


def readme_commands() -> list[str]:
    """The shell commands of the README's block right after `make up`, verbatim (a line ending
    in a backslash continues the command)."""
    section = (REPO / "README.md").read_text().split("## After `make up`", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no ```bash block after '## After `make up`'"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        current += line + "\n"
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return [c for c in commands if c]


def test_make_up_from_a_clean_clone(first_up: tuple[ComposeStack, Run]) -> None:
    stack, up = first_up
    up.ok()
    assert "wrote .env with generated secrets" in up.out  # make up ran make init
    assert (stack.root / ".env").stat().st_mode & 0o777 == 0o600
    assert "The stack is up" in up.out
    states = {}
    for line in stack.compose("ps", "--all", "--format", "json").ok().stdout.splitlines():
        row = json.loads(line)
        states[row["Service"]] = (row["State"], row.get("Health", ""), row.get("ExitCode", 0))
    for service, (state, health, code) in states.items():
        if service == "otel-collector-init":
            assert (state, code) == ("exited", 0), states
        elif service == "otel-collector":
            assert state == "running", states  # no healthcheck; otel-collector-health probes it
        else:
            assert (state, health) == ("running", "healthy"), states


def test_readme_commands_run_verbatim(up_stack: ComposeStack) -> None:
    commands = readme_commands()
    assert any(c.startswith("curl") for c in commands) and "make verify" in " ".join(commands)
    for command in commands:
        if command.startswith("make logs"):
            # It follows the logs until interrupted, as the README says: stop it after a while.
            run = up_stack.sh(f"timeout 20 {command}", timeout=60)
            assert run.code == 124, run.out[-3000:]
            assert "llm_otel: telemetry ON" in run.out, run.out[-3000:]
            continue
        run = up_stack.sh(command, timeout=120).ok()
        if command.startswith("curl"):
            answer = json.loads(run.stdout)
            assert answer["choices"][0]["message"]["content"] == MOCK_ANSWER
        if command.startswith("make report"):
            assert "verify-mock" in run.out


def test_make_verify_is_green_with_no_warning(up_stack: ComposeStack) -> None:
    run = up_stack.make("verify", timeout=180).ok()
    assert "[!]" not in run.out and "[✗]" not in run.out, run.out
    doc = json.loads(up_stack.make("verify ARGS=--json", timeout=180).ok().stdout)
    states = {hop["name"]: hop["state"] for hop in doc["hops"]}
    for overlay in ("langfuse", "grafana", "agentops"):
        assert states.pop(overlay) == "skip"  # overlays not enabled
    assert set(states.values()) == {"ok"}, states
    # Its refused keyless request is no LLM call: no "(no model)" row, no error in the report.
    report = json.loads(up_stack.make("report ARGS=--json", timeout=120).ok().stdout)
    assert [row["group_key"] for row in report["rows"]] == ["verify-mock"], report["rows"]
    assert report["totals"]["errors"] == 0, report["totals"]


def test_calls_through_a_fake_openrouter_container(up_stack: ComposeStack) -> None:
    """The provider model goes through OPENROUTER_API_BASE to a container on the stack's network;
    each call, streamed or not, is one row with tokens, cost and (streamed) time to first token."""
    calls = {
        "plain": (PROVIDER_MODEL, False),
        "stream": (PROVIDER_MODEL, True),
        "mock": ("verify-mock", False),
    }
    trace_ids = {name: secrets.token_hex(16) for name in calls}
    for name, (model, stream) in calls.items():
        response = up_stack.chat(model, stream=stream, trace_id=trace_ids[name])
        assert response.status_code == 200, response.text
        if stream:
            assert "data: [DONE]" in response.text and "fake" in response.text
        elif model == PROVIDER_MODEL:
            assert response.json()["choices"][0]["message"]["content"].endswith("fake upstream.")
    counts = up_stack.wait_for_rows(trace_ids.values(), timeout=60)
    assert counts == {t: 1 for t in trace_ids.values()}, counts
    rows = (
        up_stack.clickhouse()
        .query(
            "SELECT trace_id, request_model, provider, input_tokens, output_tokens, cost_usd, "
            "ttft_ms, is_stream, is_error FROM llm_calls WHERE trace_id IN {ids:Array(String)}",
            parameters={"ids": list(trace_ids.values())},
        )
        .named_results()
    )
    by_trace = {row["trace_id"]: row for row in rows}
    for name, (model, stream) in calls.items():
        row = by_trace[trace_ids[name]]
        assert row["request_model"] == model and not row["is_error"], row
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0, row
        assert row["is_stream"] == stream, row
        assert (row["ttft_ms"] is not None) == stream, row
    assert by_trace[trace_ids["mock"]]["cost_usd"] > 0  # priced in litellm/config.yaml
    assert by_trace[trace_ids["plain"]]["provider"] == "openrouter"
    report = up_stack.make("report", timeout=120).ok()
    assert PROVIDER_MODEL in report.out and "verify-mock" in report.out


def test_report_equals_what_clients_got_while_the_provider_answers_429(
    up_stack: ComposeStack,
) -> None:
    """A fake OpenRouter answering 429 to every third request, under load: LiteLLM's retries
    turn most into successes, and `make report`'s calls, errors, tokens and cost are exactly what
    the clients received; the refused attempts are counted as retries, not errors."""

    def totals() -> dict[str, Any]:
        doc = json.loads(up_stack.make("report ARGS='--json --since 1h'", timeout=120).ok().stdout)
        return doc["totals"]

    up_stack.set_env({"FAKE_UPSTREAM_FAIL_EVERY": "3"})
    up_stack.compose("up", "-d", "--wait", "fake-openrouter").ok()
    try:
        time.sleep(1)
        before = totals()
        received: list[tuple[str, httpx.Response]] = []

        def one(_: int) -> tuple[str, httpx.Response]:
            trace_id = secrets.token_hex(16)
            return trace_id, up_stack.chat(PROVIDER_MODEL, trace_id=trace_id, timeout=120)

        with ThreadPoolExecutor(8) as pool:
            received = list(pool.map(one, range(45)))
        counts = up_stack.wait_for_rows([t for t, _ in received], timeout=120)
        assert counts == {t: 1 for t, _ in received}, counts
        after = totals()
    finally:
        up_stack.set_env({"FAKE_UPSTREAM_FAIL_EVERY": "0"})
        up_stack.compose("up", "-d", "--wait", "fake-openrouter").ok()

    statuses = [r.status_code for _, r in received]
    cost = sum(float(r.headers.get("x-litellm-response-cost") or 0) for _, r in received)
    assert after["calls"] - before["calls"] == len(received)
    # A call whose retries were refused too is an error for its client, and only then.
    assert after["errors"] - before["errors"] == sum(s != 200 for s in statuses)
    assert after["cost_usd"] - before["cost_usd"] == pytest.approx(cost, rel=1e-9)
    # 45 calls of which about every third attempt was refused: each refused attempt is a retry.
    assert after["retries"] - before["retries"] >= 10
    tokens = sum(
        r.json()["usage"]["completion_tokens"] for _, r in received if r.status_code == 200
    )
    assert after["output_tokens"] - before["output_tokens"] == tokens


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_cached_and_reasoning_tokens_from_span_to_report(
    up_stack: ComposeStack, stream: bool
) -> None:
    """A provider reporting cached and reasoning tokens: the split reaches llm_calls, the daily
    aggregate and `make report`, with the totals still including them."""

    def totals() -> dict[str, int]:
        doc = json.loads(up_stack.make("report ARGS='--json --since 1h'", timeout=120).ok().stdout)
        return doc["totals"]

    time.sleep(1)
    before = totals()
    trace_id = secrets.token_hex(16)
    response = up_stack.chat(
        PROVIDER_MODEL,
        stream=stream,
        trace_id=trace_id,
        text="[[cached=1000]] [[reasoning=300]] think hard",
    )
    assert response.status_code == 200, response.text
    assert up_stack.wait_for_rows([trace_id], timeout=60) == {trace_id: 1}
    row = (
        up_stack.clickhouse()
        .query(
            "SELECT input_tokens, cache_read_input_tokens, output_tokens, reasoning_output_tokens "
            "FROM llm_calls WHERE trace_id = {t:String}",
            parameters={"t": trace_id},
        )
        .result_rows[0]
    )
    assert row[1] == 1000 and row[3] == 300 and row[0] > 1000 and row[2] > 300, row
    after = totals()
    assert after["cache_read_input_tokens"] - before["cache_read_input_tokens"] == 1000
    assert after["reasoning_output_tokens"] - before["reasoning_output_tokens"] == 300
    daily = (
        up_stack.clickhouse()
        .query(
            "SELECT sum(cache_read_input_tokens), sum(reasoning_output_tokens) "
            "FROM llm_usage_daily WHERE request_model = {m:String}",
            parameters={"m": PROVIDER_MODEL},
        )
        .result_rows[0]
    )
    assert daily[0] >= 1000 and daily[1] >= 300, daily


def test_make_schema_reapplies_without_losing_rows(up_stack: ComposeStack) -> None:
    def stored() -> int:
        return int(up_stack.clickhouse().query("SELECT count() FROM otel_traces").result_rows[0][0])

    time.sleep(2)
    before = stored()
    run = up_stack.make("schema", timeout=300).ok()
    assert "schema versions now on this volume" in run.out
    assert "100_llm_views" in run.out
    assert stored() == before


def test_make_down_then_up_keeps_every_row(up_stack: ComposeStack) -> None:
    def stored() -> int:
        return int(up_stack.clickhouse().query("SELECT count() FROM otel_traces").result_rows[0][0])

    time.sleep(2)  # the hook exports every 0.5 s: let the last spans land first
    before = stored()
    assert before > 0
    up_stack.make("down", timeout=300).ok()
    assert up_stack.project_objects()["containers"] == []
    up_stack.make("up", timeout=900).ok()
    assert stored() == before


def test_compose_down_v_leaves_nothing_behind(up_stack: ComposeStack) -> None:
    up_stack.compose("down", "-v", timeout=300).ok()
    assert up_stack.project_objects() == {"containers": [], "networks": [], "volumes": []}
