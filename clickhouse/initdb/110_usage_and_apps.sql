-- 110_usage_and_apps.sql: token usage detail, the calling app, and only real LLM calls counted.
--
-- * Cached and reasoning tokens (gen_ai.usage.cache_read.input_tokens,
--   gen_ai.usage.cache_creation.input_tokens, gen_ai.usage.reasoning.output_tokens): columns in
--   llm_calls and the daily aggregate. They split input_tokens / output_tokens, which include them.
-- * The calling app, its end user's conversation and the client's request tags (docs/CLIENTS.md):
--   columns app, conversation_id, request_tags in llm_calls.
-- * An LLM call is a span whose gen_ai.operation.name is one of the GenAI conventions'
--   well-known values. Spans stored before the hook stopped emitting them (a refused
--   `GET /v1/models` once became a span named after the route) are left as they are, and no
--   longer counted. Daily rows already aggregated are not rewritten.
--
-- How it upgrades a volume made by 001-100: the views are replaced, the aggregate table gains
-- columns (0 in older rows), and the materialized view's query is changed in place (MODIFY
-- QUERY keeps its target table and state). Every statement is idempotent, so `make schema`
-- may run it again.

CREATE OR REPLACE VIEW otel.llm_calls
AS SELECT
    Timestamp AS timestamp,
    toDate(Timestamp, 'UTC') AS day,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    ServiceName AS service,
    ResourceAttributes['deployment.environment.name'] AS environment,
    SpanName AS span_name,
    SpanAttributes['gen_ai.operation.name'] AS operation,
    SpanAttributes['gen_ai.request.model'] AS request_model,
    SpanAttributes['gen_ai.response.model'] AS response_model,
    SpanAttributes['litellm.model_group'] AS model_group,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
    input_tokens + output_tokens AS total_tokens,
    -- A split of input_tokens (which includes them) and of output_tokens; 0 when not reported.
    toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cache_read_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_creation.input_tokens']) AS cache_creation_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS reasoning_output_tokens,
    toFloat64OrZero(SpanAttributes['gen_ai.usage.cost']) AS cost_usd,
    Duration / 1e6 AS duration_ms,
    -- Seconds in the span, milliseconds here; NULL (not 0) when absent, i.e. for non-streams.
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000 AS ttft_ms,
    SpanAttributes['gen_ai.request.stream'] = 'true' AS is_stream,
    -- The hook sets status ERROR and error.type together; either one marks a failed call.
    (StatusCode = 'Error') OR (SpanAttributes['error.type'] != '') AS is_error,
    StatusCode AS status_code,
    StatusMessage AS status_message,
    SpanAttributes['error.type'] AS error_type,
    SpanAttributes['gen_ai.response.finish_reasons'] AS finish_reasons,
    SpanAttributes['gen_ai.response.id'] AS response_id,
    SpanAttributes['litellm.call_id'] AS call_id,
    SpanAttributes['litellm.api_key_hash'] AS api_key_hash,
    SpanAttributes['litellm.api_key_alias'] AS api_key_alias,
    SpanAttributes['litellm.team_id'] AS team_id,
    SpanAttributes['litellm.team_alias'] AS team_alias,
    SpanAttributes['litellm.end_user'] AS end_user,
    SpanAttributes['litellm.user_id'] AS user_id,
    SpanAttributes['litellm.app'] AS app,
    SpanAttributes['gen_ai.conversation.id'] AS conversation_id,
    -- The exporter stores a string array as JSON text, e.g. ["app:crm","team:sales"].
    JSONExtract(SpanAttributes['litellm.request_tags'], 'Array(String)') AS request_tags
FROM otel.otel_traces
WHERE ScopeName = 'llm_otel'
    AND SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'embeddings', 'generate_content', 'create_agent',
        'invoke_agent', 'execute_tool');

ALTER TABLE otel.llm_usage_daily_agg
    ADD COLUMN IF NOT EXISTS `cache_read_input_tokens` SimpleAggregateFunction(sum, UInt64)
        AFTER output_tokens,
    ADD COLUMN IF NOT EXISTS `cache_creation_input_tokens` SimpleAggregateFunction(sum, UInt64)
        AFTER cache_read_input_tokens,
    ADD COLUMN IF NOT EXISTS `reasoning_output_tokens` SimpleAggregateFunction(sum, UInt64)
        AFTER cache_creation_input_tokens;

ALTER TABLE otel.llm_usage_daily_mv MODIFY QUERY
SELECT
    toDate(Timestamp, 'UTC') AS day,
    SpanAttributes['gen_ai.request.model'] AS request_model,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    SpanAttributes['litellm.team_id'] AS team_id,
    SpanAttributes['litellm.team_alias'] AS team_alias,
    SpanAttributes['litellm.api_key_hash'] AS api_key_hash,
    SpanAttributes['litellm.api_key_alias'] AS api_key_alias,
    toUInt64(count()) AS calls,
    toUInt64(countIf((StatusCode = 'Error') OR (SpanAttributes['error.type'] != ''))) AS errors,
    toUInt64(countIf(SpanAttributes['gen_ai.request.stream'] = 'true')) AS streamed_calls,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS output_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens'])) AS cache_read_input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_creation.input_tokens'])) AS cache_creation_input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens'])) AS reasoning_output_tokens,
    sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost'])) AS cost_usd,
    max(Duration / 1e6) AS duration_ms_max,
    quantilesState(0.5, 0.95, 0.99)(Duration / 1e6) AS duration_ms_state,
    toUInt64(countIf(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) IS NOT NULL)) AS ttft_samples,
    quantilesIfState(0.5, 0.95)(
        ifNull(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000, 0.),
        toUInt8(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) IS NOT NULL)
    ) AS ttft_ms_state
FROM otel.otel_traces
WHERE ScopeName = 'llm_otel'
    AND SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'embeddings', 'generate_content', 'create_agent',
        'invoke_agent', 'execute_tool')
GROUP BY day, request_model, provider, team_id, team_alias, api_key_hash, api_key_alias;

CREATE OR REPLACE VIEW otel.llm_usage_daily
AS SELECT
    day,
    request_model,
    provider,
    team_id,
    team_alias,
    api_key_hash,
    api_key_alias,
    calls,
    errors,
    streamed_calls,
    input_tokens,
    output_tokens,
    input_tokens + output_tokens AS total_tokens,
    cache_read_input_tokens,
    cache_creation_input_tokens,
    reasoning_output_tokens,
    cost_usd,
    duration_q[1] AS p50_duration_ms,
    duration_q[2] AS p95_duration_ms,
    duration_q[3] AS p99_duration_ms,
    toFloat64(duration_ms_max) AS max_duration_ms,
    if(ttft_samples = 0, NULL, ttft_q[1]) AS p50_ttft_ms,
    if(ttft_samples = 0, NULL, ttft_q[2]) AS p95_ttft_ms
FROM
(
    SELECT
        day,
        request_model,
        provider,
        team_id,
        team_alias,
        api_key_hash,
        api_key_alias,
        sum(calls) AS calls,
        sum(errors) AS errors,
        sum(streamed_calls) AS streamed_calls,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(cache_read_input_tokens) AS cache_read_input_tokens,
        sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
        sum(reasoning_output_tokens) AS reasoning_output_tokens,
        sum(cost_usd) AS cost_usd,
        max(duration_ms_max) AS duration_ms_max,
        quantilesMerge(0.5, 0.95, 0.99)(duration_ms_state) AS duration_q,
        sum(ttft_samples) AS ttft_samples,
        quantilesIfMerge(0.5, 0.95)(ttft_ms_state) AS ttft_q
    FROM otel.llm_usage_daily_agg
    GROUP BY day, request_model, provider, team_id, team_alias, api_key_hash, api_key_alias
);

INSERT INTO otel.schema_version (version, name)
SELECT 110, '110_usage_and_apps'
WHERE 110 NOT IN (SELECT version FROM otel.schema_version);
