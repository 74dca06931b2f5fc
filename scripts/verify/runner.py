"""Runs hops in order and reduces their results; knows nothing about rendering."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

from .context import Context, NeedsSetting
from .hop import Hop
from .results import HopReport, Report, Result, State

OnHop = Callable[[Hop], None]
OnReport = Callable[[HopReport], None]


def run_hops(
    hops: Sequence[Hop],
    ctx: Context,
    on_start: OnHop | None = None,
    on_done: OnReport | None = None,
) -> Report:
    started = time.monotonic()
    report = Report()
    selected = {h.name for h in hops}
    for hop in hops:
        if hop.prepare is not None:
            # A failing prepare must not stop the run; the hop sees what is missing and says so.
            try:
                hop.prepare(ctx)
            except Exception as exc:  # noqa: BLE001 - reported by the hop itself
                ctx.prepare_errors[hop.name] = describe_exception(exc)
    by_name: dict[str, HopReport] = {}
    for hop in hops:
        if on_start is not None:
            on_start(hop)
        t0 = time.monotonic()
        result = _blocked_by(hop, selected, by_name) or _run_one(hop, ctx)
        hop_report = HopReport(hop.name, hop.title, result, time.monotonic() - t0, hop.why)
        by_name[hop.name] = hop_report
        report.hops.append(hop_report)
        if on_done is not None:
            on_done(hop_report)
    report.elapsed_s = time.monotonic() - started
    return report


def _blocked_by(hop: Hop, selected: set[str], done: dict[str, HopReport]) -> Result | None:
    # Needs that were not selected are ignored: `python -m scripts.verify llm-call` runs alone.
    blocked = [
        n
        for n in hop.needs
        if n in selected and done.get(n) and done[n].state in (State.FAIL, State.SKIP)
    ]
    if blocked:
        return Result.skip("needs: " + ", ".join(blocked))
    return None


def _run_one(hop: Hop, ctx: Context) -> Result:
    try:
        result: object = hop.run(ctx)  # checked below: a hop may return anything by mistake
    except NeedsSetting as exc:
        return Result.skip(f"needs: settings ({exc.key} {exc.reason})")
    except Exception as exc:  # noqa: BLE001 - a crash is this hop's FAIL, the others still run
        return Result.fail(
            f"check crashed: {describe_exception(exc)}",
            [f"at {_where(exc)}"],
            hint=f"python -m scripts.verify -v {hop.name}   # and report it if it persists",
            why="a bug in the verify script, or an answer it did not expect; other hops still ran",
        )
    if not isinstance(result, Result):
        return Result.fail(f"check returned {type(result).__name__} instead of a Result")
    return result


def describe_exception(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
