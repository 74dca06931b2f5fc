"""The doctor's vocabulary: one result type with its severity, and the report of a run.

The leaf of scripts/verify (standard library only, imports nothing of the package): every hop,
the runner and the renderers speak it; tests/verify/test_layers.py keeps it that way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


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
    """What a hop measured, or one finding of a hop (the settings hop reports several).

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

    def line(self) -> str:
        """The result as one detail line of another result: symbol and summary."""
        return f"{self.state.symbol} {self.summary}"


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
