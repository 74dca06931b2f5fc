-- 130_privacy.sql: captured content in a table of its own, kept for less time than usage
-- (docs/PRIVACY.md).
--
-- The collector strips prompts and answers from the usage spans (otel_traces) and writes the
-- calls that carry them, redacted and reduced to their text and ids, here
-- (otel-collector/config.yaml, pipeline traces/content). Same columns as otel_traces: the
-- exporter's INSERT names them all.
--
-- Retention: 7 days here, 30 for usage (010); CLICKHOUSE_CONTENT_RETENTION_DAYS and
-- CLICKHOUSE_USAGE_RETENTION_DAYS in .env, applied by `make schema`
-- (scripts/clickhouse_schema/retention.py) and on first start by 131_retention.sh.
-- A part holds one day (PARTITION BY), so dropping whole parts (ttl_only_drop_parts) removes
-- content within a day of its expiry, without rewriting parts.

CREATE TABLE IF NOT EXISTS otel.otel_traces_content AS otel.otel_traces
ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
TTL toDateTime(Timestamp) + toIntervalDay(7)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
         non_replicated_deduplication_window = 1000;

-- One row per call with captured content, by the names llm_calls uses (join on trace_id and
-- span_id): what dashboards and scripts read.
CREATE OR REPLACE VIEW otel.llm_content
AS SELECT
    Timestamp AS timestamp,
    TraceId AS trace_id,
    SpanId AS span_id,
    SpanAttributes['litellm.call_id'] AS call_id,
    SpanAttributes['litellm.app'] AS app,
    SpanAttributes['gen_ai.conversation.id'] AS conversation_id,
    SpanAttributes['litellm.end_user'] AS end_user,
    SpanAttributes['gen_ai.input.messages'] AS input_messages,
    SpanAttributes['gen_ai.output.messages'] AS output_messages,
    toUInt32OrZero(SpanAttributes['redaction.content.count']) AS redactions
FROM otel.otel_traces_content
WHERE ScopeName = 'llm_otel';

INSERT INTO otel.schema_version (version, name)
SELECT 130, '130_privacy'
WHERE 130 NOT IN (SELECT version FROM otel.schema_version);
