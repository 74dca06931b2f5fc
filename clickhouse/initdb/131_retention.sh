#!/bin/bash
# Retention by kind from .env on a fresh volume (the server image runs initdb *.sh files too;
# `make schema` applies the same statements later: scripts/clickhouse_schema/retention.py,
# which tests/privacy/test_retention.py keeps equal to these lines).
usage="${CLICKHOUSE_USAGE_RETENTION_DAYS:-30}"
content="${CLICKHOUSE_CONTENT_RETENTION_DAYS:-7}"
for days in "$usage" "$content"; do
  case "$days" in
    '' | *[!0-9]* | 0)
      echo "131_retention.sh: retention '$days' is not a whole number of days (1 or more):" \
        "fix CLICKHOUSE_USAGE_RETENTION_DAYS / CLICKHOUSE_CONTENT_RETENTION_DAYS in .env" >&2
      exit 1 ;;
  esac
done
if [ "$content" -gt "$usage" ]; then
  echo "131_retention.sh: content ($content days) must not outlive usage ($usage days)" >&2
  exit 1
fi
clickhouse-client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
ALTER TABLE otel.otel_traces MODIFY TTL toDateTime(Timestamp) + toIntervalDay(${usage});
ALTER TABLE otel.otel_traces_trace_id_ts MODIFY TTL toDateTime(Start) + toIntervalDay(${usage});
ALTER TABLE otel.otel_traces_content MODIFY TTL toDateTime(Timestamp) + toIntervalDay(${content});
SQL
