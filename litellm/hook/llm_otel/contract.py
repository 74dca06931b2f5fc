"""The span contract: every attribute, metric and scope name the hook emits (docs/CONTRACTS.md).

One home for these names, shared by the hook, the tests and the scripts (which reach it through
scripts/span_contract.py). Standard library only: the hook is baked into the gateway image.
Constant names follow the `opentelemetry-semantic-conventions` package, so they read the same
as in the OpenTelemetry GenAI instrumentations; the package itself is not a dependency of the
image, and its GenAI names are deprecated there since they moved to their own repository.
"""

from __future__ import annotations

from typing import Final

from . import __version__

# ---- instrumentation scope ----------------------------------------------------------------------
SCOPE_NAME: Final = "llm_otel"
SCOPE_VERSION: Final = __version__
# The GenAI conventions live in open-telemetry/semantic-conventions-genai, published on its
# development channel (gen-ai-dev/X.Y.Z-dev); these names follow 1.42.0-dev (docs/CONTRACTS.md).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev"

# ---- GenAI span attributes (semantic conventions) -----------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"

GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"

GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
# Parts of the two totals above, never added to them (attributes.usage_detail).
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# Message content: only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"

# The call's price as LiteLLM computed it, in the shape of the open proposal for GenAI cost
# (semantic-conventions-genai PR #443, not merged yet): an amount and its ISO 4217 currency.
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
COST_CURRENCY: Final = "USD"  # LiteLLM prices every model in US dollars

# Names stored by llm_otel before 0.2.0; the views read them for older rows.
LEGACY_GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"

# ---- general semantic-convention attributes -----------------------------------------------------
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

# ---- this project's own attributes (LiteLLM's view of the call; hashes and aliases only) --------
LITELLM_CALL_ID: Final = "litellm.call_id"
LITELLM_MODEL_GROUP: Final = "litellm.model_group"
LITELLM_END_USER: Final = "litellm.end_user"
LITELLM_API_KEY_HASH: Final = "litellm.api_key_hash"
LITELLM_API_KEY_ALIAS: Final = "litellm.api_key_alias"
LITELLM_TEAM_ID: Final = "litellm.team_id"
LITELLM_TEAM_ALIAS: Final = "litellm.team_alias"
LITELLM_USER_ID: Final = "litellm.user_id"
LITELLM_APP: Final = "litellm.app"
LITELLM_REQUEST_TAGS: Final = "litellm.request_tags"
# The attempt rule (docs/CONTRACTS.md): one span per client request, its failed provider
# attempts as span events named LITELLM_ATTEMPT_FAILED.
LITELLM_CALL_ATTEMPTS: Final = "litellm.call.attempts"  # int: provider attempts, >= 1
LITELLM_CALL_FALLBACK: Final = "litellm.call.fallback"  # bool: a fallback model group answered
# bool: the client went away before the answer ended (the usage is what was produced by then).
LITELLM_CALL_CLIENT_DISCONNECTED: Final = "litellm.call.client_disconnected"
LITELLM_ATTEMPT_FAILED: Final = "litellm.attempt.failed"  # span event name
LITELLM_ATTEMPT_NUMBER: Final = "litellm.attempt.number"  # event attribute, 1-based
LITELLM_ATTEMPT_MODEL: Final = "litellm.attempt.model"  # event attribute: the deployment's model

# ---- metrics: derived from the call spans by the collector (otel-collector/config.yaml) ------
GEN_AI_CLIENT_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
GEN_AI_CLIENT_EMBEDDINGS_DURATION: Final = "gen_ai.client.embeddings.duration"
GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.operation.input_tokens"
)
GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = (
    "gen_ai.client.inference.operation.output_tokens"
)
GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS: Final = (
    "gen_ai.client.embeddings.operation.input_tokens"
)
GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
# The proposal's cost histogram (PR #443), in the currency above.
GEN_AI_CLIENT_OPERATION_COST: Final = "gen_ai.client.operation.cost"
# Required on the usage counters: text, image, audio or unknown (the spans do not say).
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"

# ---- the hook's own health (llm_otel/health.py; scope SCOPE_NAME) -------------------------------
LLM_OTEL_SPANS_HELD: Final = "llm_otel.spans.held"  # gauge
LLM_OTEL_SPANS_DROPPED: Final = "llm_otel.spans.dropped"  # counter
LLM_OTEL_EXPORTS_FAILED: Final = "llm_otel.exports.failed"  # counter
LLM_OTEL_CALLS_OPEN: Final = "llm_otel.calls.open"  # gauge
LLM_OTEL_CALLS_EXPIRED: Final = "llm_otel.calls.expired"  # counter
LLM_OTEL_REQUESTS_REFUSED: Final = "llm_otel.requests.refused"  # counter: a refused key
# counter, by `llm_otel.touchpoint`: a LiteLLM internal the hook reads was missing (touchpoints.py)
LLM_OTEL_TOUCHPOINTS_MISSING: Final = "llm_otel.touchpoints.missing"
LLM_OTEL_TOUCHPOINT: Final = "llm_otel.touchpoint"
