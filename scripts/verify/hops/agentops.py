"""Hop 9: AgentOps (only when the overlay is enabled): the token the collector sends is there
and not about to expire, and the collector's AgentOps exporter is delivering."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from ..context import Context
from ..hop import Hop
from ..httpcheck import client, unreachable
from ..prom import PromParseError, metric_by_label, parse_prometheus_text
from ..results import Result, State, worst

EXPORTER = "otlp_http/agentops"
WARN_BEFORE = dt.timedelta(days=7)
WHY = "AgentOps should show the same LLM calls as ClickHouse; its exporter may be refused"
MINT = "make agentops-token   # or paste a token from AgentOps into {path}"


def token_state(token: str | None, path: Path, now: dt.datetime) -> tuple[State, str, str]:
    """(state, what, hint) for the token file's content; the token itself is never shown."""
    if not token:
        return State.FAIL, f"no token at {path}", MINT.format(path=path)
    from scripts.agentops_token import claims_of

    try:
        claims = claims_of(token)
    except Exception:  # noqa: BLE001 - any decoding problem means the same to the user
        return State.FAIL, f"{path} does not hold a JWT", MINT.format(path=path)
    project = claims.get("project_id") or "?"
    if "exp" not in claims:
        return State.OK, f"token for project {project}, no expiry", ""
    expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
    when = f"{expires:%Y-%m-%d %H:%M} UTC"
    if expires <= now:
        return State.FAIL, f"token for project {project} expired {when}", MINT.format(path=path)
    if expires - now < WARN_BEFORE:
        return State.WARN, f"token for project {project} expires {when}", MINT.format(path=path)
    return State.OK, f"token for project {project}, valid until {when}", ""


def run(ctx: Context) -> Result:
    if "agentops" not in ctx.overlays:
        return Result.skip("overlay not enabled (COMPOSE_FILE in .env does not include agentops)")
    path = ctx.root / (ctx.env.get("AGENTOPS_TOKEN_DIR") or "agentops/secrets") / "token"
    token = path.read_text().strip() if path.is_file() else None
    state, what, hint = token_state(token, path, dt.datetime.now(dt.UTC))
    metrics_url = ctx.url("OTEL_COLLECTOR_METRICS_PORT", "/metrics")
    with client(ctx) as http:
        try:
            samples = parse_prometheus_text(http.get(metrics_url).text)
        except httpx.HTTPError as exc:
            return unreachable(
                exc,
                metrics_url,
                "otel-collector",
                "OTEL_COLLECTOR_METRICS_PORT",
                ctx.options.http_timeout_s,
            )
        except PromParseError as exc:
            return Result.fail(
                f"collector metrics unreadable: {exc}", hint="make logs s=otel-collector"
            )
    sent = metric_by_label(samples, "otelcol_exporter_sent_spans", "exporter").get(EXPORTER, 0)
    failed = metric_by_label(samples, "otelcol_exporter_send_failed_spans", "exporter").get(
        EXPORTER, 0
    )
    queued = metric_by_label(samples, "otelcol_exporter_queue_size", "exporter").get(EXPORTER, 0)
    delivery = f"{sent:g} spans sent, {failed:g} failed, {queued:g} queued"
    details = [what, f"collector exporter {EXPORTER}: {delivery}"]
    # Counters are totals since the collector started: failures followed by deliveries are a
    # past outage (shown, not judged); nothing delivered, or a backlog, is the present.
    if failed and not sent:
        state = worst([state, State.FAIL])
        hint = hint or (
            "make logs s=otel-collector   # 401: the token's secret or project; "
            "connection refused: AGENTOPS_OTLP_ENDPOINT"
        )
    elif queued:
        state = worst([state, State.WARN])
        hint = hint or "make logs s=otel-collector   # AgentOps slow or refusing: a backlog"
    summary = f"{what}; {delivery}"
    return Result(state, summary, tuple(details), hint, WHY if state is not State.OK else "")


HOP = Hop(name="agentops", title="AgentOps (optional overlay)", run=run, why=WHY)
