-- 100_llm_views.sql: LLM-call views over the spans the gateway's llm_otel hook emits.
--
-- An LLM span is a span of the gateway's hook (scope `llm_otel`) with a non-empty
-- `gen_ai.operation.name` (one per LLM call; docs/CONTRACTS.md). The scope matters: other apps
-- may send GenAI spans to the same collector, and counting theirs would double-count calls. The exporter stores every attribute as a string, so numbers are
-- parsed here: ints with toUInt64OrZero, floats with toFloat64OrZero/OrNull (which also accept
-- the exponent form OTel uses for tiny doubles, e.g. a cost of "5e-7"), booleans as 'true'.
-- Days are UTC days, independent of the server's timezone.
--
-- Objects
--   otel.llm_calls              plain VIEW, one row per LLM span, exact, for any time window.
--   otel.llm_usage_daily_agg    AggregatingMergeTree, filled by llm_usage_daily_mv on insert.
--   otel.llm_usage_daily_mv     MATERIALIZED VIEW otel_traces -> llm_usage_daily_agg.
--   otel.llm_usage_daily        readable VIEW: one row per day and dimension set.
--
-- Plain views use CREATE OR REPLACE so re-applying this file installs a changed definition.
-- The materialized view and its target use IF NOT EXISTS: replacing them would lose state;
-- change them through a new numbered file (ALTER TABLE ... MODIFY QUERY / ADD COLUMN).

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
    SpanAttributes['litellm.user_id'] AS user_id
FROM otel.otel_traces
WHERE ScopeName = 'llm_otel' AND SpanAttributes['gen_ai.operation.name'] != '';

-- Why AggregatingMergeTree and not SummingMergeTree: the daily rows must also answer latency
-- percentiles, and a percentile cannot be summed; only an aggregate-function state can be
-- merged. Counters use SimpleAggregateFunction(sum) (stored as plain numbers, merged by sum,
-- as cheap as SummingMergeTree); the percentiles use quantiles() states. Rows for the same key
-- from different insert batches are merged in the background and, until then, by the GROUP BY
-- in llm_usage_daily, so readers always see complete totals.
-- The quantile states use reservoir sampling (8192 values per state): exact for smaller groups,
-- an estimate beyond that.
-- Retention: 400 days (the rows are tiny); change with ALTER TABLE ... MODIFY TTL.
CREATE TABLE IF NOT EXISTS otel.llm_usage_daily_agg
(
    `day` Date,
    `request_model` LowCardinality(String),
    `provider` LowCardinality(String),
    `team_id` String,
    `team_alias` String,
    `api_key_hash` String,
    `api_key_alias` String,
    `calls` SimpleAggregateFunction(sum, UInt64),
    `errors` SimpleAggregateFunction(sum, UInt64),
    `streamed_calls` SimpleAggregateFunction(sum, UInt64),
    `input_tokens` SimpleAggregateFunction(sum, UInt64),
    `output_tokens` SimpleAggregateFunction(sum, UInt64),
    `cost_usd` SimpleAggregateFunction(sum, Float64),
    `duration_ms_max` SimpleAggregateFunction(max, Float64),
    `duration_ms_state` AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64),
    `ttft_samples` SimpleAggregateFunction(sum, UInt64),
    `ttft_ms_state` AggregateFunction(quantilesIf(0.5, 0.95), Float64, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, request_model, provider, team_id, api_key_hash, team_alias, api_key_alias)
TTL day + toIntervalDay(400);

-- Reads otel_traces directly: a materialized view fires on inserts into the table named in its
-- FROM, so it cannot sit on top of the llm_calls view. The expressions therefore repeat
-- llm_calls' definitions; tests/schema/test_views.py proves both agree.
CREATE MATERIALIZED VIEW IF NOT EXISTS otel.llm_usage_daily_mv
TO otel.llm_usage_daily_agg
AS SELECT
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
    sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost'])) AS cost_usd,
    max(Duration / 1e6) AS duration_ms_max,
    quantilesState(0.5, 0.95, 0.99)(Duration / 1e6) AS duration_ms_state,
    toUInt64(countIf(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) IS NOT NULL)) AS ttft_samples,
    quantilesIfState(0.5, 0.95)(
        ifNull(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000, 0.),
        toUInt8(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) IS NOT NULL)
    ) AS ttft_ms_state
FROM otel.otel_traces
WHERE ScopeName = 'llm_otel' AND SpanAttributes['gen_ai.operation.name'] != ''
GROUP BY day, request_model, provider, team_id, team_alias, api_key_hash, api_key_alias;

-- Finalised daily usage. The inner GROUP BY merges rows not yet merged in the background; the
-- outer SELECT only unpacks the percentile arrays (kept apart so no alias shadows a column).
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
        sum(cost_usd) AS cost_usd,
        max(duration_ms_max) AS duration_ms_max,
        quantilesMerge(0.5, 0.95, 0.99)(duration_ms_state) AS duration_q,
        sum(ttft_samples) AS ttft_samples,
        quantilesIfMerge(0.5, 0.95)(ttft_ms_state) AS ttft_q
    FROM otel.llm_usage_daily_agg
    GROUP BY day, request_model, provider, team_id, team_alias, api_key_hash, api_key_alias
);

INSERT INTO otel.schema_version (version, name)
SELECT 100, '100_llm_views'
WHERE 100 NOT IN (SELECT version FROM otel.schema_version);
