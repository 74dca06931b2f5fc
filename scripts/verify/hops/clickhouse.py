"""Hop 6: the call's trace is stored: a span in otel_traces and a row in llm_calls with model,
tokens and cost. Read as the read-only user, exactly as dashboards do."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scripts.clickhouse_schema import errors
from scripts.clickhouse_schema import names as s
from scripts.clickhouse_schema.files import latest_version

from .. import hook_health
from ..context import CallRecord, Context
from ..hop import Hop
from ..httpcheck import client
from ..polling import poll
from ..results import Result, State, worst
from .collector import QUEUE, scrape

if TYPE_CHECKING:  # pragma: no cover
    from clickhouse_connect.driver.client import Client

SKEW_WARN_S = 60.0
SKEW_FAIL_S = 900.0  # beyond a typical "last 15 minutes" dashboard window
WHY = "dashboards and cost reports read ClickHouse: a call that is not there is invisible"

TRACE_QUERY = (
    f"SELECT count(), groupUniqArray({s.TRACES_SPAN_NAME}) FROM {s.TRACES_TABLE} "
    f"WHERE {s.TRACES_TRACE_ID} = {{tid:String}}"
)
LLM_COLUMNS = (s.LLM_REQUEST_MODEL, s.LLM_INPUT_TOKENS, s.LLM_OUTPUT_TOKENS, s.LLM_COST_USD)
LLM_QUERY = (
    f"SELECT {', '.join(LLM_COLUMNS)} FROM {s.LLM_CALLS_TABLE} "
    f"WHERE {s.LLM_TRACE_ID} = {{tid:String}} LIMIT 10"
)


class TableQueryError(Exception):
    """A query on one table failed; carries the table so the explanation can name it."""

    def __init__(self, table: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.table = table
        self.cause = cause


@dataclass(frozen=True)
class Found:
    spans: int
    span_names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # LLM_COLUMNS of every llm_calls row of the trace

    @property
    def complete(self) -> bool:
        return self.spans > 0 and bool(self.rows)


def connect(ctx: Context) -> Client:
    import clickhouse_connect  # lazy: `make up` (--preflight) must not pay for it

    # The driver logs transport errors itself; this hop explains them instead.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    timeout = max(1, math.ceil(ctx.options.http_timeout_s))
    return clickhouse_connect.get_client(
        **ctx.clickhouse.client_options(),
        username=ctx.setting("CLICKHOUSE_READER_USER"),
        password=ctx.setting("CLICKHOUSE_READER_PASSWORD"),
        database=ctx.setting("CLICKHOUSE_DATABASE"),
        compress=False,  # tiny results; keeps the driver off optional codecs
        connect_timeout=timeout,
        send_receive_timeout=timeout,
        query_retries=0,
        autogenerate_session_id=False,  # a readonly user needs no session
    )


def run(ctx: Context) -> Result:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    # Resolve settings first: a missing one is a SKIP (needs: settings), not a connection error.
    ctx.clickhouse  # noqa: B018 - resolves the endpoint's settings
    ctx.setting("CLICKHOUSE_READER_PASSWORD")
    try:
        ch = connect(ctx)
    except ClickHouseError as exc:
        return explain(exc, ctx)
    try:
        return _check(ctx, ch)
    except TableQueryError as exc:
        return explain(exc.cause, ctx, exc.table)
    except ClickHouseError as exc:
        return explain(exc, ctx)
    finally:
        ch.close()


def _check(ctx: Context, ch: Client) -> Result:
    main = _check_call(ctx, ch)
    health = hook_health.assess(hook_health.fetch(ch))
    if health.state is State.OK:  # a detail line, not news
        return Result(
            main.state, main.summary, (health.summary, *main.details), main.hint, main.why
        )
    return _merge(main, health)


def _check_call(ctx: Context, ch: Client) -> Result:
    skew_state, skew_text = assess_skew(measure_skew(ch))
    _probe(ch, s.TRACES_TABLE, (s.TRACES_TRACE_ID, s.TRACES_SPAN_NAME))
    _probe(ch, s.LLM_CALLS_TABLE, (s.LLM_TRACE_ID, *LLM_COLUMNS))
    user = ctx.setting("CLICKHOUSE_READER_USER")
    tables = f"{s.TRACES_TABLE} and {s.LLM_CALLS_TABLE} readable"
    skew = _skew_result(skew_state, skew_text)
    if ctx.call is None:
        note = "no LLM call in this run; `python -m scripts.verify llm-call clickhouse` checks it"
        return _merge(Result.ok(f"connected as {user}, {tables}, {skew_text}", [note]), skew)
    call = ctx.call
    # If the collector hop saw nothing arrive, waiting here is pointless: look once.
    deadline = 0.0 if ctx.collector_saw_call is False else None

    def describe(f: Found) -> str:
        short = call.trace_id[:8]
        return f"clickhouse: waiting for trace {short}… (spans {f.spans}, rows {len(f.rows)})"

    polled = poll(ctx, lambda: lookup(ch, call.trace_id), lambda f: f.complete, describe, deadline)
    result = assess_found(polled.value, call, polled.elapsed_s, ctx, polled.done)
    if skew is None:
        result = Result(
            result.state, result.summary, (*result.details, skew_text), result.hint, result.why
        )
    return _merge(result, skew)


def lookup(ch: Client, trace_id: str) -> Found:
    try:
        count, names = ch.query(TRACE_QUERY, parameters={"tid": trace_id}).result_rows[0]
    except Exception as exc:
        raise TableQueryError(s.TRACES_TABLE, exc) from exc
    try:
        rows = ch.query(LLM_QUERY, parameters={"tid": trace_id}).result_rows
    except Exception as exc:
        raise TableQueryError(s.LLM_CALLS_TABLE, exc) from exc
    return Found(int(count), tuple(sorted(names)), tuple(tuple(r) for r in rows))


def _probe(ch: Client, table: str, columns: tuple[str, ...]) -> None:
    """Read zero rows: proves the table exists, the reader may read it, and the columns match."""
    try:
        ch.query(f"SELECT {', '.join(columns)} FROM {table} LIMIT 0")
    except Exception as exc:
        raise TableQueryError(table, exc) from exc


def measure_skew(ch: Client) -> float:
    """Seconds ClickHouse's clock is ahead (+) of or behind (-) this machine's."""
    t0 = time.time()
    server_ms = ch.query("SELECT toUnixTimestamp64Milli(now64(3))").result_rows[0][0]
    t1 = time.time()
    return float(server_ms) / 1000.0 - (t0 + t1) / 2.0  # midpoint: corrects for latency


def assess_skew(skew_s: float) -> tuple[State, str]:
    size = abs(skew_s)
    if size <= SKEW_WARN_S:
        return State.OK, f"clock skew {skew_s:+.1f}s"
    direction = "ahead of" if skew_s > 0 else "behind"
    text = f"ClickHouse's clock is {size:.0f}s {direction} this machine"
    return (State.FAIL if size > SKEW_FAIL_S else State.WARN), text


def _skew_result(state: State, text: str) -> Result | None:
    if state is State.OK:
        return None
    return Result(
        state,
        text,
        (text,),
        "timedatectl set-ntp true   # or restart Docker Desktop (its VM clock drifts after sleep)",
        "rows carry the server's time: 'last 15 minutes' dashboards may hide or misplace them",
    )


def _merge(main: Result, extra: Result | None) -> Result:
    if extra is None:
        return main
    state = worst([main.state, extra.state])
    lead = main if main.state is state else extra
    details = main.details + extra.details
    return Result(state, f"{main.summary}; {extra.summary}", details, lead.hint, lead.why)


def assess_found(
    found: Found, call: CallRecord, waited_s: float, ctx: Context, done: bool
) -> Result:
    """Judge what the lookup found against what the llm-call hop sent."""
    trace = f"trace {call.trace_id}"
    names = f" ({', '.join(found.span_names)})" if found.span_names else ""
    details = [
        trace,
        f"{found.spans} span(s) in {s.TRACES_TABLE}{names}",
        f"{len(found.rows)} row(s) in {s.LLM_CALLS_TABLE}",
    ]
    if not done:
        return _not_found(found, waited_s, ctx, trace, details)
    model, tokens_in, tokens_out, cost = found.rows[0]
    measured = f"{model}, {tokens_in}+{tokens_out} tokens, ${_num(cost):.6g}"
    details.append(f"{s.LLM_CALLS_TABLE}: {measured}")
    problems: list[tuple[State, str]] = []
    if len(found.rows) > 1:
        problems.append((State.WARN, f"{len(found.rows)} {s.LLM_CALLS_TABLE} rows for one call"))
    if model != call.model:
        problems.append((State.WARN, f"{s.LLM_REQUEST_MODEL} is {model!r}, not {call.model!r}"))
    for column, stored, sent in (
        (s.LLM_INPUT_TOKENS, tokens_in, call.input_tokens),
        (s.LLM_OUTPUT_TOKENS, tokens_out, call.output_tokens),
    ):
        if stored is None or (sent and not _num(stored)):
            problems.append((State.FAIL, f"{column} is empty (the gateway reported {sent})"))
        elif sent is not None and int(_num(stored)) != sent:
            problems.append((State.WARN, f"{column} is {stored}, the gateway reported {sent}"))
    if not _num(cost) > 0:
        text = f"{s.LLM_COST_USD} is {cost!r}: the span has no gen_ai.usage.cost (or the view)"
        problems.append((State.FAIL, text))
    elif call.cost_usd and not math.isclose(_num(cost), call.cost_usd, rel_tol=0.01):
        text = f"{s.LLM_COST_USD} is {_num(cost):.6g}, the gateway reported {call.cost_usd:.6g}"
        problems.append((State.WARN, text))
    summary = f"found after {waited_s:.1f}s: {found.spans} span(s); {measured}"
    if not problems:
        return Result.ok(summary, details)
    details += [f"{state.symbol} {text}" for state, text in problems]
    return Result(
        worst(state for state, _ in problems),
        f"{summary}; {problems[0][1]}",
        tuple(details),
        "make logs s=litellm   # the hook sets the gen_ai.* attributes the view reads",
        "token and cost reports are built from these columns",
    )


def _not_found(
    found: Found, waited_s: float, ctx: Context, trace: str, details: list[str]
) -> Result:
    if found.spans > 0:
        return Result.fail(
            f"span stored after {waited_s:.1f}s, but {s.LLM_CALLS_TABLE} has no row for it",
            details,
            errors.FIX_SCHEMA,
            f"cost and token reports read {s.LLM_CALLS_TABLE}; the view does not surface the span",
        )
    queue = _collector_queue(ctx)
    if queue:
        return Result.warn(
            f"not stored after {waited_s:.1f}s; the collector still queues {queue:g} batch(es)",
            details,
            "make verify   # again in a minute; if it persists: make logs s=otel-collector",
            "the span is on its way: ClickHouse is slow to accept it, or the exporter retries",
        )
    if ctx.collector_saw_call is False:
        details.append("the collector is down or never received the span (see the collector hop)")
    return Result.fail(
        f"{trace} not in {s.TRACES_TABLE} after {waited_s:.1f}s",
        details,
        "make logs s=otel-collector",
        WHY,
    )


def _collector_queue(ctx: Context) -> float | None:
    """Fresh collector queue size if reachable, else what the collector hop saw last."""
    try:
        with client(ctx) as http:
            counters, _ = scrape(ctx, http)
        return counters[QUEUE]
    except Exception:  # noqa: BLE001 - best effort, only used to word the failure
        latest = ctx.collector_latest
        return latest.get(QUEUE) if latest else None


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]  # Decimal, int or str from the driver
    except (TypeError, ValueError):
        return 0.0


def explain(exc: BaseException, ctx: Context, table: str | None = None) -> Result:
    """Map a driver error to its usual cause and fix (shared with `make report`)."""
    return as_result(errors.diagnose(exc, _target(ctx), table))


def _target(ctx: Context) -> errors.Target:
    endpoint = ctx.clickhouse
    external = bool(ctx.env.get("CLICKHOUSE_URL"))
    return errors.Target(
        url=endpoint.url if external else f"{endpoint.host}:{endpoint.port}",
        user=ctx.setting("CLICKHOUSE_READER_USER"),
        database=ctx.setting("CLICKHOUSE_DATABASE"),
        external=external,
        timeout_s=ctx.options.http_timeout_s,
    )


def as_result(found: errors.Diagnosis) -> Result:
    details = [line for line in (found.server, found.detail) if line]
    return Result.fail(found.summary, details, found.fix, WHY)


HOP = Hop(name="clickhouse", title="ClickHouse (trace stored)", run=run, why=WHY)


EXTERNAL_VERSION_SQL = "SELECT max(version) FROM otel.schema_version"


def check_external(ctx: Context) -> list[Result]:
    """`make up`'s preflight for an external ClickHouse: reachable over TLS as configured, both
    users log in, and the schema is at the version of clickhouse/initdb."""
    import clickhouse_connect

    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    endpoint = ctx.clickhouse
    database = ctx.setting("CLICKHOUSE_DATABASE")
    versions: list[int] = []
    for role in ("WRITER", "READER"):
        user = ctx.setting(f"CLICKHOUSE_{role}_USER")
        try:
            ch = clickhouse_connect.get_client(
                **endpoint.client_options(),
                username=user,
                password=ctx.setting(f"CLICKHOUSE_{role}_PASSWORD"),
                connect_timeout=max(1, math.ceil(ctx.options.http_timeout_s)),
                send_receive_timeout=max(1, math.ceil(ctx.options.http_timeout_s)),
                query_retries=0,
                autogenerate_session_id=False,
            )
            try:
                versions.append(int(ch.query(EXTERNAL_VERSION_SQL).result_rows[0][0] or 0))
            finally:
                ch.close()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a finding with its fix
            return [_external_problem(exc, endpoint.url, user, database, role)]
    expected = latest_version()
    if min(versions) < expected:
        return [
            Result.fail(
                f"{endpoint.url}: schema version {min(versions)}, initdb is at {expected}",
                hint="make schema   # applies clickhouse/initdb (or its cluster form) as admin",
                why="the collector writes into tables the owned schema creates",
            )
        ]
    return [Result.ok(f"external ClickHouse {endpoint.url}: both users log in, schema {expected}")]


def _external_problem(exc: BaseException, url: str, user: str, database: str, role: str) -> Result:
    password_key = f"CLICKHOUSE_{role}_PASSWORD"
    target = errors.Target(url, user, database, external=True, password_key=password_key)
    return as_result(errors.diagnose(exc, target, f"{database}.schema_version"))
