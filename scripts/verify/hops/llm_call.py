"""Hop 4: one chat completion through the gateway, carrying a trace id we generated.

The W3C traceparent lets the later hops find exactly this call in the collector and ClickHouse,
without guessing by time window.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import httpx

from ..context import CallRecord, Context
from ..hop import Hop
from ..httpcheck import client, error_message, unreachable
from ..results import Result, State, worst
from .auth import MOCK_MODEL, key_mismatch_hint, key_rejected

COST_HEADER = "x-litellm-response-cost"
CALL_ID_HEADER = "x-litellm-call-id"
WHY = "this is the call whose span, tokens and cost the next hops look for"


def new_trace_id() -> str:
    while True:
        trace_id = secrets.token_hex(16)
        if int(trace_id, 16):  # all-zero ids are invalid per W3C trace context
            return trace_id


def traceparent(trace_id: str, span_id: str | None = None) -> str:
    # version 00, sampled flag 01: a non-sampled parent would make the hook drop the span.
    return f"00-{trace_id}-{span_id or secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class CallOutcome:
    result: Result
    record: CallRecord | None  # set whenever the gateway answered 200, even if a check then failed


def call_model(ctx: Context, http: httpx.Client, model: str, *, live: bool = False) -> CallOutcome:
    url = ctx.url("LITELLM_PORT", "/v1/chat/completions")
    trace_id = new_trace_id()
    body = {
        "model": model,
        "messages": [
            {"role": "user", "content": f"make verify: reply with one word (trace {trace_id})"}
        ],
        "max_tokens": 16,
    }
    headers = {
        "Authorization": f"Bearer {ctx.setting('LITELLM_MASTER_KEY')}",
        "traceparent": traceparent(trace_id),
    }
    t0 = time.monotonic()
    try:
        resp = http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return CallOutcome(
            unreachable(exc, url, "litellm", "LITELLM_PORT", ctx.options.http_timeout_s), None
        )
    ms = (time.monotonic() - t0) * 1000
    if key_rejected(resp):
        return CallOutcome(
            Result.fail(
                f"{model}: the master key is rejected (HTTP {resp.status_code})",
                [error_message(resp)],
                key_mismatch_hint(ctx),
            ),
            None,
        )
    if resp.status_code != 200:
        hint = (
            "check OPENROUTER_API_KEY in .env, then: docker compose up -d litellm"
            if live
            else "make logs s=litellm"
        )
        return CallOutcome(
            Result.fail(f"{model}: HTTP {resp.status_code}", [error_message(resp)], hint), None
        )
    try:
        data = resp.json()
        usage = data.get("usage") or {}
        content = data["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return CallOutcome(
            Result.fail(
                f"{model}: HTTP 200 but not an OpenAI chat completion",
                [resp.text[:200]],
                "make logs s=litellm",
            ),
            None,
        )
    record = CallRecord(
        trace_id=trace_id,
        model=model,
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cost_usd=_float(resp.headers.get(COST_HEADER)),
        call_id=resp.headers.get(CALL_ID_HEADER),
    )
    details = [
        f"trace id: {trace_id}",
        f"call id: {record.call_id or '(no ' + CALL_ID_HEADER + ' header)'}",
        f"response model: {data.get('model')}, reply: {str(content or '')[:60]!r}",
    ]
    measured = f"{model}: 200 in {ms:.0f} ms, {record.input_tokens}+{record.output_tokens} tokens"
    if record.cost_usd is None or record.cost_usd <= 0:
        raw = resp.headers.get(COST_HEADER)
        what = f"{COST_HEADER} is {raw!r}" if raw is not None else f"no {COST_HEADER} header"
        level = State.WARN if live else State.FAIL
        return CallOutcome(
            Result(
                level,
                f"{measured}, but {what}",
                tuple(details),
                f"price {model} in litellm/config.yaml "
                "(model_info: input_cost_per_token, output_cost_per_token)",
                "without a price LiteLLM reports cost 0: spend in llm_calls and dashboards is 0",
            ),
            record,
        )
    return CallOutcome(Result.ok(f"{measured}, ${record.cost_usd:.6g}", details), record)


def run(ctx: Context) -> Result:
    with client(ctx) as http:
        mock = call_model(ctx, http, MOCK_MODEL)
        ctx.call = mock.record
        if not ctx.options.live:
            return mock.result
        # --live: a real provider call (a fraction of a cent) with its own trace, reported too.
        live = call_model(ctx, http, ctx.setting("OPENROUTER_MODEL_NAME"), live=True)
    results = [mock.result, live.result]
    state = worst(r.state for r in results)
    bad = next((r for r in results if r.state is state and state is not State.OK), None)
    details = [*mock.result.details, *(f"live {line}" for line in live.result.details)]
    summary = f"{mock.result.summary}; live {live.result.summary}"
    return Result(state, summary, tuple(details), bad.hint if bad else "", bad.why if bad else "")


def _int(value: object) -> int | None:
    return (
        int(value)
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit())
        else None
    )


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


HOP = Hop(
    name="llm-call",
    title="LLM call (verify-mock via the gateway)",
    run=run,
    needs=("auth",),
    why=WHY,
)
