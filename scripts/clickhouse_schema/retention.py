"""Retention by kind, from .env: usage rows and captured content each keep their own days.

clickhouse/initdb holds the defaults (30 days of usage in 010, 7 of content in 130); `make
schema` then applies the .env values to an existing volume with these statements (MODIFY TTL
also re-evaluates the parts already stored), and clickhouse/initdb/131_retention.sh does the
same on a fresh volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

USAGE_DAYS_KEY = "CLICKHOUSE_USAGE_RETENTION_DAYS"
CONTENT_DAYS_KEY = "CLICKHOUSE_CONTENT_RETENTION_DAYS"
DEFAULT_USAGE_DAYS = 30
DEFAULT_CONTENT_DAYS = 7

# Table -> the time column its TTL counts from. Usage: the spans and the exporter's trace-id
# lookup beside them; content: the captured-content table (130_privacy.sql).
USAGE_TABLES = {"otel.otel_traces": "Timestamp", "otel.otel_traces_trace_id_ts": "Start"}
CONTENT_TABLES = {"otel.otel_traces_content": "Timestamp"}


class RetentionError(ValueError):
    """A retention value that cannot work; the message names the key and what to set."""


@dataclass(frozen=True)
class Retention:
    usage_days: int = DEFAULT_USAGE_DAYS
    content_days: int = DEFAULT_CONTENT_DAYS

    @classmethod
    def from_env(cls, values: Mapping[str, str]) -> Retention:
        usage = _days(values, USAGE_DAYS_KEY, DEFAULT_USAGE_DAYS)
        content = _days(values, CONTENT_DAYS_KEY, DEFAULT_CONTENT_DAYS)
        if content > usage:
            raise RetentionError(
                f"{CONTENT_DAYS_KEY}={content} is longer than {USAGE_DAYS_KEY}={usage}: captured "
                "content must not outlive the usage rows it belongs to"
            )
        return cls(usage, content)

    def statements(self) -> list[str]:
        out = []
        for days, tables in ((self.usage_days, USAGE_TABLES), (self.content_days, CONTENT_TABLES)):
            for table, column in tables.items():
                out.append(
                    f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + toIntervalDay({days})"
                )
        return out


def _days(values: Mapping[str, str], key: str, default: int) -> int:
    raw = (values.get(key) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise RetentionError(f"{key}={raw!r}: set a whole number of days, 1 or more")
    return int(raw)
