"""The bench's statistics: pure functions, no I/O (tests/bench/test_bench_stats.py).

Every figure compared against `off` is computed per round and paired by position: round r of
`hook` ran right after round r of `off`, so whatever slowed the machine down during that round
weighs on both. A confidence interval is a percentile bootstrap over rounds: draw as many rounds
as there are, with replacement, keeping each round's modes together, recompute the figure, and
take the 2.5th and 97.5th percentiles of the recomputed figures. The random generator has a
fixed seed, so the same rounds always give the same interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

SEED = 21  # issue #21; any fixed value makes the intervals reproducible
RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A figure and its confidence interval."""

    value: float
    low: float
    high: float

    def as_json(self, digits: int = 4) -> dict[str, Any]:
        """{"value": v, "ci95": [low, high]}; an infinite bound is null."""
        bounds = [_finite(self.low, digits), _finite(self.high, digits)]
        return {"value": _finite(self.value, digits), "ci95": bounds}

    def percent_change(self) -> str:
        """A ratio as a change: 1.052 [1.031, 1.074] -> '+5.2 % [+3.1, +7.4]'."""
        return (
            f"{100 * (self.value - 1):+.1f} % "
            f"[{100 * (self.low - 1):+.1f}, {100 * (self.high - 1):+.1f}]"
        )

    def difference(self, unit: str, digits: int = 1) -> str:
        """A difference: '+0.8 ms [+0.5, +1.1]'."""
        return f"{self.value:+.{digits}f} {unit} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _finite(x: float, digits: int) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between closest ranks (numpy's
    default): percentile([1, 2, 3, 4], 0.5) == 2.5. NaN for no values."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within [0, 1], not {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    if fraction == 0 or ordered[above] == ordered[below]:  # also keeps inf from becoming nan
        return ordered[below]
    return ordered[below] + fraction * (ordered[above] - ordered[below])


def mean(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    return math.fsum(values) / len(values)


def paired(first: Sequence[T], second: Sequence[U]) -> list[tuple[T, U]]:
    """Rounds paired by position; both sequences must have one entry per round."""
    if len(first) != len(second):
        raise ValueError(f"cannot pair {len(first)} rounds with {len(second)}")
    return list(zip(first, second, strict=True))


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """numerators[r] / denominators[r] for every round r."""
    return [n / d for n, d in paired(numerators, denominators)]


def bootstrap(
    rows: Sequence[T],
    statistic: Callable[[Sequence[T]], float],
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """`statistic` over `rows` (one row per round), with a percentile bootstrap interval: rows
    are drawn with replacement, as many as there are, `resamples` times."""
    if not rows:
        raise ValueError("no rounds to bootstrap")
    rng = random.Random(seed)
    n = len(rows)
    replicates = sorted(
        statistic([rows[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    return Interval(
        value=statistic(rows),
        low=percentile(replicates, tail),
        high=percentile(replicates, 1 - tail),
    )


def ratio_interval(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """The mean of the per-round ratios numerators[r] / denominators[r], with its interval."""
    ratios = paired_ratios(numerators, denominators)
    return bootstrap(ratios, mean, resamples=resamples, seed=seed)


def pooled_percentile_difference(
    mode_rounds: Sequence[Sequence[float]],
    base_rounds: Sequence[Sequence[float]],
    q: float,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """The q-quantile of one mode's samples pooled over rounds minus the base mode's, pooled
    over the same rounds; the bootstrap draws rounds (each with both modes' samples)."""

    def difference(rows: Sequence[tuple[Sequence[float], Sequence[float]]]) -> float:
        mode = [x for row in rows for x in row[0]]
        base = [x for row in rows for x in row[1]]
        return percentile(mode, q) - percentile(base, q)

    rows = paired(mode_rounds, base_rounds)
    return bootstrap(rows, difference, resamples=resamples, seed=seed)


def overhead_ratio_interval(
    off: Sequence[float],
    hook: Sequence[float],
    builtin: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """How many times the built-in callback's overhead is the hook's: (builtin/off - 1) divided
    by (hook/off - 1), per-round ratios averaged. Infinite when the hook's overhead is <= 0."""

    def ratio(rows: Sequence[tuple[float, float, float]]) -> float:
        hook_overhead = mean([h / o for o, h, _ in rows]) - 1
        builtin_overhead = mean([b / o for o, _, b in rows]) - 1
        return builtin_overhead / hook_overhead if hook_overhead > 0 else math.inf

    rows = [(o, h, b) for (o, h), b in paired(paired(off, hook), builtin)]
    return bootstrap(rows, ratio, resamples=resamples, seed=seed)


def within(interval: Interval, limit: float) -> bool:
    """The claim 'at most `limit`' holds only when the whole interval is at or below it."""
    return math.isfinite(interval.high) and interval.high <= limit


# ---- instructions counted by valgrind -------------------------------------------------------
def callgrind_total(text: str, event: str = "Ir") -> int:
    """One event's total from a callgrind (or cachegrind) output file: the `events:` line names
    the columns, the `totals:` line (or `summary:`) holds them."""
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split(":", 1)[1].split()
        elif line.startswith(("totals:", "summary:")):
            values = line.split(":", 1)[1].split()
            if event not in names:
                raise ValueError(f"event {event!r} not among {names}")
            return int(values[names.index(event)])
    raise ValueError("no totals: or summary: line")


def per_request(totals: Sequence[float], requests_per_window: int) -> float:
    """Instructions per request over windows of the same number of requests."""
    if requests_per_window <= 0 or not totals:
        raise ValueError("need at least one window of at least one request")
    return math.fsum(totals) / (len(totals) * requests_per_window)


def spread(totals: Sequence[float]) -> float:
    """(largest - smallest) / mean of the windows' totals: how repeatable the count is."""
    if not totals:
        return math.nan
    return (max(totals) - min(totals)) / mean(totals)
