"""The attempt rule on the real proxy (docs/CONTRACTS.md, "Attempts"): one call span per client
request, whose status, model, tokens and cost are those of the answer the client got; the failed
attempts before it are span events, never failed calls of their own.

The fake upstream fails on cue ([[status=..]] [[times=..]] [[only_model=..]]); the proxy runs the
repository's config plus two priced groups at that upstream, `primary` falling back to `backup`,
and a small-context group falling back to a larger one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_otel import contract
from scripts.native_stack.fake_upstream import FakeUpstream
from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.otlp import Span
from tests.conftest import require_collector
from tests.support.attempts_config import RETRIES, usage_cost, write_attempts_config
from tests.support.genai_conformance import assert_conformant
from tests.support.traceparent import traceparent

STATUS_ERROR = 2


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(context_windows={"small-up": 50}) as running:
        yield running


@pytest.fixture(scope="module")
def attempts_stack(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[NativeStack]:
    require_collector()
    workdir = tmp_path_factory.mktemp("attempts")
    config = write_attempts_config(workdir / "litellm-config.yaml", upstream.base_url)
    options = StackOptions(litellm_config=config, upstream_base_url=upstream.base_url)
    with NativeStack(workdir / "stack", options) as running:
        yield running


def _call(
    stack: NativeStack, model: str, content: str, *, stream: bool = False, **extra: Any
) -> tuple[httpx.Response, str]:
    trace_id = secrets.token_hex(16)
    headers = {
        "traceparent": traceparent(trace_id),
        **extra.pop("headers", {}),
    }
    response = stack.chat(model, content, stream=stream, headers=headers, timeout=60, **extra)
    return response, trace_id


def _only_call_span(stack: NativeStack, trace_id: str) -> Span:
    spans = stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)
    time.sleep(0.5)  # a second span (the bug this guards against) would follow within the batch
    spans = [s for s in stack.llm_spans() if s.trace_id == trace_id]
    assert len(spans) == 1, [(s.name, s.status_code, s.attributes) for s in spans]
    return spans[0]


def _upstream_posts(upstream: FakeUpstream, marker: str) -> list[str]:
    """The upstream models of the requests that carried `marker` (what the provider saw)."""
    import json

    out = []
    for request in upstream.requests:
        if request.method == "POST" and marker.encode() in request.body:
            out.append(json.loads(request.body).get("model"))
    return out


def test_retried_call_is_one_successful_call(
    attempts_stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(attempts_stack, "primary", f"[[status=429]][[times=1]] {marker}")
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    span = _only_call_span(attempts_stack, trace_id)
    a = span.attributes
    assert span.status_code != STATUS_ERROR
    assert contract.ERROR_TYPE not in a
    assert a[contract.GEN_AI_REQUEST_MODEL] == "primary"
    assert a[contract.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
    assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        float(response.headers["x-litellm-response-cost"])
    )
    assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(usage_cost("primary", usage))
    assert a[contract.LITELLM_CALL_ATTEMPTS] == 2 == len(_upstream_posts(upstream, marker))
    assert contract.LITELLM_CALL_FALLBACK not in a
    (event,) = [e for e in span.events if e.name == contract.LITELLM_ATTEMPT_FAILED]
    assert event.attributes[contract.ERROR_TYPE] == "RateLimitError"
    assert event.attributes[contract.LITELLM_ATTEMPT_NUMBER] == 1
    assert event.attributes[contract.HTTP_RESPONSE_STATUS_CODE] == 429
    # The span covers the whole logical call, its failed attempt included.
    assert span.start_ns <= event.time_ns <= span.end_ns


def test_fallback_is_one_successful_call_by_the_fallback(
    attempts_stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(
        attempts_stack, "primary", f"[[status=500]][[only_model=primary-up]] {marker}"
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    a = (span := _only_call_span(attempts_stack, trace_id)).attributes
    assert span.status_code != STATUS_ERROR
    assert a[contract.GEN_AI_REQUEST_MODEL] == "primary"  # what the client asked for
    assert a[contract.LITELLM_MODEL_GROUP] == "backup"  # who answered
    assert a[contract.GEN_AI_RESPONSE_MODEL] == response.json()["model"]
    assert a[contract.LITELLM_CALL_FALLBACK] is True
    assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(usage_cost("backup", usage))
    seen = _upstream_posts(upstream, marker)
    assert seen == ["primary-up"] * (1 + RETRIES) + ["backup-up"]
    assert a[contract.LITELLM_CALL_ATTEMPTS] == len(seen), span.events
    events = [e for e in span.events if e.name == contract.LITELLM_ATTEMPT_FAILED]
    assert [e.attributes[contract.LITELLM_MODEL_GROUP] for e in events] == ["primary"] * 3
    assert {e.attributes[contract.ERROR_TYPE] for e in events} == {"InternalServerError"}


def test_request_level_fallback(attempts_stack: NativeStack, upstream: FakeUpstream) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(
        attempts_stack,
        "small-context",
        f"[[status=503]][[only_model=small-up]] {marker}",
        fallbacks=["backup"],
    )
    assert response.status_code == 200, response.text
    a = _only_call_span(attempts_stack, trace_id).attributes
    assert a[contract.GEN_AI_REQUEST_MODEL] == "small-context"
    assert a[contract.LITELLM_MODEL_GROUP] == "backup"
    assert a[contract.LITELLM_CALL_FALLBACK] is True
    assert a[contract.LITELLM_CALL_ATTEMPTS] == len(_upstream_posts(upstream, marker))


def test_context_window_fallback(attempts_stack: NativeStack, upstream: FakeUpstream) -> None:
    marker = secrets.token_hex(6)
    long_prompt = f"{marker} " + "word " * 400  # past small-up's 50-token context window
    response, trace_id = _call(attempts_stack, "small-context", long_prompt)
    assert response.status_code == 200, response.text
    a = _only_call_span(attempts_stack, trace_id).attributes
    assert a[contract.GEN_AI_REQUEST_MODEL] == "small-context"
    assert a[contract.LITELLM_MODEL_GROUP] == "large-context"
    assert a[contract.LITELLM_CALL_FALLBACK] is True
    assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        usage_cost("large-context", response.json()["usage"])
    )
    seen = _upstream_posts(upstream, marker)
    assert seen[0] == "small-up" and seen[-1] == "large-up"
    assert a[contract.LITELLM_CALL_ATTEMPTS] == len(seen)


def test_call_failing_every_attempt_is_one_failed_call(
    attempts_stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(attempts_stack, "backup", f"[[status=500]] {marker}")
    assert response.status_code == 500
    span = _only_call_span(attempts_stack, trace_id)
    a = span.attributes
    assert span.status_code == STATUS_ERROR
    assert a[contract.ERROR_TYPE] == "InternalServerError"
    assert a[contract.HTTP_RESPONSE_STATUS_CODE] == 500
    assert a[contract.GEN_AI_PROVIDER_NAME] == "openai"
    assert (
        a[contract.LITELLM_CALL_ATTEMPTS] == 1 + RETRIES == len(_upstream_posts(upstream, marker))
    )
    # The last failure is the span's own error; the ones before it are its events.
    assert len([e for e in span.events if e.name == contract.LITELLM_ATTEMPT_FAILED]) == RETRIES
    assert contract.GEN_AI_USAGE_COST_AMOUNT not in a


def test_streamed_call_whose_first_attempt_fails(
    attempts_stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(
        attempts_stack, "primary", f"[[status=429]][[times=1]] {marker}", stream=True
    )
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    span = _only_call_span(attempts_stack, trace_id)
    a = span.attributes
    assert span.status_code != STATUS_ERROR
    assert a[contract.GEN_AI_REQUEST_STREAM] is True
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert a[contract.LITELLM_CALL_ATTEMPTS] == 2 == len(_upstream_posts(upstream, marker))
    assert a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_timeout_is_a_failed_call_with_error_type(attempts_stack: NativeStack) -> None:
    trace_id = secrets.token_hex(16)
    body = {
        "model": "backup",
        "messages": [{"role": "user", "content": "[[delay=3]] slow"}],
        "timeout": 0.5,  # LiteLLM's per-request provider timeout
        "num_retries": 0,
    }
    headers = {**attempts_stack.auth(), "traceparent": traceparent(trace_id)}
    response = httpx.post(
        f"{attempts_stack.proxy_url}/v1/chat/completions", json=body, headers=headers, timeout=60
    )
    assert response.status_code >= 400
    span = _only_call_span(attempts_stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE] == "Timeout"
    assert span.attributes[contract.LITELLM_CALL_ATTEMPTS] == 1


def test_client_disconnect_mid_stream_says_so(attempts_stack: NativeStack) -> None:
    trace_id = secrets.token_hex(16)
    headers = {**attempts_stack.auth(), "traceparent": traceparent(trace_id)}
    body = {
        "model": "backup",
        "stream": True,
        "messages": [{"role": "user", "content": "[[chunk_delay=0.5]] leave early"}],
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{attempts_stack.proxy_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk received, then the client goes away
    span = _only_call_span(attempts_stack, trace_id)
    a = span.attributes
    assert a[contract.LITELLM_CALL_CLIENT_DISCONNECTED] is True
    assert span.status_code != STATUS_ERROR  # the gateway did not fail
    assert contract.ERROR_TYPE not in a


def test_reused_call_id_gives_two_calls(attempts_stack: NativeStack) -> None:
    call_id = f"reused-{secrets.token_hex(4)}"
    trace_ids = []
    for _ in range(2):
        response, trace_id = _call(
            attempts_stack, "backup", "same id", headers={"x-litellm-call-id": call_id}
        )
        assert response.status_code == 200
        assert response.headers["x-litellm-call-id"] == call_id
        trace_ids.append(trace_id)
    for trace_id in trace_ids:
        assert (
            _only_call_span(attempts_stack, trace_id).attributes[contract.LITELLM_CALL_ID]
            == call_id
        )


@pytest.mark.parametrize("shared", ["traceparent", "session"])
def test_calls_sharing_a_trace_or_session_are_each_recorded(
    attempts_stack: NativeStack, upstream: FakeUpstream, shared: str
) -> None:
    """An agent's calls inside one W3C trace, or a chat app's calls in one session, share
    LiteLLM's trace id: each is still one call, a retried one included, and none is lost."""
    trace_id = secrets.token_hex(16)
    session = f"session-{secrets.token_hex(4)}"
    headers = (
        {"traceparent": traceparent(trace_id)}
        if shared == "traceparent"
        else {"x-litellm-session-id": session}
    )
    contents = ["first", "[[status=429]][[times=1]] retried", "third"]
    answers = []
    for content in contents:
        response = attempts_stack.chat(
            "primary", f"{content} {secrets.token_hex(6)}", headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        answers.append(response)
    call_ids = {r.headers["x-litellm-call-id"] for r in answers}
    spans = attempts_stack.wait_for_llm_spans(
        3, where=lambda s: s.attributes.get(contract.LITELLM_CALL_ID) in call_ids
    )
    time.sleep(0.5)  # a lost or doubled call would show within the batch
    spans = [
        s
        for s in attempts_stack.llm_spans()
        if s.attributes.get(contract.LITELLM_CALL_ID) in call_ids
    ]
    by_id = {s.attributes[contract.LITELLM_CALL_ID]: s for s in spans}
    assert len(spans) == 3 == len(by_id), [(s.name, s.attributes) for s in spans]
    for response in answers:
        a = by_id[response.headers["x-litellm-call-id"]].attributes
        assert (
            a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == response.json()["usage"]["completion_tokens"]
        )
    attempts = sorted(s.attributes[contract.LITELLM_CALL_ATTEMPTS] for s in spans)
    assert attempts == [1, 1, 2]


def test_concurrent_retries_stay_apart(attempts_stack: NativeStack, upstream: FakeUpstream) -> None:
    """Eight calls at once, each 429 then 200: eight successful calls of two attempts each."""
    results: list[tuple[httpx.Response, str]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        result = _call(
            attempts_stack, "primary", f"[[status=429]][[times=1]] {secrets.token_hex(6)} {i}"
        )
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for response, trace_id in results:
        assert response.status_code == 200
        a = _only_call_span(attempts_stack, trace_id).attributes
        assert a[contract.LITELLM_CALL_ATTEMPTS] == 2
        assert (
            a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == response.json()["usage"]["completion_tokens"]
        )


def test_every_span_and_metric_follows_the_genai_conventions(attempts_stack: NativeStack) -> None:
    """Last in the module: every call above, checked as the conformance policies check them."""
    assert_conformant(attempts_stack.spans(), attempts_stack.metrics())
