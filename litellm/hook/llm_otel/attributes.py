"""Map LiteLLM's logging payload to OpenTelemetry GenAI semantic-convention attributes.

Pure functions over plain data, so they are unit-tested without a proxy. Only LiteLLM's hashes
and aliases of keys are ever copied: the payload's raw key fields are never read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import contract
from .capture import CapturePolicy

# LiteLLM call types -> gen_ai.operation.name, always one of the conventions' well-known values.
# A call type not listed here (a proxy route such as "/v1/models" that LiteLLM logs when it
# refuses a request, or rerank/moderation, which the conventions name no operation for) is not
# recorded as an LLM call: the request keeps its HTTP server span (docs/CONTRACTS.md).
_OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "responses": "chat",
    "aresponses": "chat",
    "anthropic_messages": "chat",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    # Multimodal generation: the conventions' generate_content.
    "generate_content": "generate_content",
    "agenerate_content": "generate_content",
    "image_generation": "generate_content",
    "aimage_generation": "generate_content",
    "speech": "generate_content",
    "aspeech": "generate_content",
    "transcription": "generate_content",
    "atranscription": "generate_content",
}
WELL_KNOWN_OPERATIONS = frozenset(_OPERATIONS.values())

# LiteLLM provider ids -> gen_ai.provider.name well-known values; others pass through as is.
_PROVIDERS = {
    # LiteLLM names a provider's text-completion route as a provider of its own.
    "text-completion-openai": "openai",
    "azure_text": "azure.ai.openai",
    "text-completion-codestral": "mistral_ai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}

# metadata key in LiteLLM's payload -> span attribute. Hashes and aliases only, by design.
_IDENTITY = {
    "user_api_key_hash": contract.LITELLM_API_KEY_HASH,
    "user_api_key_alias": contract.LITELLM_API_KEY_ALIAS,
    "user_api_key_team_id": contract.LITELLM_TEAM_ID,
    "user_api_key_team_alias": contract.LITELLM_TEAM_ALIAS,
    "user_api_key_user_id": contract.LITELLM_USER_ID,
}

# Which app made the call (docs/CLIENTS.md): a request tag `app:NAME` (header
# `x-litellm-tags: app:NAME`, or `tags` in the body), else Open WebUI when its forwarded chat
# header arrived as a tag (litellm/config.yaml `extra_spend_tag_headers`).
APP_TAG_PREFIX = "app:"
OPEN_WEBUI_CHAT_TAG = "x-openwebui-chat-id: "
# Open WebUI with ENABLE_FORWARD_USER_INFO_HEADERS sends these on every call it makes (the chat
# id only for calls made from a chat); LiteLLM records the request headers, lower-cased.
OPEN_WEBUI = "open-webui"
OPEN_WEBUI_HEADERS = ("x-openwebui-user-id", "x-openwebui-chat-id")
# Tags LiteLLM adds itself; the client's own user agent is not a tag the client chose.
_AUTOMATIC_TAG_PREFIXES = ("User-Agent: ",)

# LiteLLM's error class for a client that went away mid-call (its error code is 499).
CLIENT_DISCONNECTED = "ClientDisconnected"

_REQUEST_PARAMS = {
    "temperature": contract.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": contract.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": contract.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": contract.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": contract.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": contract.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": contract.GEN_AI_REQUEST_SEED,
}


@dataclass
class LLMCall:
    """Everything needed to emit the span and the metrics for one call."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error_type: str | None = None
    # Failed provider attempts before the terminal one: (time in ns, event attributes).
    attempt_events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # The client's request headers as LiteLLM recorded them: the caller's `traceparent`.
    caller_headers: Mapping[str, Any] | None = None


def operation_name(call_type: str | None) -> str | None:
    """The GenAI operation of a LiteLLM call type; None when it is not an LLM call."""
    if not call_type:
        return "chat"
    return _OPERATIONS.get(str(call_type))


def provider_name(custom_llm_provider: str | None) -> str | None:
    if not custom_llm_provider:
        return None
    return _PROVIDERS.get(custom_llm_provider, custom_llm_provider)


def _get(obj: Any, key: str) -> Any:
    if type(obj) is dict:  # most reads; skips the abstract-class check below (per call, per key)
        return obj.get(key)
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def finish_reasons(response: Any) -> list[str]:
    choices = _get(response, "choices") or []
    reasons = [_get(choice, "finish_reason") for choice in choices]
    return [str(reason) for reason in reasons if reason]


_DEFAULT_PORTS = {"https": 443, "http": 80}


def server_attributes(api_base: Any) -> dict[str, Any]:
    """server.address and server.port of the provider endpoint (the port is conditionally
    required with the address; a URL without one uses its scheme's default)."""
    return dict(_server(api_base)) if isinstance(api_base, str) and api_base else {}


@functools.lru_cache(maxsize=256)
def _server(api_base: str) -> tuple[tuple[str, Any], ...]:
    # A gateway calls a handful of endpoints: parse each once, not on every call.
    try:
        url = urlsplit(api_base)
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
    except ValueError:
        return ()
    if not url.hostname:  # hostname drops any user:password@ part
        return ()
    if port:
        return ((contract.SERVER_ADDRESS, url.hostname), (contract.SERVER_PORT, port))
    return ((contract.SERVER_ADDRESS, url.hostname),)


def _to_ns(seconds: Any) -> int | None:
    if isinstance(seconds, (int, float)) and seconds > 0:
        return int(seconds * 1e9)
    return None


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def output_messages(response: Any) -> list[dict[str, Any]]:
    messages = []
    for choice in _get(response, "choices") or []:
        message = _get(choice, "message") or {}
        messages.append(
            {
                "role": _get(message, "role") or "assistant",
                "content": _get(message, "content"),
                "finish_reason": _get(choice, "finish_reason"),
            }
        )
    return messages


def from_payload(
    payload: Mapping[str, Any],
    response: Any = None,
    *,
    capture_content: bool | CapturePolicy = False,
    fallback_model: str | None = None,
) -> LLMCall | None:
    """Build the call record from `kwargs["standard_logging_object"]` (+ the response object);
    None when the payload is not an LLM call (see _OPERATIONS)."""
    operation = operation_name(payload.get("call_type"))
    if operation is None:
        return None
    request_model = payload.get("model_group") or fallback_model or payload.get("model") or ""
    metadata = payload.get("metadata") or {}
    attrs: dict[str, Any] = {
        contract.GEN_AI_OPERATION_NAME: operation,
        contract.GEN_AI_REQUEST_MODEL: request_model,
    }
    optional: dict[str, Any] = {
        contract.GEN_AI_PROVIDER_NAME: provider_name(payload.get("custom_llm_provider")),
        contract.GEN_AI_RESPONSE_MODEL: _get(response, "model") or payload.get("model") or None,
        contract.GEN_AI_RESPONSE_ID: _get(response, "id"),
        # Set if and only if the request streams (the conventions: unset means not streaming).
        contract.GEN_AI_REQUEST_STREAM: True if payload.get("stream") else None,
        contract.LITELLM_MODEL_GROUP: payload.get("model_group"),
        contract.LITELLM_CALL_ID: payload.get("litellm_call_id") or payload.get("id"),
        contract.LITELLM_END_USER: payload.get("end_user")
        or metadata.get("user_api_key_end_user_id"),
    }
    optional.update(server_attributes(payload.get("api_base")))
    for source, target in _IDENTITY.items():
        optional[target] = metadata.get(source)
    params = payload.get("model_parameters") or {}
    for source, target in _REQUEST_PARAMS.items():
        value = params.get(source)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            optional[target] = value
    attrs.update({k: v for k, v in optional.items() if v not in (None, "")})

    reasons = finish_reasons(response)
    if reasons:
        attrs[contract.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    attrs.update(app_attributes(payload.get("request_tags"), metadata.get("requester_metadata")))

    start_ns = _to_ns(payload.get("startTime")) or 0
    end_ns = _to_ns(payload.get("endTime")) or start_ns
    error_type = _add_outcome(attrs, payload, response, metadata, start_ns)
    if capture_content is True or (
        isinstance(capture_content, CapturePolicy) and capture_content.allows(attrs)
    ):
        _add_content(attrs, payload, response)  # called only when content is captured
    return LLMCall(
        name=f"{operation} {request_model}".strip(),
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attrs,
        error_type=error_type,
    )


def _add_outcome(
    attrs: dict[str, Any],
    payload: Mapping[str, Any],
    response: Any,
    metadata: Mapping[str, Any],
    start_ns: int,
) -> str | None:
    """How the call ended: its error (returned), else its usage, cost and time to first chunk."""
    info = payload.get("error_information") or {}
    disconnected = info.get("error_class") == CLIENT_DISCONNECTED
    if disconnected:
        # The client left; the gateway did not fail. Whatever usage LiteLLM knew is kept.
        attrs[contract.LITELLM_CALL_CLIENT_DISCONNECTED] = True
    if payload.get("status") == "failure" and not disconnected:
        error_type = str(info.get("error_class") or info.get("error_code") or "error")
        attrs[contract.ERROR_TYPE] = error_type
        code = info.get("error_code")
        if code not in (None, ""):
            attrs[contract.HTTP_RESPONSE_STATUS_CODE] = _int_or_none(code) or str(code)
        return error_type
    attrs[contract.GEN_AI_USAGE_INPUT_TOKENS] = int(payload.get("prompt_tokens") or 0)
    attrs[contract.GEN_AI_USAGE_OUTPUT_TOKENS] = int(payload.get("completion_tokens") or 0)
    attrs.update(usage_detail(_get(response, "usage") or metadata.get("usage_object")))
    cost = payload.get("response_cost")
    if isinstance(cost, (int, float)):
        attrs[contract.GEN_AI_USAGE_COST_AMOUNT] = float(cost)
        attrs[contract.GEN_AI_USAGE_COST_CURRENCY] = contract.COST_CURRENCY
    first_chunk_ns = _to_ns(payload.get("completionStartTime"))
    if payload.get("stream") and first_chunk_ns and start_ns and first_chunk_ns >= start_ns:
        attrs[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (first_chunk_ns - start_ns) / 1e9
    return None


def _add_content(attrs: dict[str, Any], payload: Mapping[str, Any], response: Any) -> None:
    """The messages in and out, as JSON text (only where content capture is on)."""
    messages = payload.get("messages")
    if messages:
        attrs[contract.GEN_AI_INPUT_MESSAGES] = _json(messages)
    outputs = output_messages(response)
    if outputs:
        attrs[contract.GEN_AI_OUTPUT_MESSAGES] = _json(outputs)


def from_rejected_request(
    request_data: Mapping[str, Any],
    error_type: str,
    status_code: int | None,
    *,
    start_ns: int,
    end_ns: int,
) -> LLMCall:
    """An LLM call the proxy refused before any provider saw it (bad request, unknown model)."""
    model = str(request_data.get("model") or "")
    operation = "chat"
    attrs: dict[str, Any] = {
        contract.GEN_AI_OPERATION_NAME: operation,
        contract.GEN_AI_REQUEST_MODEL: model,
        contract.ERROR_TYPE: error_type,
    }
    if request_data.get("stream"):
        attrs[contract.GEN_AI_REQUEST_STREAM] = True
    call_id = request_data.get("litellm_call_id")
    if call_id:
        attrs[contract.LITELLM_CALL_ID] = str(call_id)
    if status_code is not None:
        attrs[contract.HTTP_RESPONSE_STATUS_CODE] = status_code
    return LLMCall(
        name=f"{operation} {model}".strip(),
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attrs,
        error_type=error_type,
    )


def app_attributes(request_tags: Any, requester_metadata: Any) -> dict[str, Any]:
    """The calling app, the conversation, and the tags the client set (never a header value
    other than Open WebUI's chat id, which LiteLLM turns into a tag only when configured)."""
    tags = [str(t) for t in request_tags or [] if isinstance(t, str)]
    out: dict[str, Any] = {}
    chosen = [t for t in tags if not t.startswith((*_AUTOMATIC_TAG_PREFIXES, OPEN_WEBUI_CHAT_TAG))]
    if chosen:
        out[contract.LITELLM_REQUEST_TAGS] = chosen
    app = next(
        (t[len(APP_TAG_PREFIX) :].strip() for t in chosen if t.startswith(APP_TAG_PREFIX)), None
    )
    chat = next(
        (t[len(OPEN_WEBUI_CHAT_TAG) :].strip() for t in tags if t.startswith(OPEN_WEBUI_CHAT_TAG)),
        None,
    )
    if not app and chat:
        app = OPEN_WEBUI
    if app:
        out[contract.LITELLM_APP] = app
    session = (
        (requester_metadata or {}).get("session_id")
        if isinstance(requester_metadata, Mapping)
        else None
    )
    conversation = chat or (session if isinstance(session, str) else None)
    if conversation:
        out[contract.GEN_AI_CONVERSATION_ID] = conversation
    return out


def usage_detail(usage: Any) -> dict[str, int]:
    """Cached and reasoning token counts, only those the provider reported.

    `gen_ai.usage.input_tokens` already includes cached tokens (OpenAI's prompt_tokens does, and
    LiteLLM folds Anthropic's cache reads and writes into it), so these are a split of it, never
    added to it. OpenAI reports cache reads in prompt_tokens_details.cached_tokens; Anthropic (as
    LiteLLM passes it on) in cache_read_input_tokens and cache_creation_input_tokens.
    """
    if not usage:
        return {}
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    found = {
        contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: _first_int(
            _get(usage, "cache_read_input_tokens"), _get(prompt_details, "cached_tokens")
        ),
        contract.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: _first_int(
            _get(usage, "cache_creation_input_tokens"),
            _get(prompt_details, "cache_creation_tokens"),
        ),
        contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: _first_int(
            _get(completion_details, "reasoning_tokens")
        ),
    }
    return {key: value for key, value in found.items() if value is not None}


def _first_int(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def request_headers(*sources: Any) -> Mapping[str, Any] | None:
    """The request headers LiteLLM recorded: the `headers` of the first source that has any."""
    for source in sources:
        headers = _get(source, "headers") if source else None
        if isinstance(headers, Mapping) and headers:
            return headers
    return None


def caller_headers(headers: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The headers, if the caller sent a W3C trace context in them (read for nothing else)."""
    return headers if headers and "traceparent" in headers else None


def client_attributes(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The app and conversation a known client names in its own headers: Open WebUI's
    forwarded user headers are on every call it sends, with or without a chat."""
    if not headers or not any(name in headers for name in OPEN_WEBUI_HEADERS):
        return {}
    out: dict[str, Any] = {contract.LITELLM_APP: OPEN_WEBUI}
    chat = headers.get("x-openwebui-chat-id")
    if isinstance(chat, str) and chat.strip():
        out[contract.GEN_AI_CONVERSATION_ID] = chat.strip()
    return out


def apply_request_headers(call: LLMCall, headers: Mapping[str, Any] | None) -> None:
    """What the headers tell about a call, under what its tags and body said already."""
    call.caller_headers = caller_headers(headers)
    for key, value in client_attributes(headers).items():
        call.attributes.setdefault(key, value)
