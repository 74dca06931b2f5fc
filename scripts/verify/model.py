"""Result types shared by every hop, the runner and the renderers.

Kept free of I/O and third-party imports so `make up` can import the settings checks cheaply.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only, avoids an import cycle at runtime
    from .context import Context


class State(enum.Enum):
    """Outcome of one hop; rank orders states for the worst-state reduction (nagiosplugin)."""

    SKIP = "skip"
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        # SKIP ranks lowest: a skipped hop never makes the overall state worse than what ran.
        return _RANK[self]

    @property
    def symbol(self) -> str:
        return _SYMBOL[self]


_RANK = {State.SKIP: 0, State.OK: 1, State.WARN: 2, State.FAIL: 3}
_SYMBOL = {State.OK: "✓", State.WARN: "!", State.FAIL: "✗", State.SKIP: "-"}


def worst(states: Iterable[State]) -> State:
    """Reduce states to the worst one; nothing at all counts as OK."""
    return max(states, key=lambda s: s.rank, default=State.OK)


@dataclass(frozen=True)
class Result:
    """What a hop measured.

    summary: the measurement in a few words (times, counts), or what is wrong when it failed.
    details: extra lines (shown for WARN/FAIL, and for every hop with -v).
    hint: one copy-pasteable fix: a command or the .env key to edit.
    why: why the failure matters for the user.
    """

    state: State
    summary: str
    details: tuple[str, ...] = ()
    hint: str = ""
    why: str = ""

    @classmethod
    def ok(cls, summary: str, details: Iterable[str] = ()) -> Result:
        return cls(State.OK, summary, tuple(details))

    @classmethod
    def warn(
        cls, summary: str, details: Iterable[str] = (), hint: str = "", why: str = ""
    ) -> Result:
        return cls(State.WARN, summary, tuple(details), hint, why)

    @classmethod
    def fail(
        cls, summary: str, details: Iterable[str] = (), hint: str = "", why: str = ""
    ) -> Result:
        return cls(State.FAIL, summary, tuple(details), hint, why)

    @classmethod
    def skip(cls, summary: str, details: Iterable[str] = ()) -> Result:
        return cls(State.SKIP, summary, tuple(details))


@dataclass(frozen=True)
class Hop:
    """One check of the chain gateway -> collector -> ClickHouse.

    needs: hops that must not have failed or been skipped *in this run* for this hop to make sense;
    a need that was not selected at all is ignored, so single hops can still be run alone.
    prepare: optional, called for every selected hop before any hop runs (e.g. the collector takes
    its counter baseline before the LLM call is made).
    """

    name: str
    title: str
    run: Callable[[Context], Result]
    needs: tuple[str, ...] = ()
    prepare: Callable[[Context], None] | None = None
    why: str = ""


@dataclass(frozen=True)
class HopReport:
    name: str
    title: str
    result: Result
    elapsed_s: float
    why: str = ""  # the hop's default "why", used when the result doesn't carry its own

    @property
    def state(self) -> State:
        return self.result.state


@dataclass
class Report:
    hops: list[HopReport] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def state(self) -> State:
        return worst(h.state for h in self.hops)

    @property
    def exit_code(self) -> int:
        # WARN never fails the run: only a FAIL does (flutter doctor / nagios "critical").
        return 1 if any(h.state is State.FAIL for h in self.hops) else 0

    def counts(self) -> dict[State, int]:
        return {s: sum(1 for h in self.hops if h.state is s) for s in State}
