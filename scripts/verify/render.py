"""Rendering: the flutter-doctor style text report, the JSON document, and polling progress."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.text import Text

from .hop import Hop
from .results import HopReport, Report, State

STYLE = {State.OK: "green", State.WARN: "yellow", State.FAIL: "red", State.SKIP: "dim"}
ASCII_SYMBOL = {State.OK: "v", State.WARN: "!", State.FAIL: "x", State.SKIP: "-"}
PLAIN_PROGRESS_EVERY_S = 5.0


def make_console(stderr: bool = False) -> Console:
    # soft_wrap: long hints stay on one line so they can be copy-pasted from CI logs.
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _symbol(console: Console, state: State) -> str:
    # A cp1252/ascii terminal cannot print ✓/✗; fall back rather than crash on output.
    encoding = (console.encoding or "").lower()
    return state.symbol if encoding.startswith("utf") else ASCII_SYMBOL[state]


class ProgressDisplay:
    """A spinner on a terminal, a plain (throttled) line otherwise, e.g. in CI logs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._title = ""
        self._last_plain = 0.0

    def start(self, hop: Hop) -> None:
        self._title = hop.title
        self._last_plain = 0.0
        if self.console.is_terminal:
            self._status = self.console.status(f"{hop.title} …")
            self._status.start()

    def update(self, message: str) -> None:
        if self._status is not None:
            self._status.update(message)
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
            self._last_plain = now
            self.console.print(Text(f"    … {message}", style="dim"))

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def print_hop(console: Console, report: HopReport, verbose: bool = False) -> None:
    result = report.result
    line = Text()
    line.append("[")
    line.append(_symbol(console, result.state), style=STYLE[result.state])
    line.append("] ")
    line.append(report.title, style="bold")
    if result.summary:
        line.append(": " + result.summary, style="dim" if result.state is State.SKIP else "")
    console.print(line)
    problem = result.state in (State.WARN, State.FAIL)
    if problem or verbose:
        for detail in result.details:
            console.print(Text("    • " + detail))
    if problem:
        why = result.why or report.why
        if why:
            console.print(Text.assemble(("    why: ", "bold"), why))
        if result.hint:
            console.print(Text.assemble(("    fix: ", "bold"), (result.hint, "cyan")))


def summary_line(report: Report) -> str:
    counts = report.counts()
    words = [
        (counts[State.OK], "passed"),
        (counts[State.WARN], "warning" if counts[State.WARN] == 1 else "warnings"),
        (counts[State.FAIL], "failed"),
        (counts[State.SKIP], "skipped"),
    ]
    parts = [f"{n} {word}" for n, word in words if n] or ["nothing run"]
    return f"{', '.join(parts)} in {report.elapsed_s:.1f}s"


def print_summary(console: Console, report: Report) -> None:
    console.print()
    style = STYLE[report.state] if report.state is not State.SKIP else ""
    console.print(Text(summary_line(report), style=f"bold {style}".strip()))


def report_json(report: Report, **extra: Any) -> dict[str, Any]:
    return {
        "state": report.state.value,
        "exit_code": report.exit_code,
        "elapsed_s": round(report.elapsed_s, 3),
        "counts": {state.value: n for state, n in report.counts().items()},
        **extra,
        "hops": [
            {
                "name": h.name,
                "title": h.title,
                "state": h.state.value,
                "summary": h.result.summary,
                "details": list(h.result.details),
                "hint": h.result.hint,
                "why": h.result.why or (h.why if h.state in (State.WARN, State.FAIL) else ""),
                "elapsed_s": round(h.elapsed_s, 3),
            }
            for h in report.hops
        ],
    }


def print_list(console: Console, hops: Iterable[Hop]) -> None:
    for hop in hops:
        console.print(Text(f"{hop.name:<11} {hop.title}"))
