"""The call explorer dashboard (grafana/dashboards/llm-call-explorer.json): recent calls with their
filters, a conversation's calls in order with their content, one trace's spans and attempts,
and the links between them. Every query is expanded as Grafana and the plugin expand it and run
on the ClickHouse engine over spans written as the collector's exporter writes them: usage in
otel_traces, captured content apart in otel_traces_content (otel-collector/config.yaml)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from llm_otel import contract
from scripts.native_stack.paths import REPO
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.grafana_sql import query_json
from tests.support.span_rows import (
    LlmCall,
    exporter_span_row,
    insert_span_rows,
    otel_attribute_string,
)

DASHBOARDS = REPO / "grafana" / "dashboards"
EXPLORER = json.loads((DASHBOARDS / "llm-call-explorer.json").read_text())
PANELS = {p["title"]: p for p in EXPLORER["panels"]}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
RANGE = (NOW - dt.timedelta(hours=3), NOW)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
APP_SPAN = "00f067aa0ba902b7"
CONVERSATION = "conv-1"
PROMPT = [{"role": "user", "parts": [{"type": "text", "content": "mail [redacted:email]"}]}]
ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "hi there"}]}]
COLLECTOR = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())["processors"]


def attribute_keys(processor: str, function: str) -> list[str]:
    """The span attribute keys the collector's transform `processor` passes to `function`."""
    keys: list[str] = []
    for statement in COLLECTOR[processor]["trace_statements"]:
        if match := re.fullmatch(rf"{function}\(span\.attributes, (.+)\)", statement):
            found = json.loads(match[1])
            keys += found if isinstance(found, list) else [found]
    assert keys, f"no {function} in {processor} of otel-collector/config.yaml"
    return keys


DROPPED_FROM_USAGE = attribute_keys("transform/drop-content", "delete_key")
KEPT_WITH_CONTENT = attribute_keys("transform/content-only", "keep_keys")


def ago(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


def ns(at: dt.datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000


def in_conversation(row: dict[str, Any], content: bool = False) -> dict[str, Any]:
    """The call's span as the hook writes it for a client that names its conversation (and
    with content capture on, its messages)."""
    attrs = row["SpanAttributes"] | {contract.GEN_AI_CONVERSATION_ID: CONVERSATION}
    if content:
        attrs |= {
            contract.GEN_AI_INPUT_MESSAGES: json.dumps(PROMPT),
            contract.GEN_AI_OUTPUT_MESSAGES: json.dumps(ANSWER),
        }
    return row | {"SpanAttributes": attrs}


def as_collector_stores(
    row: dict[str, Any], redactions: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A call span carrying messages as the collector stores it: the usage row without them
    (transform/drop-content, otel_traces) and the content row, reduced to the (redacted) text,
    its redaction count and the call's ids (traces/content, otel_traces_content)."""
    attrs = row["SpanAttributes"]
    usage = {k: v for k, v in attrs.items() if k not in DROPPED_FROM_USAGE}
    content = {k: v for k, v in attrs.items() if k in KEPT_WITH_CONTENT}
    content["redaction.content.count"] = otel_attribute_string(redactions)
    return row | {"SpanAttributes": usage}, row | {"SpanAttributes": content}


def traced_call() -> list[dict[str, Any]]:
    """An app's SERVER span and, under it, the gateway's call span that LiteLLM answered on its
    second attempt (the first failed: a span event, as the hook records it)."""
    app = exporter_span_row(
        start_ns=ns(ago(5)),
        duration_ns=3_000_000_000,
        name="POST /ask",
        kind="Server",
        service="crm-backend",
        scope="opentelemetry.instrumentation.fastapi",
        attributes={},
        trace_id=TRACE,
        span_id=APP_SPAN,
    )
    call = LlmCall("qwen/qwen3", ago(5), 2500, 40, 8, 0.002, app="crm", end_user="u2", attempts=2)
    row = in_conversation(call.row()) | {"TraceId": TRACE, "ParentSpanId": APP_SPAN}
    failed = {
        contract.LITELLM_ATTEMPT_NUMBER: "1",
        contract.LITELLM_MODEL_GROUP: "qwen/qwen3",
        contract.LITELLM_ATTEMPT_MODEL: "openrouter/qwen/qwen3",
        contract.ERROR_TYPE: "RateLimitError",
        contract.HTTP_RESPONSE_STATUS_CODE: "429",
    }
    row |= {
        "Events.Timestamp": [f"{ns(ago(5)) // 10**9}.100000000"],
        "Events.Name": [contract.LITELLM_ATTEMPT_FAILED],
        "Events.Attributes": [failed],
    }
    return [app, row]


def calls() -> list[LlmCall]:
    return [
        LlmCall("qwen/qwen3", ago(30), 900, 20, 5, 0.001, app="chat-ui", end_user="u1"),
        LlmCall("qwen/qwen3", ago(20), 700, 30, 6, 0.0015, app="chat-ui", end_user="u1"),
        LlmCall("verify-mock", ago(15), 50, error_type="APIError", app="chat-ui", end_user="u3"),
        LlmCall("verify-mock", ago(12), 40, 3, 2, 0.00001, key_alias="ci-key"),
    ]


@pytest.fixture(scope="module")
def execute(fresh_otel_db: FreshOtelDatabase) -> Iterator[Any]:
    first, second, failed, keyed = (c.row() for c in calls())
    usage, content = as_collector_stores(in_conversation(first, content=True), redactions=1)
    insert_span_rows(fresh_otel_db.execute, [usage, in_conversation(second), failed, keyed])
    insert_span_rows(fresh_otel_db.execute, [content], table="otel.otel_traces_content")
    app_span, call_span = traced_call()
    insert_span_rows(fresh_otel_db.execute, [app_span])
    insert_span_rows(fresh_otel_db.execute, [call_span])  # with its Events columns
    yield fresh_otel_db.execute


DEFAULTS = {v["name"]: v["current"]["value"] for v in EXPLORER["templating"]["list"]}


def query(execute: Any, title: str, **chosen: str) -> list[dict[str, Any]]:
    sql = PANELS[title]["targets"][0]["rawSql"]
    rows: list[dict[str, Any]] = query_json(execute, sql, *RANGE, 60, DEFAULTS | chosen)["data"]
    return rows


def test_every_variable_and_panel_query_answers(execute: Any) -> None:
    for variable in EXPLORER["templating"]["list"]:
        if variable["type"] == "query":
            assert query_json(execute, variable["query"], *RANGE)["data"], variable["name"]
    chosen = {"conversation": CONVERSATION, "trace": TRACE}
    for title in PANELS:
        assert query(execute, title, **chosen), f"{title}: no rows for non-empty data"


def test_recent_calls_and_their_filters(execute: Any) -> None:
    recent = query(execute, "Recent calls")
    assert len(recent) == 5
    assert [r["timestamp"] for r in recent] == sorted(
        (r["timestamp"] for r in recent), reverse=True
    )
    assert len(query(execute, "Recent calls", app="chat-ui")) == 3
    assert len(query(execute, "Recent calls", user="u1")) == 2
    assert len(query(execute, "Recent calls", model="verify-mock")) == 2
    (errored,) = query(execute, "Recent calls", status="error")
    assert errored["error_type"] == "APIError" and errored["user"] == "u3"
    # The call answered on its second attempt is ok: the client got an answer.
    retried = [r for r in query(execute, "Recent calls", status="ok") if int(r["attempts"]) == 2]
    assert [r["trace_id"] for r in retried] == [TRACE]
    (keyed,) = query(execute, "Recent calls", key="ci-key")
    assert keyed["model"] == "verify-mock"
    assert len(query(execute, "Recent calls", key="litellm_proxy_master_key")) == 4  # by hash
    assert len(query(execute, "Recent calls", conversation=CONVERSATION)) == 3
    assert query(execute, "Recent calls", app="chat-ui", status="error", user="u1") == []


def test_conversations_of_an_app(execute: Any) -> None:
    (row,) = query(execute, "Conversations", app="chat-ui")
    assert row["conversation"] == CONVERSATION and int(row["calls"]) == 2
    assert int(row["input_tokens"]) == 50 and row["cost_usd"] == pytest.approx(0.0025)
    rows = {(r["conversation"], r["app"]): int(r["calls"]) for r in query(execute, "Conversations")}
    assert rows == {(CONVERSATION, "chat-ui"): 2, (CONVERSATION, "crm"): 1}


def test_a_conversation_in_order_with_its_content(execute: Any) -> None:
    rows = query(execute, "Conversation: its calls in order", conversation=CONVERSATION)
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert [int(r["input_tokens"]) for r in rows] == [20, 30, 40]
    assert json.loads(rows[0]["input_messages"]) == PROMPT
    assert json.loads(rows[0]["output_messages"]) == ANSWER
    assert int(rows[0]["redactions"]) == 1
    assert (rows[1]["input_messages"], int(rows[1]["redactions"])) == ("", 0)  # not captured
    assert rows[2]["trace_id"] == TRACE
    assert query(execute, "Conversation: its calls in order") == []  # none chosen: empty


def test_a_trace_app_gateway_and_attempts(execute: Any) -> None:
    spans = query(execute, "Trace: every span (app, gateway)", trace=TRACE)
    assert [(s["service"], s["kind"]) for s in spans] == [
        ("crm-backend", "Server"),
        ("litellm-proxy", "Client"),
    ]
    assert spans[1]["parent_span_id"] == APP_SPAN and spans[1]["scope"] == contract.SCOPE_NAME
    attempts = query(execute, "Trace: provider attempts of its LLM calls", trace=TRACE)
    assert [(int(a["attempt"]), a["outcome"], a["error_type"]) for a in attempts] == [
        (1, "failed", "RateLimitError"),
        (2, "answered", ""),
    ]
    assert int(attempts[0]["http_status_code"]) == 429
    assert query(execute, "Trace: every span (app, gateway)") == []


def panel_links() -> list[tuple[str, str, str]]:
    """(panel title, column, url) of every data link."""
    out = []
    for panel in EXPLORER["panels"]:
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "links":
                    out += [
                        (panel["title"], override["matcher"]["options"], link["url"])
                        for link in prop["value"]
                    ]
    return out


def test_links_between_calls_conversations_and_traces(execute: Any) -> None:
    """Each data link opens a provisioned dashboard, sets variables it has, reads columns its
    panel's query returns; together they lead from a call to its conversation and its trace."""
    dashboards = {
        json.loads(p.read_text())["uid"]: json.loads(p.read_text())
        for p in DASHBOARDS.glob("*.json")
    }
    links = panel_links()
    chosen = {"conversation": CONVERSATION, "trace": TRACE}
    targets = set()
    for title, column, url in links:
        parts = urlsplit(url)
        uid = re.fullmatch(r"/d/([^/]+)/[^/]+", parts.path)[1]  # type: ignore[index]
        names = {v["name"] for v in dashboards[uid]["templating"]["list"]}
        params = parse_qsl(parts.query.replace("${__url_time_range}", "from=now-24h"))
        for key, _value in params:
            if key.startswith("var-"):
                assert key[4:] in names, url
                targets.add(key[4:])
        columns = set(query(execute, title, **chosen)[0])
        assert column in columns, f"{title}: {column}"
        for field in re.findall(r"\$\{__data\.fields\.([a-z_]+)\}", url):
            assert field in columns, f"{title}: {field}"
    assert {"conversation", "trace"} <= targets
    linked = {(title, column) for title, column, _ in links}
    assert ("Recent calls", "conversation") in linked and ("Recent calls", "trace_id") in linked
    assert ("Conversation: its calls in order", "trace_id") in linked
    assert any(link["url"].startswith("/d/llm-usage/") for link in EXPLORER["links"])
