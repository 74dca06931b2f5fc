"""Hop 5: the OpenTelemetry Collector is healthy and its own counters moved for our call.

The collector's Prometheus metrics say where spans are: accepted (received from the gateway),
sent / send_failed (to ClickHouse and other exporters), queue size (waiting to be sent). The
baseline is scraped before the LLM call (prepare), so the delta belongs to this run.
"""

from __future__ import annotations

import contextlib

import httpx

from ..context import Context
from ..hop import Hop
from ..httpcheck import client, status_text, unreachable
from ..polling import poll
from ..prom import Counters, PromParseError, metric_by_label, metric_sum, parse_prometheus_text
from ..results import Result, State

ACCEPTED = "otelcol_receiver_accepted_spans"
SENT = "otelcol_exporter_sent_spans"
FAILED = "otelcol_exporter_send_failed_spans"
QUEUE = "otelcol_exporter_queue_size"
WATCHED = (ACCEPTED, SENT, FAILED, QUEUE)
HINT_LOGS = "make logs s=otel-collector"
DELTA_HINT = "`python -m scripts.verify llm-call collector`"
WHY = "spans reach ClickHouse only through the collector; what it cannot export is lost"


def scrape(ctx: Context, http: httpx.Client) -> tuple[Counters, dict[str, float]]:
    """One scrape: the watched metrics summed over labels (absent = 0), failures per exporter."""
    resp = http.get(ctx.url("OTEL_COLLECTOR_METRICS_PORT", "/metrics"))
    resp.raise_for_status()
    samples = parse_prometheus_text(resp.text)
    counters = {name: metric_sum(samples, name) or 0.0 for name in WATCHED}
    return counters, metric_by_label(samples, FAILED, "exporter")


def prepare(ctx: Context) -> None:
    with client(ctx) as http:
        ctx.collector_baseline, _ = scrape(ctx, http)


def run(ctx: Context) -> Result:
    health_url = ctx.url("OTEL_COLLECTOR_HEALTH_PORT", "/")
    metrics_url = ctx.url("OTEL_COLLECTOR_METRICS_PORT", "/metrics")
    timeout = ctx.options.http_timeout_s
    with client(ctx) as http:
        try:
            health = http.get(health_url)
        except httpx.HTTPError as exc:
            # Nothing can reach ClickHouse in this run: the clickhouse hop need not wait for it.
            ctx.collector_saw_call = False if ctx.call is not None else None
            return unreachable(
                exc, health_url, "otel-collector", "OTEL_COLLECTOR_HEALTH_PORT", timeout
            )
        if health.status_code != 200:
            return Result.fail(
                f"health_check answered HTTP {health.status_code}: {status_text(health)}",
                [f"GET {health_url}"],
                hint=HINT_LOGS,
                why=WHY,
            )
        try:
            now, failed_by_exporter = scrape(ctx, http)
        except httpx.HTTPStatusError as exc:
            return Result.fail(
                f"metrics endpoint answered HTTP {exc.response.status_code}",
                [f"GET {metrics_url}"],
                HINT_LOGS,
                WHY,
            )
        except httpx.HTTPError as exc:
            return unreachable(
                exc, metrics_url, "otel-collector", "OTEL_COLLECTOR_METRICS_PORT", timeout
            )
        except PromParseError as exc:
            return Result.fail(
                f"metrics endpoint did not serve Prometheus text: {exc}",
                [f"GET {metrics_url}"],
                HINT_LOGS,
            )
        ctx.collector_latest = now
        healthy = f"healthy ({status_text(health)})"
        totals = _fmt(now)
        if ctx.call is None:
            return Result.ok(
                f"{healthy}; totals: {totals}",
                [f"no LLM call in this run; {DELTA_HINT} checks the delta"],
            )
        base = ctx.collector_baseline
        if base is None:
            why_not = ctx.prepare_errors.get("collector", "not scraped")
            return Result.warn(
                f"{healthy}; no baseline before the call ({why_not})",
                [f"totals: {totals}"],
                HINT_LOGS,
                WHY,
            )

        def settled(c: Counters) -> bool:
            d = delta(base, c)
            # Stop early on a failure; else wait until our spans went through and the queue drained.
            return d[FAILED] > 0 or (d[ACCEPTED] > 0 and d[SENT] > 0 and c[QUEUE] == 0)

        def fetch() -> Counters:
            nonlocal failed_by_exporter, now
            # A missed scrape while polling keeps the last one; the deadline still applies.
            with contextlib.suppress(httpx.HTTPError, PromParseError):
                now, failed_by_exporter = scrape(ctx, http)
            return now

        polled = poll(
            ctx,
            fetch,
            settled,
            lambda c: f"collector: waiting for spans ({_fmt(delta(base, c), signed=True)})",
        )
    now = ctx.collector_latest = polled.value
    return assess(base, now, polled.elapsed_s, failed_by_exporter, ctx)


def delta(before: Counters, after: Counters) -> Counters:
    out = {}
    for name in WATCHED:
        if name == QUEUE:  # a gauge: the current value is what matters
            out[name] = after.get(name, 0.0)
            continue
        d = after.get(name, 0.0) - before.get(name, 0.0)
        out[name] = d if d >= 0 else after.get(name, 0.0)  # counters went down: collector restarted
    return out


def assess(
    before: Counters,
    after: Counters,
    waited_s: float,
    failed_by_exporter: dict[str, float],
    ctx: Context,
) -> Result:
    d = delta(before, after)
    ctx.collector_saw_call = d[ACCEPTED] > 0
    measured = f"{_fmt(d, signed=True)} after {waited_s:.1f}s"
    details = [f"totals: {_fmt(after)}"]
    if d[FAILED] > 0:
        details += [
            f"send failures by exporter (total): {name or '?'}={value:g}"
            for name, value in sorted(failed_by_exporter.items())
            if value
        ]
        return Result.fail(
            f"exporter failing: {d[FAILED]:g} spans failed to send ({measured})",
            details,
            HINT_LOGS,
            "spans reach the collector but are dropped on the way to ClickHouse "
            "(credentials, schema, or ClickHouse down)",
        )
    if d[ACCEPTED] == 0:
        return Result.fail(
            f"no spans accepted since the call ({measured})",
            details,
            "make logs s=litellm   # look for OpenTelemetry export errors",
            "the gateway's hook never delivered the call's span: nothing can be stored",
        )
    if after[QUEUE] > 0:
        return Result.warn(
            f"accepted but not yet stored (queue {after[QUEUE]:g}; {measured})",
            details,
            HINT_LOGS,
            WHY,
        )
    if d[SENT] == 0:
        return Result.warn(f"accepted but nothing sent yet ({measured})", details, HINT_LOGS, WHY)
    return Result(State.OK, measured, tuple(details))


def _fmt(c: Counters, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return (
        f"accepted {sign}{c.get(ACCEPTED, 0):g}, sent {sign}{c.get(SENT, 0):g}, "
        f"failed {sign}{c.get(FAILED, 0):g}, queue {c.get(QUEUE, 0):g}"
    )


HOP = Hop(
    name="collector", title="Collector (health + span counters)", run=run, prepare=prepare, why=WHY
)
