"""Every LLM route of the real proxy, with the hook: one LLM span per call, with the right
operation, the model the client asked for, the tokens the client was told and the cost the proxy
charged (its `x-litellm-response-cost` header; on streams, which carry no such header, the
configured prices times those tokens).

The repository's config.yaml plus `openai/...` deployments at the fake upstream (LiteLLM calls
an OpenAI-compatible provider's own route for each call type, which OpenRouter does not offer for
all of them), priced in `model_info` so cost is checkable. One proxy for the whole module.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from llm_otel import contract
from scripts.native_stack.fake_upstream import FakeUpstream
from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.otlp import Span
from scripts.native_stack.paths import LITELLM_CONFIG
from tests.conftest import require_collector
from tests.support.genai_conformance import assert_conformant
from tests.support.traceparent import new_traceparent

INPUT_PRICE, OUTPUT_PRICE = 1e-6, 2e-6  # USD per token, every token-priced deployment
SECOND_PRICE = 1e-4  # USD per audio second (whisper)

# model group -> upstream model (the fake answers gpt-image-* with usage, whisper-* by duration)
DEPLOYMENTS = {
    "route-chat": ("openai/fake-chat", "chat"),
    "route-embed": ("openai/fake-embed", "embedding"),
    "route-image": ("openai/gpt-image-1", "image_generation"),
    "route-speech": ("openai/tts-1", "audio_speech"),
    "route-whisper": ("openai/whisper-1", "audio_transcription"),
    "route-transcribe": ("openai/gpt-4o-transcribe", "audio_transcription"),
}
AUDIO = ("sample.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as running:
        yield running


@pytest.fixture(scope="module")
def routes_stack(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[NativeStack]:
    """The proxy with the routes' deployments."""
    require_collector()
    workdir = tmp_path_factory.mktemp("routes")
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    for group, (model, mode) in DEPLOYMENTS.items():
        prices: dict[str, Any] = {
            "input_cost_per_token": INPUT_PRICE,
            "output_cost_per_token": OUTPUT_PRICE,
        }
        if model == "openai/whisper-1":
            prices = {"input_cost_per_second": SECOND_PRICE}
        config["model_list"].append(
            {
                "model_name": group,
                "litellm_params": {
                    "model": model,
                    "api_base": upstream.base_url,
                    "api_key": "sk-fake-upstream-key",
                },
                "model_info": {"mode": mode, **prices},
            }
        )
    path = workdir / "litellm-config.yaml"
    path.write_text(yaml.safe_dump(config))
    options = StackOptions(litellm_config=path, upstream_base_url=upstream.base_url)
    with NativeStack(workdir / "stack", options) as running:
        yield running


@dataclass
class Call:
    response: httpx.Response
    span: Span
    upstream_routes: list[str]  # the POSTs the fake upstream received for this call

    @property
    def attributes(self) -> dict[str, Any]:
        return self.span.attributes

    @property
    def header_cost(self) -> float | None:
        value = self.response.headers.get("x-litellm-response-cost")
        return None if value is None else float(value)


@dataclass
class Gateway:
    stack: NativeStack
    upstream: FakeUpstream

    def call(self, path: str, **request: Any) -> Call:
        """One request in a trace of its own; its one LLM span (exactly one, else it fails)."""
        trace_id, header = new_traceparent()
        before = len(self.upstream.requests)  # tests run one at a time: the rest is this call's
        response = self.stack.post(path, headers={"traceparent": header}, **request)
        assert response.status_code == 200, response.text[:500]
        spans = self.stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)
        assert len(spans) == 1, f"expected one LLM span in trace {trace_id}, got {spans}"
        posts = [r.route for r in self.upstream.requests[before:] if r.method == "POST"]
        return Call(response, spans[0], posts)


@pytest.fixture
def gateway(routes_stack: NativeStack, upstream: FakeUpstream) -> Gateway:
    return Gateway(routes_stack, upstream)


def assert_span(
    result: Call,
    operation: str,
    model: str,
    tokens: tuple[int, int],
    *,
    upstream: str,
    stream: bool = False,
    provider: str | None = "openai",
    response_id: str | None = None,
) -> None:
    """Operation, model, tokens as the client was told, cost as the proxy charged; and one
    upstream call, on `upstream` (the span describes a real provider call, not a retry).
    `provider` None: not checked; `response_id`: the id the client received, if any."""
    assert result.upstream_routes == [upstream]
    a = result.attributes
    assert result.span.name == f"{operation} {model}"
    assert result.span.status_code != 2, result.span.status_message  # not ERROR
    assert a[contract.GEN_AI_OPERATION_NAME] == operation
    assert a[contract.GEN_AI_REQUEST_MODEL] == model
    if provider is not None:
        assert a[contract.GEN_AI_PROVIDER_NAME] == provider
    if response_id is not None:
        assert a[contract.GEN_AI_RESPONSE_ID] == response_id
    assert a.get(contract.GEN_AI_REQUEST_STREAM, False) is stream  # set only when streaming
    # A span may leave a zero count out; the client's usage may too.
    assert (
        a.get(contract.GEN_AI_USAGE_INPUT_TOKENS, 0),
        a.get(contract.GEN_AI_USAGE_OUTPUT_TOKENS, 0),
    ) == tokens
    if result.header_cost is not None:
        assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(result.header_cost)
    if stream:
        assert a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def sse_data(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON events of a server-sent event stream ([DONE] left out)."""
    events = []
    for line in response.text.splitlines():
        if line.startswith("data:") and line.removeprefix("data:").strip() != "[DONE]":
            events.append(json.loads(line.removeprefix("data:")))
    return events


def token_cost(tokens: tuple[int, int]) -> float:
    return tokens[0] * INPUT_PRICE + tokens[1] * OUTPUT_PRICE


def nonce() -> str:
    return secrets.token_hex(4)


# ---- chat ------------------------------------------------------------------------------------


def test_chat_completion(gateway: Gateway) -> None:
    messages = [{"role": "user", "content": f"hello {nonce()}"}]
    result = gateway.call(
        "/v1/chat/completions", json={"model": "route-chat", "messages": messages}
    )
    answer = result.response.json()
    tokens = (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
    chat = "/v1/chat/completions"
    assert_span(result, "chat", "route-chat", tokens, upstream=chat, response_id=answer["id"])
    assert result.header_cost == pytest.approx(token_cost(tokens))


def test_chat_completion_streamed(gateway: Gateway) -> None:
    body = {
        "model": "route-chat",
        "messages": [{"role": "user", "content": f"hello {nonce()}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    result = gateway.call("/v1/chat/completions", json=body)
    assert "data: [DONE]" in result.response.text
    chunks = sse_data(result.response)
    usage = [e["usage"] for e in chunks if e.get("usage")][-1]
    tokens = (usage["prompt_tokens"], usage["completion_tokens"])
    chat = "/v1/chat/completions"
    assert_span(
        result,
        "chat",
        "route-chat",
        tokens,
        stream=True,
        upstream=chat,
        response_id=chunks[0]["id"],
    )
    assert result.attributes[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(token_cost(tokens))


# ---- text completion -------------------------------------------------------------------------


def test_text_completion(gateway: Gateway) -> None:
    result = gateway.call(
        "/v1/completions", json={"model": "route-chat", "prompt": f"hi {nonce()}"}
    )
    answer = result.response.json()
    assert answer["object"] == "text_completion" and answer["choices"][0]["text"]
    usage = answer["usage"]
    tokens = (usage["prompt_tokens"], usage["completion_tokens"])
    # Provider and response id: test_text_completion_span_describes_the_openai_answer.
    assert_span(
        result, "text_completion", "route-chat", tokens, upstream="/v1/completions", provider=None
    )
    assert result.header_cost == pytest.approx(token_cost(tokens))


def test_text_completion_span_describes_the_openai_answer(gateway: Gateway) -> None:
    """LiteLLM's route id maps to the provider; the id and finish reason are the client's
    (LiteLLM's global redaction stripped both before llm_otel 0.2.0's content guard)."""
    result = gateway.call(
        "/v1/completions", json={"model": "route-chat", "prompt": f"hi {nonce()}"}
    )
    answer = result.response.json()
    a = result.attributes
    assert a[contract.GEN_AI_PROVIDER_NAME] == "openai"
    assert a.get(contract.GEN_AI_RESPONSE_ID) == answer["id"]
    assert a.get(contract.GEN_AI_RESPONSE_FINISH_REASONS) == ["stop"]


# ---- embeddings ------------------------------------------------------------------------------


def test_embeddings(gateway: Gateway) -> None:
    body = {"model": "route-embed", "input": [f"first {nonce()}", "second text"]}
    result = gateway.call("/v1/embeddings", json=body)
    answer = result.response.json()
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert all(isinstance(v, float) for v in answer["data"][0]["embedding"])
    usage = answer["usage"]
    tokens = (usage["prompt_tokens"], usage.get("completion_tokens") or 0)
    assert tokens[0] > 0
    assert_span(result, "embeddings", "route-embed", tokens, upstream="/v1/embeddings")
    assert result.header_cost == pytest.approx(token_cost(tokens))


# ---- Anthropic messages (to the OpenAI-compatible deployment) -------------------------------


def test_anthropic_messages(gateway: Gateway) -> None:
    body = {
        "model": "route-chat",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"hello {nonce()}"}],
    }
    result = gateway.call("/v1/messages", json=body)
    answer = result.response.json()
    assert answer["type"] == "message" and answer["content"][0]["text"]
    tokens = (answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])
    # LiteLLM answers /v1/messages for an OpenAI deployment through the Responses API.
    assert_span(
        result, "chat", "route-chat", tokens, upstream="/v1/responses", response_id=answer["id"]
    )
    assert result.header_cost == pytest.approx(token_cost(tokens))


def test_anthropic_messages_streamed(gateway: Gateway) -> None:
    body = {
        "model": "route-chat",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": f"hello {nonce()}"}],
    }
    result = gateway.call("/v1/messages", json=body)
    events = sse_data(result.response)
    assert events[-1]["type"] == "message_stop"
    # Anthropic's stream: usage in message_start, updated (cumulative) by message_delta.
    usage: dict[str, int] = {}
    for event in events:
        if event["type"] == "message_start":
            usage.update(event["message"]["usage"])
        elif event["type"] == "message_delta":
            usage.update(event.get("usage") or {})
    tokens = (usage["input_tokens"], usage["output_tokens"])
    message_id = events[0]["message"]["id"]
    assert_span(
        result,
        *("chat", "route-chat", tokens),
        stream=True,
        upstream="/v1/responses",
        response_id=message_id,
    )
    assert result.attributes[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(token_cost(tokens))


# ---- Responses API ---------------------------------------------------------------------------


def test_responses(gateway: Gateway) -> None:
    result = gateway.call("/v1/responses", json={"model": "route-chat", "input": f"hi {nonce()}"})
    answer = result.response.json()
    assert answer["object"] == "response" and answer["status"] == "completed"
    tokens = (answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])
    assert_span(
        result, "chat", "route-chat", tokens, upstream="/v1/responses", response_id=answer["id"]
    )
    assert result.header_cost == pytest.approx(token_cost(tokens))


def test_responses_streamed(gateway: Gateway) -> None:
    body = {"model": "route-chat", "input": f"hi {nonce()}", "stream": True}
    result = gateway.call("/v1/responses", json=body)
    events = sse_data(result.response)
    assert events[-1]["type"] == "response.completed"
    assert any(e["type"] == "response.output_text.delta" for e in events)
    usage = events[-1]["response"]["usage"]
    tokens = (usage["input_tokens"], usage["output_tokens"])
    # The response id: test_responses_streamed_span_has_the_clients_response_id.
    assert_span(result, "chat", "route-chat", tokens, stream=True, upstream="/v1/responses")
    assert result.attributes[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(token_cost(tokens))


@pytest.mark.xfail(
    strict=True,
    reason="hook: a streamed /v1/responses span's gen_ai.response.id is LiteLLM's internal id "
    "('resp_' + base64 'litellm:custom_llm_provider:openai;model_id:...;response_id:resp_...'), "
    "while the client's events carry the proxy's encrypted id (LiteLLM's ResponsesIDSecurity "
    "rewrites streamed chunks after the logging callback saw the response); on the plain route "
    "span and client agree, so a trace cannot be found by the id a streaming client holds",
)
def test_responses_streamed_span_has_the_clients_response_id(gateway: Gateway) -> None:
    body = {"model": "route-chat", "input": f"hi {nonce()}", "stream": True}
    result = gateway.call("/v1/responses", json=body)
    client_ids = {e["response"]["id"] for e in sse_data(result.response) if "response" in e}
    assert len(client_ids) == 1  # response.created ... response.completed: one response
    assert result.attributes[contract.GEN_AI_RESPONSE_ID] in client_ids


# ---- images and audio ------------------------------------------------------------------------


def test_image_generation(gateway: Gateway) -> None:
    body = {"model": "route-image", "prompt": f"a lighthouse {nonce()}"}
    result = gateway.call("/v1/images/generations", json=body)
    answer = result.response.json()
    assert answer["data"][0]["b64_json"]
    tokens = (answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])
    assert_span(
        result, "generate_content", "route-image", tokens, upstream="/v1/images/generations"
    )
    # LiteLLM prices gpt-image-1's image tokens from its own cost map, not model_info.
    assert result.header_cost is not None and result.header_cost > 0


def test_speech(gateway: Gateway) -> None:
    body = {"model": "route-speech", "input": f"say this {nonce()}", "voice": "alloy"}
    result = gateway.call("/v1/audio/speech", json=body)
    assert result.response.headers["content-type"].startswith("audio/")
    assert result.response.content
    # Audio out, no usage in the answer: no tokens; the cost LiteLLM charged (per character).
    assert_span(result, "generate_content", "route-speech", (0, 0), upstream="/v1/audio/speech")
    assert result.header_cost is not None and result.header_cost > 0


def test_transcription_priced_per_second(gateway: Gateway) -> None:
    form = {"model": "route-whisper", "prompt": nonce()}
    result = gateway.call("/v1/audio/transcriptions", files={"file": AUDIO}, data=form)
    answer = result.response.json()
    assert answer["text"] and answer["usage"] == {"type": "duration", "seconds": 1.0}
    assert_span(
        result, "generate_content", "route-whisper", (0, 0), upstream="/v1/audio/transcriptions"
    )
    assert result.header_cost == pytest.approx(answer["duration"] * SECOND_PRICE)


def test_transcription_priced_per_token(gateway: Gateway) -> None:
    form = {"model": "route-transcribe", "prompt": nonce()}
    result = gateway.call("/v1/audio/transcriptions", files={"file": AUDIO}, data=form)
    usage = result.response.json()["usage"]
    assert usage["type"] == "tokens"
    tokens = (usage["input_tokens"], usage["output_tokens"])
    assert_span(
        result, "generate_content", "route-transcribe", tokens, upstream="/v1/audio/transcriptions"
    )
    assert result.header_cost == pytest.approx(token_cost(tokens))


def test_every_span_and_metric_follows_the_genai_conventions(routes_stack: NativeStack) -> None:
    """Last in the module: every call above, checked as the conformance policies check them."""
    assert_conformant(routes_stack.spans(), routes_stack.metrics())
