"""`make verify` hop 7 as plain functions: Langfuse is healthy and shows the verification call as
a generation with model, tokens and cost.

Langfuse ingests OTLP asynchronously (the web container queues each batch, the worker writes it
to ClickHouse), so the trace is polled for. Everything here is HTTP against Langfuse's public API
(Basic auth: public key as user, secret key as password); reading .env and rendering are the
hop's job (scripts/verify/hops/langfuse.py).
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import httpx

State = Literal["ok", "warn", "fail", "skip"]

EXPORTER = "otlp_http/langfuse"
FAILED_METRIC = "otelcol_exporter_send_failed_spans"
QUEUE_METRIC = "otelcol_exporter_queue_size"
HINT_WEB_LOGS = "make logs s=langfuse-web"
HINT_KEYS = (
    "check LANGFUSE_INIT_PROJECT_PUBLIC_KEY / LANGFUSE_INIT_PROJECT_SECRET_KEY in .env against "
    "the project's API keys in the Langfuse UI (LANGFUSE_INIT_* are applied on Langfuse's first "
    "start only: keys changed in .env later are unknown to Langfuse; put the UI's keys in .env, "
    "then `python3 scripts/langfuse_env.py --write` and `docker compose up -d`)"
)


class Outcome(NamedTuple):
    state: State
    summary: str
    details: list[str]
    hint: str


@dataclass(frozen=True)
class Expected:
    """What the gateway reported for the call (response usage, x-litellm-response-cost)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


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


Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        if getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        if "connection refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable(exc: httpx.HTTPError, url: str) -> Outcome:
    where = f"{httpx.URL(url).host}:{httpx.URL(url).port}"
    if isinstance(exc, httpx.ConnectError) and _refused(exc):
        return Outcome(
            "fail",
            f"Langfuse not running: connection refused on {where}",
            [f"GET {url}", "nothing listens on LANGFUSE_PORT"],
            HINT_WEB_LOGS,
        )
    if isinstance(exc, httpx.TimeoutException):
        return Outcome(
            "fail",
            f"Langfuse on {where} did not answer in time",
            [f"GET {url}", "still starting, overloaded or hung"],
            HINT_WEB_LOGS,
        )
    return Outcome(
        "fail",
        f"cannot reach Langfuse on {where}: {type(exc).__name__}",
        [f"GET {url}", str(exc)],
        "check BIND_ADDRESS and LANGFUSE_PORT in .env",
    )


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _status_text(resp: httpx.Response) -> str:
    body = _json(resp)
    if isinstance(body, dict) and (body.get("status") or body.get("message")):
        return str(body.get("status") or body.get("message"))
    return resp.reason_phrase or str(resp.status_code)


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


def assess(gens: list[Generation], expected: Expected | None, waited_s: float) -> Outcome:
    """OK when a generation has model, tokens and cost that agree with what the gateway said."""
    if not gens:
        return Outcome(
            "fail",
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
        return Outcome(
            "warn",
            f"generation without {', '.join(best.missing)} after {waited_s:.1f}s",
            [seen],
            "make logs s=langfuse-worker",
        )
    mismatches = []
    if expected is not None:
        for what, ours, theirs in (
            ("input tokens", expected.input_tokens, best.input_tokens),
            ("output tokens", expected.output_tokens, best.output_tokens),
        ):
            if ours is not None and ours != theirs:
                mismatches.append(f"{what}: Langfuse {theirs}, gateway {ours}")
        if (
            expected.cost_usd is not None
            and best.cost_usd is not None
            and not _close(expected.cost_usd, best.cost_usd)
        ):
            mismatches.append(f"cost: Langfuse {best.cost_usd:g}, gateway {expected.cost_usd:g}")
    if mismatches:
        return Outcome(
            "warn",
            "generation differs from the gateway's numbers",
            [seen, *mismatches],
            "make logs s=otel-collector",
        )
    summary = (
        f"generation {best.model}: {best.input_tokens}+{best.output_tokens} tokens, "
        f"${best.cost_usd:.6f} after {waited_s:.1f}s"
    )
    return Outcome("ok", summary, [seen], "")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-9, 1e-6 * max(abs(a), abs(b)))


def collector_langfuse_counters(metrics_text: str) -> dict[str, float]:
    """send_failed and queue size of the Langfuse exporter from the collector's /metrics text."""
    out: dict[str, float] = {}
    for name in (FAILED_METRIC, QUEUE_METRIC):
        labels = rf'\{{[^}}]*exporter="{re.escape(EXPORTER)}"[^}}]*\}}'
        pattern = re.compile(rf"^{name}(?:_total)?{labels}\s+(\S+)", re.M)
        values = [float(v) for v in pattern.findall(metrics_text)]
        if values:
            out[name] = sum(values)
    return out


def _collector_details(http: httpx.Client, metrics_url: str | None) -> list[str]:
    if not metrics_url:
        return []
    try:
        counters = collector_langfuse_counters(http.get(metrics_url).text)
    except httpx.HTTPError as exc:
        return [f"collector metrics not readable ({type(exc).__name__})"]
    if not counters:
        return [f"the collector has no {EXPORTER} exporter: is COMPOSE_FILE's overlay applied?"]
    return [
        f'collector: {name}{{exporter="{EXPORTER}"}} = {value:g}'
        for name, value in counters.items()
    ]


def check(
    base_url: str,
    public_key: str,
    secret_key: str,
    trace_id: str | None,
    *,
    expected: Expected | None = None,
    timeout_s: float = 60.0,
    poll_interval_s: float = 1.0,
    http_timeout_s: float = 10.0,
    metrics_url: str | None = None,
    auth_problem: str | None = None,
    progress: Progress = _no_progress,
) -> Outcome:
    """Health first, then poll GET /api/public/traces/{trace_id} until it shows a generation.

    metrics_url: the collector's Prometheus endpoint, read only to explain a missing trace.
    auth_problem: a known .env inconsistency (scripts.langfuse_env.basic_auth_mismatch) that
    becomes the hint when the trace does not arrive.
    """
    base = base_url.rstrip("/")
    started = time.monotonic()
    deadline = started + timeout_s
    timeout = httpx.Timeout(http_timeout_s, connect=min(http_timeout_s, 5.0))
    # trust_env=False: an HTTP(S)_PROXY in the user's shell must not route 127.0.0.1 elsewhere.
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        health = _wait_healthy(
            http, f"{base}/api/public/health", deadline, poll_interval_s, progress
        )
        if isinstance(health, Outcome):
            return health
        version = str(health.get("version") or "?")
        details = [f"Langfuse {version} healthy"]
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 4:
            details.append("this is not the pinned v3 release: see langfuse/compose.yaml")
        if trace_id is None:
            return Outcome(
                "ok", f"healthy (Langfuse {version}); no LLM call in this run", details, ""
            )
        url = f"{base}/api/public/traces/{trace_id}"
        auth = (public_key, secret_key)
        last = "no answer"
        while True:
            try:
                resp = http.get(url, auth=auth)
            except httpx.HTTPError as exc:
                return unreachable(exc, url)
            waited = time.monotonic() - started
            if resp.status_code in (401, 403):
                return Outcome(
                    "fail",
                    f"Langfuse refused the project keys (HTTP {resp.status_code})",
                    [
                        *details,
                        f"GET {url}",
                        _status_text(resp),
                        "the collector's exports are refused the same way",
                    ],
                    HINT_KEYS,
                )
            if resp.status_code == 200 and isinstance(body := _json(resp), dict):
                outcome = assess(generations(body), expected, waited)
                if outcome.state == "ok" or time.monotonic() >= deadline:
                    return outcome._replace(details=[*details, *outcome.details])
                last = outcome.summary
            elif resp.status_code == 404:
                last = "trace not there yet"
            else:
                last = f"HTTP {resp.status_code}: {_status_text(resp)}"
            if time.monotonic() >= deadline:
                break
            progress(f"langfuse: {last} ({waited:.0f}s of {timeout_s:g}s)")
            time.sleep(min(poll_interval_s, max(deadline - time.monotonic(), 0.0)))
        details += [
            f"trace {trace_id}",
            f"last answer: {last}",
            *_collector_details(http, metrics_url),
        ]
    hint = auth_problem or (
        f"curl -s {metrics_url or 'http://127.0.0.1:8888/metrics'} | grep '{EXPORTER}'   "
        "# send_failed > 0: Langfuse refused or was unreachable; then make logs s=otel-collector "
        "and make logs s=langfuse-worker"
    )
    return Outcome("fail", f"trace did not arrive in Langfuse within {timeout_s:g}s", details, hint)


def _wait_healthy(
    http: httpx.Client, url: str, deadline: float, poll_interval_s: float, progress: Progress
) -> dict[str, Any] | Outcome:
    """The health answer once it is 200; an Outcome when Langfuse is down or never got ready."""
    while True:
        try:
            resp = http.get(url)
        except httpx.HTTPError as exc:
            return unreachable(exc, url)
        if resp.status_code == 200:
            body = _json(resp)
            return body if isinstance(body, dict) else {}
        if time.monotonic() >= deadline:
            return Outcome(
                "fail",
                f"Langfuse not ready: health answered HTTP {resp.status_code} "
                f"({_status_text(resp)})",
                [f"GET {url}", "the first start runs all migrations; Postgres must be reachable"],
                f"make ps   # then: {HINT_WEB_LOGS}",
            )
        progress(f"langfuse: not ready yet (HTTP {resp.status_code})")
        time.sleep(min(poll_interval_s, max(deadline - time.monotonic(), 0.0)))
