-- 120_attempts_and_names.sql: one call row per client request, its provider attempts alongside;
-- the current GenAI names.
--
-- Since llm_otel 0.2.0 a call LiteLLM retried or served by a fallback is one span whose status,
-- tokens and cost are those of the answer the client got (docs/CONTRACTS.md, "Attempts"); the
-- failed attempts before it are span events named 'litellm.attempt.failed'. This file:
-- * llm_calls gains attempts, is_fallback and client_disconnected (rows stored before it read
--   1, false, false: an older hook recorded a retried call as its first failure, and those
--   rows are left as they were stored);
-- * llm_attempts: one row per provider attempt, the failed ones (events) and the attempt that
--   ended the call (the span itself);
-- * the daily aggregate counts retried calls, failed attempts and fallback answers (0 in
--   older rows; the MV's query is changed in place, as 110 did).
-- * llm_otel 0.2.0 follows semantic-conventions-genai: the cost is gen_ai.usage.cost.amount (with
--   gen_ai.usage.cost.currency), cache writes gen_ai.usage.cache_write.input_tokens. The views
--   read the new name and, for rows stored before, the old one (gen_ai.usage.cost,
--   gen_ai.usage.cache_creation.input_tokens); column names stay as they were.
-- Every statement is idempotent, so `make schema` may run it again.

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
    toUInt64OrZero(coalesce(nullIf(SpanAttributes['gen_ai.usage.cache_write.input_tokens'], ''), SpanAttributes['gen_ai.usage.cache_creation.input_tokens'])) AS cache_creation_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS reasoning_output_tokens,
    toFloat64OrZero(coalesce(nullIf(SpanAttributes['gen_ai.usage.cost.amount'], ''), SpanAttributes['gen_ai.usage.cost'])) AS cost_usd,
    Duration / 1e6 AS duration_ms,
    -- Seconds in the span, milliseconds here; NULL (not 0) when absent, i.e. for non-streams.
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000 AS ttft_ms,
    SpanAttributes['gen_ai.request.stream'] = 'true' AS is_stream,
    -- The hook sets status ERROR and error.type together; either one marks a failed call.
    (StatusCode = 'Error') OR (SpanAttributes['error.type'] != '') AS is_error,
    -- The attempt rule (120): provider attempts behind this call (1 for rows before 120),
    -- whether a fallback model group answered it, and whether the client left before the end.
    greatest(toUInt32OrZero(SpanAttributes['litellm.call.attempts']), 1) AS attempts,
    SpanAttributes['litellm.call.fallback'] = 'true' AS is_fallback,
    SpanAttributes['litellm.call.client_disconnected'] = 'true' AS client_disconnected,
    toUInt16OrZero(SpanAttributes['http.response.status_code']) AS http_status_code,
    -- (time, attributes) of each failed attempt before the one that ended the call.
    arrayMap(e -> (e.1, e.2), arrayFilter(e -> e.3 = 'litellm.attempt.failed',
        arrayZip(Events.Timestamp, Events.Attributes, Events.Name))) AS failed_attempt_events,
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

CREATE OR REPLACE VIEW otel.llm_attempts
AS SELECT
    timestamp AS call_timestamp,
    trace_id,
    span_id,
    call_id,
    request_model,
    app,
    api_key_hash,
    attempt.1 AS attempt_timestamp,
    toUInt32OrZero(attempt.2['litellm.attempt.number']) AS attempt_number,
    attempt.2['litellm.model_group'] AS model_group,
    attempt.2['litellm.attempt.model'] AS model,
    attempt.2['error.type'] AS error_type,
    toUInt16OrZero(attempt.2['http.response.status_code']) AS http_status_code,
    true AS is_error,
    false AS ended_call
FROM otel.llm_calls
ARRAY JOIN failed_attempt_events AS attempt
UNION ALL
SELECT
    timestamp AS call_timestamp,
    trace_id,
    span_id,
    call_id,
    request_model,
    app,
    api_key_hash,
    timestamp AS attempt_timestamp,
    attempts AS attempt_number,
    model_group,
    response_model AS model,
    error_type,
    http_status_code,
    is_error,
    true AS ended_call
FROM otel.llm_calls;

ALTER TABLE otel.llm_usage_daily_agg
    ADD COLUMN IF NOT EXISTS `retried_calls` SimpleAggregateFunction(sum, UInt64)
        AFTER streamed_calls,
    ADD COLUMN IF NOT EXISTS `failed_attempts` SimpleAggregateFunction(sum, UInt64)
        AFTER retried_calls,
    ADD COLUMN IF NOT EXISTS `fallback_calls` SimpleAggregateFunction(sum, UInt64)
        AFTER failed_attempts;

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
    toUInt64(countIf(toUInt32OrZero(SpanAttributes['litellm.call.attempts']) > 1)) AS retried_calls,
    toUInt64(sum(greatest(toUInt32OrZero(SpanAttributes['litellm.call.attempts']), 1) - 1)) AS failed_attempts,
    toUInt64(countIf(SpanAttributes['litellm.call.fallback'] = 'true')) AS fallback_calls,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS output_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens'])) AS cache_read_input_tokens,
    sum(toUInt64OrZero(coalesce(nullIf(SpanAttributes['gen_ai.usage.cache_write.input_tokens'], ''), SpanAttributes['gen_ai.usage.cache_creation.input_tokens']))) AS cache_creation_input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens'])) AS reasoning_output_tokens,
    sum(toFloat64OrZero(coalesce(nullIf(SpanAttributes['gen_ai.usage.cost.amount'], ''), SpanAttributes['gen_ai.usage.cost']))) AS cost_usd,
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
    retried_calls,
    failed_attempts,
    fallback_calls,
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
        sum(retried_calls) AS retried_calls,
        sum(failed_attempts) AS failed_attempts,
        sum(fallback_calls) AS fallback_calls,
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
SELECT 120, '120_attempts_and_names'
WHERE 120 NOT IN (SELECT version FROM otel.schema_version);
