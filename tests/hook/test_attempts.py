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

STATUS_ERROR = 2


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(context_windows={"small-up": 50}) as running:
        yield running


@pytest.fixture(scope="module")
def stack(
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
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
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


def test_retried_call_is_one_successful_call(stack: NativeStack, upstream: FakeUpstream) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(stack, "primary", f"[[status=429]][[times=1]] {marker}")
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    span = _only_call_span(stack, trace_id)
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
    stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(
        stack, "primary", f"[[status=500]][[only_model=primary-up]] {marker}"
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    a = (span := _only_call_span(stack, trace_id)).attributes
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


def test_request_level_fallback(stack: NativeStack, upstream: FakeUpstream) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(
        stack,
        "small-context",
        f"[[status=503]][[only_model=small-up]] {marker}",
        fallbacks=["backup"],
    )
    assert response.status_code == 200, response.text
    a = _only_call_span(stack, trace_id).attributes
    assert a[contract.GEN_AI_REQUEST_MODEL] == "small-context"
    assert a[contract.LITELLM_MODEL_GROUP] == "backup"
    assert a[contract.LITELLM_CALL_FALLBACK] is True
    assert a[contract.LITELLM_CALL_ATTEMPTS] == len(_upstream_posts(upstream, marker))


def test_context_window_fallback(stack: NativeStack, upstream: FakeUpstream) -> None:
    marker = secrets.token_hex(6)
    long_prompt = f"{marker} " + "word " * 400  # past small-up's 50-token context window
    response, trace_id = _call(stack, "small-context", long_prompt)
    assert response.status_code == 200, response.text
    a = _only_call_span(stack, trace_id).attributes
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
    stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(stack, "backup", f"[[status=500]] {marker}")
    assert response.status_code == 500
    span = _only_call_span(stack, trace_id)
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
    stack: NativeStack, upstream: FakeUpstream
) -> None:
    marker = secrets.token_hex(6)
    response, trace_id = _call(stack, "primary", f"[[status=429]][[times=1]] {marker}", stream=True)
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    span = _only_call_span(stack, trace_id)
    a = span.attributes
    assert span.status_code != STATUS_ERROR
    assert a[contract.GEN_AI_REQUEST_STREAM] is True
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert a[contract.LITELLM_CALL_ATTEMPTS] == 2 == len(_upstream_posts(upstream, marker))
    assert a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_timeout_is_a_failed_call_with_error_type(stack: NativeStack) -> None:
    trace_id = secrets.token_hex(16)
    body = {
        "model": "backup",
        "messages": [{"role": "user", "content": "[[delay=3]] slow"}],
        "timeout": 0.5,  # LiteLLM's per-request provider timeout
        "num_retries": 0,
    }
    headers = {**stack.auth(), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    response = httpx.post(
        f"{stack.proxy_url}/v1/chat/completions", json=body, headers=headers, timeout=60
    )
    assert response.status_code >= 400
    span = _only_call_span(stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE] == "Timeout"
    assert span.attributes[contract.LITELLM_CALL_ATTEMPTS] == 1


def test_client_disconnect_mid_stream_says_so(stack: NativeStack) -> None:
    trace_id = secrets.token_hex(16)
    headers = {**stack.auth(), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    body = {
        "model": "backup",
        "stream": True,
        "messages": [{"role": "user", "content": "[[chunk_delay=0.5]] leave early"}],
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{stack.proxy_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk received, then the client goes away
    span = _only_call_span(stack, trace_id)
    a = span.attributes
    assert a[contract.LITELLM_CALL_CLIENT_DISCONNECTED] is True
    assert span.status_code != STATUS_ERROR  # the gateway did not fail
    assert contract.ERROR_TYPE not in a


def test_reused_call_id_gives_two_calls(stack: NativeStack) -> None:
    call_id = f"reused-{secrets.token_hex(4)}"
    trace_ids = []
    for _ in range(2):
        response, trace_id = _call(
            stack, "backup", "same id", headers={"x-litellm-call-id": call_id}
        )
        assert response.status_code == 200
        assert response.headers["x-litellm-call-id"] == call_id
        trace_ids.append(trace_id)
    for trace_id in trace_ids:
        assert _only_call_span(stack, trace_id).attributes[contract.LITELLM_CALL_ID] == call_id


def test_concurrent_retries_stay_apart(stack: NativeStack, upstream: FakeUpstream) -> None:
    """Eight calls at once, each 429 then 200: eight successful calls of two attempts each."""
    results: list[tuple[httpx.Response, str]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        result = _call(stack, "primary", f"[[status=429]][[times=1]] {secrets.token_hex(6)} {i}")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for response, trace_id in results:
        assert response.status_code == 200
        a = _only_call_span(stack, trace_id).attributes
        assert a[contract.LITELLM_CALL_ATTEMPTS] == 2
        assert (
            a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == response.json()["usage"]["completion_tokens"]
        )


def test_every_span_and_metric_follows_the_genai_conventions(stack: NativeStack) -> None:
    """Last in the module: every call above, checked as the conformance policies check them."""
    assert_conformant(stack.spans(), stack.metrics())
