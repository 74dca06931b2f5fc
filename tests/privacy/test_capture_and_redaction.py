"""Privacy on the real path (issue #26): the real proxy with the hook captures content for one
app and not for another in the same run; the real collector redacts personal data before the
ClickHouse engine's content table, Langfuse and AgentOps get it (their test doubles), counts the
redactions, and keeps content out of the usage rows; no content of the other app anywhere,
whether its calls succeeded, streamed, were retried or failed."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_otel import contract
from scripts import agentops_token
from scripts.native_stack import collector as collector_support
from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_CONFIGS, COLLECTOR_DIR
from tests.conftest import require_collector
from tests.doubles.fake_agentops import FakeAgentOps
from tests.doubles.fake_langfuse import FakeLangfuse
from tests.overlays.langfuse_support import PUBLIC_KEY, SECRET_KEY, langfuse_collector_env
from tests.support.attempts_config import write_attempts_config
from tests.support.traceparent import traceparent

pytestmark = pytest.mark.stack  # the real proxy, collector and ClickHouse engine

CAPTURED_APP, QUIET_APP = "crm", "billing"
AGENTOPS_SECRET = secrets.token_hex(32)
# Base, both fan-out slots filled (as their compose overlays mount them), the extras.
WITH_FANOUTS = (
    COLLECTOR_CONFIGS[0],
    COLLECTOR_DIR / "config.langfuse.yaml",
    COLLECTOR_DIR / "config.agentops.yaml",
    *COLLECTOR_CONFIGS[3:],
)
# The personal data in every prompt, and what each becomes.
PERSONAL = {
    "jane.doe@example.com": "[redacted:email]",
    "+44 20 7946 0958": "[redacted:phone]",
    "4111 1111 1111 1111": "[redacted:card]",  # Luhn-valid
    "DE89 3704 0044 0532 0130 00": "[redacted:iban]",
}
NOT_A_CARD = "4111 1111 1111 1112"  # card-shaped, fails the Luhn check: kept
CONTENT_KEYS = (contract.GEN_AI_INPUT_MESSAGES, contract.GEN_AI_OUTPUT_MESSAGES)
KINDS = {  # how each call is made: (model group, directive, stream, status the client gets)
    "plain": ("primary", "", False, 200),
    "stream": ("primary", "", True, 200),
    "retried": ("primary", "[[status=429]][[times=1]]", False, 200),
    "failed": ("backup", "[[status=500]]", False, 500),
}


class PrivacyStack(NativeStack):
    def __init__(self, workdir: Path, langfuse: FakeLangfuse, agentops: FakeAgentOps) -> None:
        super().__init__(
            workdir,
            StackOptions(
                clickhouse=True,
                proxy_env={"LLM_OTEL_CAPTURE_CONTENT_APPS": f"{CAPTURED_APP}, other"},
            ),
        )
        self.langfuse, self.agentops = langfuse, agentops
        self.token_dir = workdir / "agentops-token"

    def start(self) -> PrivacyStack:
        assert self.upstream is None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_dir.mkdir()
        agentops_token.write_token(
            self.token_dir, agentops_token.mint(AGENTOPS_SECRET, "project-a", 30)
        )
        return super().start()  # type: ignore[return-value]

    def start_proxy(self, timeout: float = 90.0) -> None:
        # Retries and a group that always fails, at the fake upstream started by now.
        assert self.upstream is not None
        self.options.litellm_config = write_attempts_config(
            self.workdir / "litellm.yaml", self.upstream.base_url
        )
        super().start_proxy(timeout)

    def collector_env(self) -> dict[str, str]:
        return {
            **super().collector_env(),
            **langfuse_collector_env(self.langfuse),
            "AGENTOPS_OTLP_ENDPOINT": self.agentops.endpoint,
            "AGENTOPS_TOKEN_FILE": str(self.token_dir / "token"),
        }


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every kind of call once per app, then where their records went."""
    require_collector()
    with (
        FakeLangfuse(PUBLIC_KEY, SECRET_KEY) as langfuse,
        FakeAgentOps(AGENTOPS_SECRET) as agentops,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr(collector_support, "COLLECTOR_CONFIGS", WITH_FANOUTS)
        with PrivacyStack(tmp_path_factory.mktemp("privacy"), langfuse, agentops) as stack:
            made: dict[tuple[str, str], dict[str, str]] = {}
            for app in (CAPTURED_APP, QUIET_APP):
                for kind, (group, directive, stream, status) in KINDS.items():
                    marker = f"marker-{secrets.token_hex(6)}"
                    prompt = f"{directive} {marker} mail {' or '.join(PERSONAL)}; {NOT_A_CARD}"
                    trace_id = secrets.token_hex(16)
                    response = stack.chat(
                        group,
                        prompt,
                        stream=stream,
                        headers={
                            "traceparent": traceparent(trace_id),
                            "x-litellm-tags": f"app:{app}",
                        },
                    )
                    assert response.status_code == status, response.text
                    made[(app, kind)] = {"trace_id": trace_id, "marker": marker}
            yield {"stack": stack, "made": made, "langfuse": langfuse, "agentops": agentops}


def _admin(stack: NativeStack) -> Any:
    return stack.clickhouse.client("admin")


def _wait_for_rows(calls: dict[str, Any], table: str, traces: list[str]) -> dict[str, dict]:
    """{trace id: SpanAttributes} of the LLM spans of those traces in `table`."""
    stack = calls["stack"]

    def probe() -> dict[str, dict] | None:
        rows = (
            _admin(stack)
            .query(
                f"SELECT TraceId, SpanAttributes FROM otel.{table} "
                "WHERE TraceId IN {t:Array(String)} AND ScopeName = 'llm_otel'",
                parameters={"t": traces},
            )
            .result_rows
        )
        found = {trace: dict(attributes) for trace, attributes in rows}
        return found if len(found) == len(traces) else None

    return stack.wait_for(probe, timeout=40, what=f"{len(traces)} rows in {table}")


def _traces(calls: dict[str, Any], app: str) -> list[str]:
    return [v["trace_id"] for (a, _), v in calls["made"].items() if a == app]


def _everything_stored(calls: dict[str, Any]) -> str:
    """Every row of every table in the telemetry database, and every fan-out copy, as text."""
    admin = _admin(calls["stack"])
    tables = [
        r[0]
        for r in admin.query(
            "SELECT name FROM system.tables WHERE database = 'otel' AND engine LIKE '%MergeTree'"
        ).result_rows
    ]
    # As text: the engine's adapter cannot frame aggregate states in the Native format.
    dump = [
        admin.raw_query(f"SELECT * FROM otel.`{t}` FORMAT TSV").decode(errors="replace")
        for t in tables
    ]
    dump += [repr(s.attributes) for s in calls["langfuse"].spans()]
    dump += [repr(f.span.attributes) for f in calls["agentops"].spans()]
    stack = calls["stack"]
    dump += [repr(s.attributes) for s in stack.spans() + stack.content_spans()]
    return "\n".join(dump)


def test_usage_rows_for_every_call_and_no_content_in_them(calls: dict[str, Any]) -> None:
    traces = _traces(calls, CAPTURED_APP) + _traces(calls, QUIET_APP)
    usage = _wait_for_rows(calls, "otel_traces", traces)
    assert len(usage) == 2 * len(KINDS)
    for attributes in usage.values():
        assert not set(CONTENT_KEYS) & set(attributes), attributes
        assert "redaction.content.count" not in attributes


def test_content_of_the_captured_app_only_redacted_and_counted(calls: dict[str, Any]) -> None:
    captured = _traces(calls, CAPTURED_APP)
    rows = _wait_for_rows(calls, "otel_traces_content", captured)
    for (app, kind), call in calls["made"].items():
        if app != CAPTURED_APP:
            continue
        attributes = rows[call["trace_id"]]
        prompt = attributes[contract.GEN_AI_INPUT_MESSAGES]
        assert call["marker"] in prompt and NOT_A_CARD in prompt, (kind, prompt)
        for raw, placeholder in PERSONAL.items():
            assert raw not in prompt and prompt.count(placeholder) == 1, (kind, prompt)
        json.loads(prompt)  # still JSON after redaction
        answer = attributes.get(contract.GEN_AI_OUTPUT_MESSAGES, "")
        assert bool(answer) == (kind != "failed"), (kind, attributes)
        total = prompt.count("[redacted:") + answer.count("[redacted:")
        assert int(attributes["redaction.content.count"]) == total >= len(PERSONAL)
        assert attributes[contract.LITELLM_APP] == CAPTURED_APP
        # Reduced to the text and the ids it can be found (and forgotten) by.
        assert contract.GEN_AI_USAGE_INPUT_TOKENS not in attributes
    # The view dashboards read: the same text and count, by llm_calls' names.
    view = (
        _admin(calls["stack"])
        .query(
            "SELECT trace_id, app, input_messages, redactions FROM otel.llm_content "
            "WHERE trace_id IN {t:Array(String)}",
            parameters={"t": captured},
        )
        .result_rows
    )
    assert sorted(view) == sorted(
        (
            trace,
            CAPTURED_APP,
            attributes[contract.GEN_AI_INPUT_MESSAGES],
            int(attributes["redaction.content.count"]),
        )
        for trace, attributes in rows.items()
    )
    # The quiet app's calls never reach the content table (their usage rows are in).
    assert len(_wait_for_rows(calls, "otel_traces", _traces(calls, QUIET_APP))) == len(KINDS)
    admin = _admin(calls["stack"])
    quiet = admin.query(
        "SELECT count() FROM otel.otel_traces_content WHERE TraceId IN {t:Array(String)}",
        parameters={"t": _traces(calls, QUIET_APP)},
    ).result_rows[0][0]
    assert quiet == 0


def test_fan_outs_get_the_same_redacted_content(calls: dict[str, Any]) -> None:
    stored = _wait_for_rows(calls, "otel_traces_content", _traces(calls, CAPTURED_APP))
    for trace_id, attributes in stored.items():
        langfuse = calls["stack"].wait_for(
            lambda t=trace_id: [
                s for s in calls["langfuse"].spans() if s.trace_id == t and s.is_llm
            ],
            timeout=30,
            what="the Langfuse copy",
        )[0]
        agentops = (
            calls["agentops"]
            .wait_for(lambda f, t=trace_id: f.span.trace_id == t and f.span.is_llm)[0]
            .span
        )
        for copy in (langfuse, agentops):
            for key in CONTENT_KEYS:
                assert copy.attributes.get(key) == attributes.get(key), (key, copy.attributes)
            assert copy.attributes["redaction.content.count"] == int(
                attributes["redaction.content.count"]
            )
    for (app, _), call in calls["made"].items():
        if app == QUIET_APP:
            trace_id = call["trace_id"]
            langfuse = calls["stack"].wait_for(
                lambda t=trace_id: [
                    s for s in calls["langfuse"].spans() if s.trace_id == t and s.is_llm
                ],
                timeout=30,
                what="the quiet call's Langfuse copy",
            )
            agentops = calls["agentops"].wait_for(
                lambda f, t=trace_id: f.span.trace_id == t and f.span.is_llm
            )
            for copy in [*langfuse, *(f.span for f in agentops)]:
                assert not set(CONTENT_KEYS) & set(copy.attributes)


def test_no_raw_personal_data_and_no_quiet_content_anywhere(calls: dict[str, Any]) -> None:
    _wait_for_rows(calls, "otel_traces_content", _traces(calls, CAPTURED_APP))
    _wait_for_rows(calls, "otel_traces", _traces(calls, QUIET_APP))
    dump = _everything_stored(calls)
    for raw in PERSONAL:
        assert raw not in dump
    for (app, kind), call in calls["made"].items():
        assert (call["marker"] in dump) == (app == CAPTURED_APP), (app, kind)
