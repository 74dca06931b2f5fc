"""The gateway hook's own health, per replica and worker, from the metrics it reports
(`llm_otel.spans.held`, `llm_otel.spans.dropped`; docs/CONTRACTS.md) as ClickHouse stored them.

While the collector is down those metrics cannot arrive: the gateway hop reads the hook's log
line for that case. This reads what each instance reported last, so one replica's backlog or
losses are not hidden by another's "reachable again".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scripts.clickhouse_schema import names as s
from scripts.span_contract import contract

from .results import Result

WINDOW_MINUTES = 15
_LATEST = """SELECT ResourceAttributes['service.instance.id'] AS instance, MetricName,
    argMax(Value, TimeUnix) AS value
FROM {table}
WHERE ScopeName = {{scope:String}} AND MetricName = {{metric:String}}
    AND TimeUnix > now() - toIntervalMinute({minutes})
GROUP BY instance, MetricName
ORDER BY instance"""


def latest_query(table: str) -> str:
    return _LATEST.format(table=table, minutes=WINDOW_MINUTES)


def fetch(ch: Any) -> list[tuple[str, str, float]]:
    """(instance, metric, last value) of the health metrics; ch is a clickhouse client."""
    rows: list[tuple[str, str, float]] = []
    for table, metric in (
        (s.METRICS_GAUGE_TABLE, contract.LLM_OTEL_SPANS_HELD),
        (s.METRICS_SUM_TABLE, contract.LLM_OTEL_SPANS_DROPPED),
        (s.METRICS_SUM_TABLE, contract.LLM_OTEL_TOUCHPOINTS_MISSING),
    ):
        result = ch.query(
            latest_query(table), parameters={"scope": contract.SCOPE_NAME, "metric": metric}
        )
        rows += [(str(i), str(m), float(v)) for i, m, v in result.result_rows]
    return rows


def assess(rows: Sequence[tuple[str, str, float]]) -> Result:
    instances = sorted({instance for instance, _, _ in rows})
    if not instances:
        return Result.ok(
            f"no gateway reported its hook's health in the last {WINDOW_MINUTES} min",
            ["the hook reports llm_otel.spans.held / .dropped once a minute per worker"],
        )
    problems = []
    for instance, metric, value in rows:
        if metric == contract.LLM_OTEL_SPANS_HELD and value > 0:
            problems.append(f"{instance} holds {value:.0f} spans the collector has not taken")
        if metric == contract.LLM_OTEL_SPANS_DROPPED and value > 0:
            problems.append(f"{instance} dropped {value:.0f} spans since it started")
        if metric == contract.LLM_OTEL_TOUCHPOINTS_MISSING and value > 0:
            problems.append(
                f"{instance} misses a LiteLLM internal it reads (docs/LITELLM_TOUCHPOINTS.md)"
            )
    if problems:
        return Result.warn(
            "gateway hook: " + "; ".join(problems),
            [f"instances reporting: {', '.join(instances)}"],
            hint="make logs s=litellm   # then: make verify collector",
            why="held spans are lost if that gateway stops; dropped spans are calls missing "
            "from every report",
        )
    return Result.ok(
        f"gateway hook healthy on {len(instances)} instance(s): nothing held, nothing dropped"
    )
