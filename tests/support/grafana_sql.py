"""Expand a Grafana ClickHouse panel's SQL the way Grafana and the data source plugin
(grafana-clickhouse-datasource 4.20.0) do, so tests can run it on the real engine.

Two stages, as in Grafana:
1. In the browser (the plugin's CHDatasource.ts, then Grafana's template service):
   `$__conditionalAll(cond, $var)` becomes `1=1` when the variable is All (`$__all`), else `cond`;
   then `${var:sqlstring}` becomes a quoted SQL string (`'` doubled) and `$var` the raw value.
2. In the plugin's backend (pkg/macros/macros.go): `$__timeFilter(c)` ->
   `c >= toDateTime(FROM) AND c <= toDateTime(TO)`, `$__dateFilter(c)` -> the same with
   `toDate('YYYY-MM-DD')`, `$__timeInterval(c)` ->
   `toStartOfInterval(toDateTime(c), INTERVAL N second)`, `$__fromTime` / `$__toTime` ->
   `toDateTime(N)`, `$__interval_s` -> N.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

ALL = "$__all"


def _conditional_all(sql: str, variables: Mapping[str, str]) -> str:
    out, start = [], 0
    marker = "$__conditionalAll("
    while (i := sql.find(marker, start)) != -1:
        depth, j = 1, i + len(marker)
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            j += 1
        condition, _, var = sql[i + len(marker) : j - 1].rpartition(",")
        name = var.strip().lstrip("$").strip("{}")
        out += [sql[start:i], "1=1" if variables[name] == ALL else condition.strip()]
        start = j
    return "".join(out) + sql[start:]


def interpolate(sql: str, variables: Mapping[str, str]) -> str:
    """Stage 1: template variables, as the browser sends the query."""
    sql = _conditional_all(sql, variables)
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
        sql = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, sql)
    return sql


def expand_macros(sql: str, start: dt.datetime, end: dt.datetime, interval_s: int) -> str:
    """Stage 2: the plugin's backend macros."""
    frm, to = int(start.timestamp()), int(end.timestamp())
    day_from, day_to = start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    interval = max(1, interval_s)
    rules = [
        (
            r"\$__timeFilter\(([^)]+)\)",
            lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})",
        ),
        (
            r"\$__dateFilter\(([^)]+)\)",
            lambda m: f"{m[1]} >= toDate('{day_from}') AND {m[1]} <= toDate('{day_to}')",
        ),
        (
            r"\$__timeInterval\(([^)]+)\)",
            lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval} second)",
        ),
        (r"\$__fromTime\b", lambda m: f"toDateTime({frm})"),
        (r"\$__toTime\b", lambda m: f"toDateTime({to})"),
        (r"\$__interval_s\b", lambda m: str(interval)),
    ]
    for pattern, replace in rules:
        sql = re.sub(pattern, replace, sql)
    if "$__" in sql:
        raise ValueError(f"a macro this emulation does not know: {sql}")
    return sql


def query_json(
    execute: Callable[[str], Any],
    sql: str,
    start: dt.datetime,
    end: dt.datetime,
    interval_s: int = 60,
    variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a panel's or alert rule's SQL as Grafana would send it for that time range, on the
    ClickHouse engine (`execute`: tests/support/chdb_engine.FreshOtelDatabase.execute); ClickHouse's
    JSON output: `meta` (column names and types, what the plugin maps to fields) and `data`."""
    expanded = expand_macros(interpolate(sql, variables or {}), start, end, interval_s)
    doc: dict[str, Any] = json.loads(execute(expanded + "\nFORMAT JSON").bytes().decode())
    return doc
