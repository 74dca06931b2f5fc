"""Unit tests of the hook's pure parts: settings validation and the attribute mapping."""

from __future__ import annotations

import pytest

from llm_otel import contract
from llm_otel.attributes import (
    WELL_KNOWN_OPERATIONS,
    LLMCall,
    app_attributes,
    apply_request_headers,
    from_payload,
    from_rejected_request,
    operation_name,
    usage_detail,
)
from llm_otel.bootstrap import is_gateway_process
from llm_otel.settings import Settings, TelemetryConfigError
from scripts.native_stack.paths import REPO

PAYLOAD = {
    "call_type": "acompletion",
    "model": "qwen/qwen3",
    "model_group": "qwen/qwen3-235b",
    "custom_llm_provider": "openrouter",
    "api_base": "https://user:pw@openrouter.ai/api/v1",
    "response_cost": 0.0123,
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "startTime": 1000.0,
    "completionStartTime": 1000.25,
    "endTime": 1001.5,
    "status": "success",
    "stream": True,
    "litellm_call_id": "call-1",
    "end_user": "customer-42",
    "messages": [{"role": "user", "content": "secret prompt"}],
    "model_parameters": {"temperature": 0.2, "max_tokens": 64, "stream": True},
    "metadata": {
        "user_api_key_hash": "hash-abc",
        "user_api_key_alias": "team-key",
        "user_api_key_team_id": "team-1",
        "user_api_key": "sk-raw-never-copied",
    },
}
RESPONSE = {
    "id": "resp-1",
    "model": "qwen/qwen3-235b-a22b",
    "choices": [
        {"finish_reason": "stop", "message": {"role": "assistant", "content": "an answer"}}
    ],
}


def test_success_mapping() -> None:
    call = from_payload(PAYLOAD, RESPONSE)
    a = call.attributes
    assert call.name == "chat qwen/qwen3-235b"
    assert a[contract.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert a[contract.GEN_AI_RESPONSE_MODEL] == "qwen/qwen3-235b-a22b"
    assert a[contract.GEN_AI_RESPONSE_ID] == "resp-1"
    assert a[contract.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert (a[contract.GEN_AI_USAGE_INPUT_TOKENS], a[contract.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        11,
        7,
    )
    assert a[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0123)
    assert a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(0.25)
    assert a[contract.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert a[contract.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[contract.SERVER_ADDRESS] == "openrouter.ai"
    assert a[contract.SERVER_PORT] == 443  # conditionally required with the address: https default
    assert a[contract.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert a[contract.LITELLM_API_KEY_HASH] == "hash-abc"
    assert a[contract.LITELLM_TEAM_ID] == "team-1"
    assert a[contract.LITELLM_END_USER] == "customer-42"
    assert (call.start_ns, call.end_ns) == (1_000_000_000_000, 1_001_500_000_000)
    assert call.error_type is None
    flat = repr(a)
    assert "sk-raw-never-copied" not in flat and "secret prompt" not in flat and "pw" not in flat


def test_content_only_on_opt_in() -> None:
    a = from_payload(PAYLOAD, RESPONSE, capture_content=True).attributes
    assert "secret prompt" in a[contract.GEN_AI_INPUT_MESSAGES]
    assert "an answer" in a[contract.GEN_AI_OUTPUT_MESSAGES]


def test_failure_mapping() -> None:
    payload = {
        **PAYLOAD,
        "status": "failure",
        "stream": False,
        "error_information": {"error_class": "InternalServerError", "error_code": "500"},
    }
    call = from_payload(payload, None)
    assert call.error_type == "InternalServerError"
    assert call.attributes[contract.ERROR_TYPE] == "InternalServerError"
    assert call.attributes[contract.HTTP_RESPONSE_STATUS_CODE] == 500
    assert contract.GEN_AI_USAGE_COST_AMOUNT not in call.attributes
    assert contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in call.attributes


def test_rejected_request() -> None:
    call = from_rejected_request(
        {"model": "m", "stream": True}, "BadRequestError", 400, start_ns=5, end_ns=15
    )
    assert call.name == "chat m" and call.attributes[contract.ERROR_TYPE] == "BadRequestError"
    assert call.attributes[contract.GEN_AI_REQUEST_STREAM] is True and call.end_ns > call.start_ns


@pytest.mark.parametrize(
    ("call_type", "operation"),
    [
        ("acompletion", "chat"),
        ("aembedding", "embeddings"),
        ("atext_completion", "text_completion"),
        ("aimage_generation", "generate_content"),
        (None, "chat"),
        # Routes LiteLLM logs when it refuses a request, and operations the conventions do not name:
        ("/v1/models", None),
        ("/key/generate", None),
        ("arerank", None),
    ],
)
def test_operation_names(call_type: str | None, operation: str | None) -> None:
    assert operation_name(call_type) == operation
    assert operation is None or operation in WELL_KNOWN_OPERATIONS


def test_a_refused_route_is_not_an_llm_call() -> None:
    """`GET /v1/models` without a key: LiteLLM logs a failure whose call type is the route."""
    payload = {
        **PAYLOAD,
        "call_type": "/v1/models",
        "status": "failure",
        "model": "",
        "model_group": None,
        "error_information": {"error_class": "Exception"},
    }
    assert from_payload(payload, None) is None


OPENAI_CACHED_REASONING = {
    "prompt_tokens": 2048,
    "completion_tokens": 300,
    "total_tokens": 2348,
    "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": None},
    "completion_tokens_details": {"reasoning_tokens": 256},
}
ANTHROPIC_CACHE = {
    "prompt_tokens": 1200,
    "completion_tokens": 10,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 1000},
}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            OPENAI_CACHED_REASONING,
            {
                contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1536,
                contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 256,
            },
        ),
        (
            ANTHROPIC_CACHE,
            {
                contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
                contract.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 150,
            },
        ),
        ({"prompt_tokens": 5, "completion_tokens": 1}, {}),  # not reported: not set
        (
            {
                "prompt_tokens_details": None,
                "completion_tokens_details": {"reasoning_tokens": None},
            },
            {},
        ),
    ],
)
def test_usage_detail(usage: dict[str, object], expected: dict[str, int]) -> None:
    assert usage_detail(usage) == expected
    call = from_payload(PAYLOAD, {**RESPONSE, "usage": usage})
    assert call is not None
    detail = {
        k: v
        for k, v in call.attributes.items()
        if k.startswith("gen_ai.usage.") and k.endswith("_tokens") and k.count(".") == 3
    }
    assert detail == expected
    # input_tokens stays the total (cached included): the detail splits it, never adds to it.
    assert call.attributes[contract.GEN_AI_USAGE_INPUT_TOKENS] == PAYLOAD["prompt_tokens"]


def test_settings_defaults() -> None:
    s = Settings.from_env({})
    assert (s.disabled, s.protocol, s.capture_content) == (False, "http/protobuf", False)
    assert s.max_queue_size >= 10000 and s.traces_enabled and s.metrics_enabled


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"}, "not an http(s) URL"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "positive integer"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'otlp' or 'none'"),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "sometimes"}, "boolean"),
    ],
)
def test_settings_errors_say_what_to_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(TelemetryConfigError, match=None) as info:
        Settings.from_env(env)
    assert fragment in str(info.value)


def test_gateway_process_detection() -> None:
    assert is_gateway_process(["/venv/bin/litellm", "--config", "x"], {})
    assert not is_gateway_process(["-c"], {})  # a spawned worker without the decision
    assert is_gateway_process(["-c"], {"LLM_OTEL_ACTIVE": "1"})
    assert not is_gateway_process(["/venv/bin/litellm"], {"LLM_OTEL_ACTIVE": "0"})
    assert not is_gateway_process(["pytest"], {})


@pytest.mark.parametrize(
    ("tags", "metadata", "expected"),
    [
        (
            ["app:crm", "team:sales", "User-Agent: OpenAI/Python 3.57.0"],
            None,
            {contract.LITELLM_APP: "crm", contract.LITELLM_REQUEST_TAGS: ["app:crm", "team:sales"]},
        ),
        # Open WebUI's forwarded chat header, turned into a tag by extra_spend_tag_headers:
        (
            ["x-openwebui-chat-id: chat-42"],
            None,
            {contract.LITELLM_APP: "open-webui", contract.GEN_AI_CONVERSATION_ID: "chat-42"},
        ),
        (
            ["app:my-webui", "x-openwebui-chat-id: chat-42"],
            None,  # a named app wins
            {
                contract.LITELLM_APP: "my-webui",
                contract.LITELLM_REQUEST_TAGS: ["app:my-webui"],
                contract.GEN_AI_CONVERSATION_ID: "chat-42",
            },
        ),
        (
            None,
            {"session_id": "s-1", "api_key": "never-read"},
            {contract.GEN_AI_CONVERSATION_ID: "s-1"},
        ),
        (["User-Agent: curl/8"], {"session_id": 7}, {}),
    ],
)
def test_app_attributes(
    tags: list[str] | None, metadata: dict[str, object] | None, expected: dict[str, object]
) -> None:
    assert app_attributes(tags, metadata) == expected


OPEN_WEBUI_USER = {"x-openwebui-user-id": "u-1", "x-openwebui-user-name": "Ada"}


@pytest.mark.parametrize(
    ("attributes", "headers", "expected"),
    [
        # Open WebUI's API used directly: no chat, its user headers on the call all the same.
        ({}, OPEN_WEBUI_USER, {contract.LITELLM_APP: "open-webui"}),
        (
            {},
            {**OPEN_WEBUI_USER, "x-openwebui-chat-id": "chat-9"},
            {contract.LITELLM_APP: "open-webui", contract.GEN_AI_CONVERSATION_ID: "chat-9"},
        ),
        # What the client named itself stays: an app tag, a session id in the body.
        (
            {contract.LITELLM_APP: "my-webui", contract.GEN_AI_CONVERSATION_ID: "s-1"},
            {**OPEN_WEBUI_USER, "x-openwebui-chat-id": "chat-9"},
            {contract.LITELLM_APP: "my-webui", contract.GEN_AI_CONVERSATION_ID: "s-1"},
        ),
        ({}, {"user-agent": "curl/8", "x-openwebui-user-name": "no id"}, {}),
        ({}, None, {}),
    ],
)
def test_known_clients_are_recognised_by_their_headers(
    attributes: dict[str, object], headers: dict[str, str] | None, expected: dict[str, object]
) -> None:
    call = LLMCall("chat m", 1, 2, dict(attributes))
    apply_request_headers(call, headers)
    assert call.attributes == expected
    assert call.caller_headers is None  # no traceparent: nothing to continue


def test_the_caller_trace_context_is_kept_from_the_headers() -> None:
    call = LLMCall("chat m", 1, 2)
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    apply_request_headers(call, headers)
    assert call.caller_headers == headers and call.attributes == {}


def test_every_contract_name_is_documented() -> None:
    """docs/CONTRACTS.md is where a reader of the stored spans looks a name up: a name added to
    contract.py alone would be an attribute nobody knows to query."""
    doc = (REPO / "docs" / "CONTRACTS.md").read_text()
    names = {
        value
        for key, value in vars(contract).items()
        if key.isupper() and key not in ("SCOPE_VERSION", "SCHEMA_URL")
    }
    assert {name for name in names if f"`{name}`" not in doc} == set()
    assert contract.SCHEMA_URL in doc


def test_content_guard_counts_only_loggers_that_ship_content() -> None:
    from types import SimpleNamespace

    from llm_otel.content_guard import content_loggers, guard

    class Ours:
        pass

    class RouterHook:  # LiteLLM's own: module litellm.router
        __module__ = "litellm.router"

    class TeamLogger:
        __module__ = "my_company.callbacks"

    ours = Ours()
    quiet = SimpleNamespace(callbacks=[ours, RouterHook()], success_callback=[])
    assert content_loggers(quiet, ours) == []
    assert list(guard(quiet, ours, capture_content=False)) == []
    assert quiet.turn_off_message_logging is False  # nothing to protect: no copies
    loud = SimpleNamespace(callbacks=[ours, TeamLogger()], success_callback=["langfuse"])
    found = content_loggers(loud, ours)
    assert found[0].startswith("my_company.callbacks.") and found[0].endswith("TeamLogger")
    assert found[1:] == ["langfuse"]
    guard(loud, ours, capture_content=False)
    assert loud.turn_off_message_logging is True
    guard(loud, ours, capture_content=True)
    assert loud.turn_off_message_logging is False  # content capture asked for, everywhere
