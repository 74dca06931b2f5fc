"""Hop 7: Langfuse (only when the overlay is enabled): healthy, and the llm-call hop's trace
visible through Langfuse's public API as a generation with model, tokens and cost.

Langfuse ingests OTLP asynchronously (the web container queues each batch, the worker writes it
to ClickHouse), so the trace is polled for. The public API takes Basic auth: the project's public
key as user, its secret key as password.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from scripts.envfile import langfuse as langfuse_env

from ..context import CallRecord, Context, NeedsSetting
from ..hop import Hop
from ..httpcheck import client, json_body, status_text, unreachable
from ..polling import poll
from ..prom import PromParseError, metric_by_label, parse_prometheus_text
from ..results import Result, State
from .collector import FAILED, QUEUE

MIN_TIMEOUT_S = 60.0  # Langfuse ingests asynchronously (web queues, worker writes)
WHY = "Langfuse should show the same LLM calls as ClickHouse; its exporter may be failing"
SERVICE = "langfuse-web"
PORT_KEY = "LANGFUSE_PORT"
EXPORTER = "otlp_http/langfuse"
HINT_WEB_LOGS = f"make logs s={SERVICE}"
HINT_KEYS = (
    f"check {langfuse_env.PUBLIC_KEY} / {langfuse_env.SECRET_KEY} in .env against "
    "the project's API keys in the Langfuse UI (LANGFUSE_INIT_* are applied on Langfuse's first "
    "start only: keys changed in .env later are unknown to Langfuse; put the UI's keys in .env, "
    f"then `{langfuse_env.WRITE_COMMAND}` and `docker compose up -d`)"
)


@dataclass(frozen=True)
class Generation:
    name: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    completion_start: str | None

    @property
    def missing(self) -> list[str]:
        out = []
        if not self.model:
            out.append("model")
        if not (self.input_tokens or self.output_tokens):
            out.append("tokens")
        if not self.cost_usd:
            out.append("cost")
        return out


@dataclass(frozen=True)
class TraceAnswer:
    """One GET of the trace: the verdict when there is one, else what Langfuse said."""

    said: str
    verdict: Result | None = None
    final: bool = False  # asking again cannot change the verdict


def run(ctx: Context) -> Result:
    if "langfuse" not in ctx.overlays:
        return Result.skip("overlay not enabled (COMPOSE_FILE in .env does not include langfuse)")
    return check(ctx, max(ctx.options.timeout_s, MIN_TIMEOUT_S))


def check(ctx: Context, deadline_s: float) -> Result:
    """Health first, then poll GET /api/public/traces/{id} of ctx.call until it is a generation."""
    base = ctx.url(PORT_KEY, "")
    auth = (ctx.setting(langfuse_env.PUBLIC_KEY), ctx.setting(langfuse_env.SECRET_KEY))
    started = time.monotonic()
    with client(ctx) as http:
        health = _wait_healthy(ctx, http, f"{base}/api/public/health", deadline_s)
        if isinstance(health, Result):
            return _with_why(health)
        version = str(health.get("version") or "?")
        details = [f"Langfuse {version} healthy"]
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 4:
            details.append("this is not the pinned v3 release: see langfuse/compose.yaml")
        if ctx.call is None:
            return Result.ok(f"healthy (Langfuse {version}); no LLM call in this run", details)
        call = ctx.call
        url = f"{base}/api/public/traces/{call.trace_id}"

        def ask() -> TraceAnswer:
            return _ask_trace(ctx, http, url, auth, call, time.monotonic() - started)

        remaining = max(deadline_s - (time.monotonic() - started), 0.0)
        polled = poll(ctx, ask, lambda a: a.final, lambda a: f"langfuse: {a.said}", remaining)
        verdict = polled.value.verdict
        if verdict is not None:
            return _with_why(replace(verdict, details=(*details, *verdict.details)))
        details += [
            f"trace {call.trace_id}",
            f"last answer: {polled.value.said}",
            *_collector_details(ctx, http),
        ]
    hint = langfuse_env.basic_auth_mismatch(ctx.env.values) or (
        f"curl -s {_metrics_url(ctx) or 'http://127.0.0.1:8888/metrics'} | grep '{EXPORTER}'   "
        "# send_failed > 0: Langfuse refused or was unreachable; then make logs s=otel-collector "
        "and make logs s=langfuse-worker"
    )
    return Result.fail(
        f"trace did not arrive in Langfuse within {deadline_s:g}s", details, hint, WHY
    )


def _with_why(result: Result) -> Result:
    return replace(result, why=WHY) if result.state in (State.WARN, State.FAIL) else result


def _wait_healthy(
    ctx: Context, http: httpx.Client, url: str, deadline_s: float
) -> dict[str, Any] | Result:
    """The health answer once it is 200; a Result when Langfuse is down or never got ready."""

    def ask() -> httpx.Response | Result:
        try:
            return http.get(url)
        except httpx.HTTPError as exc:
            return unreachable(exc, url, SERVICE, PORT_KEY, ctx.options.http_timeout_s)

    polled = poll(
        ctx,
        ask,
        lambda a: isinstance(a, Result) or a.status_code == 200,
        lambda a: f"langfuse: not ready yet (HTTP {getattr(a, 'status_code', '?')})",
        deadline_s,
    )
    answer = polled.value
    if isinstance(answer, Result):
        return answer
    if answer.status_code == 200:
        body = json_body(answer)
        return body if isinstance(body, dict) else {}
    return Result.fail(
        f"Langfuse not ready: health answered HTTP {answer.status_code} ({status_text(answer)})",
        [f"GET {url}", "the first start runs all migrations; Postgres must be reachable"],
        f"make ps   # then: {HINT_WEB_LOGS}",
    )


def _ask_trace(
    ctx: Context,
    http: httpx.Client,
    url: str,
    auth: tuple[str, str],
    call: CallRecord,
    waited_s: float,
) -> TraceAnswer:
    try:
        resp = http.get(url, auth=auth)
    except httpx.HTTPError as exc:
        failed = unreachable(exc, url, SERVICE, PORT_KEY, ctx.options.http_timeout_s)
        return TraceAnswer(failed.summary, failed, final=True)
    if resp.status_code in (401, 403):
        refused = Result.fail(
            f"Langfuse refused the project keys (HTTP {resp.status_code})",
            [f"GET {url}", status_text(resp), "the collector's exports are refused the same way"],
            HINT_KEYS,
        )
        return TraceAnswer(refused.summary, refused, final=True)
    if resp.status_code == 200 and isinstance(body := json_body(resp), dict):
        assessed = assess(generations(body), call, waited_s)
        return TraceAnswer(assessed.summary, assessed, final=assessed.state is State.OK)
    if resp.status_code == 404:
        return TraceAnswer("trace not there yet")
    return TraceAnswer(f"HTTP {resp.status_code}: {status_text(resp)}")


def _number(*values: Any) -> float | None:
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def generations(trace: Mapping[str, Any]) -> list[Generation]:
    """The GENERATION observations of a GET /api/public/traces/{id} answer."""
    out = []
    for obs in trace.get("observations") or []:
        if not isinstance(obs, dict) or obs.get("type") != "GENERATION":
            continue
        details = obs.get("usageDetails") or {}
        usage = obs.get("usage") or {}
        costs = obs.get("costDetails") or {}
        tokens_in = _number(details.get("input"), usage.get("input"))
        tokens_out = _number(details.get("output"), usage.get("output"))
        out.append(
            Generation(
                name=str(obs.get("name") or obs.get("id") or "?"),
                model=obs.get("model") or None,
                input_tokens=int(tokens_in) if tokens_in is not None else None,
                output_tokens=int(tokens_out) if tokens_out is not None else None,
                cost_usd=_number(
                    obs.get("calculatedTotalCost"), costs.get("total"), usage.get("totalCost")
                ),
                completion_start=obs.get("completionStartTime"),
            )
        )
    return out


def assess(gens: list[Generation], call: CallRecord | None, waited_s: float) -> Result:
    """OK when a generation has model, tokens and cost that agree with what the gateway said."""
    if not gens:
        return Result.fail(
            f"trace arrived but has no generation after {waited_s:.1f}s",
            ["Langfuse maps a span to a generation by gen_ai.operation.name (chat) or a model"],
            "is the gateway's hook on (make logs s=litellm), and Langfuse the pinned v3?",
        )
    best = min(gens, key=lambda g: len(g.missing))
    seen = (
        f"generation '{best.name}': model {best.model or '-'}, tokens "
        f"{best.input_tokens}/{best.output_tokens}, cost {best.cost_usd}"
    )
    if best.missing:
        return Result.warn(
            f"generation without {', '.join(best.missing)} after {waited_s:.1f}s",
            [seen],
            "make logs s=langfuse-worker",
        )
    mismatches = _mismatches(best, call) if call is not None else []
    if mismatches:
        return Result.warn(
            "generation differs from the gateway's numbers",
            [seen, *mismatches],
            "make logs s=otel-collector",
        )
    summary = (
        f"generation {best.model}: {best.input_tokens}+{best.output_tokens} tokens, "
        f"${best.cost_usd:.6f} after {waited_s:.1f}s"
    )
    return Result.ok(summary, [seen])


def _mismatches(best: Generation, call: CallRecord) -> list[str]:
    """Where Langfuse's numbers differ from the gateway's (response usage, response cost)."""
    out = []
    for what, ours, theirs in (
        ("input tokens", call.input_tokens, best.input_tokens),
        ("output tokens", call.output_tokens, best.output_tokens),
    ):
        if ours is not None and ours != theirs:
            out.append(f"{what}: Langfuse {theirs}, gateway {ours}")
    if (
        call.cost_usd is not None
        and best.cost_usd is not None
        and not _close(call.cost_usd, best.cost_usd)
    ):
        out.append(f"cost: Langfuse {best.cost_usd:g}, gateway {call.cost_usd:g}")
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-9, 1e-6 * max(abs(a), abs(b)))


def _metrics_url(ctx: Context) -> str | None:
    try:
        return ctx.url("OTEL_COLLECTOR_METRICS_PORT", "/metrics")
    except NeedsSetting:
        return None


def _collector_details(ctx: Context, http: httpx.Client) -> list[str]:
    """The collector's counters of the Langfuse exporter, read only to explain a missing trace."""
    url = _metrics_url(ctx)
    if url is None:
        return []
    try:
        samples = parse_prometheus_text(http.get(url).text)
    except httpx.HTTPError as exc:
        return [f"collector metrics not readable ({type(exc).__name__})"]
    except PromParseError:
        return ["collector metrics not readable (not Prometheus text)"]
    counters = {
        name: by_exporter[EXPORTER]
        for name in (FAILED, QUEUE)
        if EXPORTER in (by_exporter := metric_by_label(samples, name, "exporter"))
    }
    if not counters:
        return [f"the collector has no {EXPORTER} exporter: is COMPOSE_FILE's overlay applied?"]
    return [
        f'collector: {name}{{exporter="{EXPORTER}"}} = {value:g}'
        for name, value in counters.items()
    ]


HOP = Hop(name="langfuse", title="Langfuse (optional overlay)", run=run, why=WHY)
