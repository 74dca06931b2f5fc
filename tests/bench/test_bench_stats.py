"""The bench's pure statistics (scripts/bench/stats.py) and CPU-time arithmetic
(scripts/bench/procstat.py), against figures worked out by hand."""

from __future__ import annotations

import math

import pytest

from scripts.bench.instructions import InstructionCount
from scripts.bench.procstat import CLK_TCK, CpuSample, cpu_seconds_between
from scripts.bench.render import instruction_verdict
from scripts.bench.stats import (
    Interval,
    bootstrap,
    callgrind_total,
    mean,
    overhead_ratio_interval,
    paired,
    paired_ratios,
    per_request,
    percentile,
    pooled_percentile_difference,
    ratio_interval,
    spread,
    within,
)


# ---- percentile ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 0.5, 2.5),  # halfway between the 2nd and 3rd
        ([1, 2, 3, 4], 0.0, 1),
        ([1, 2, 3, 4], 1.0, 4),
        ([4, 1, 3, 2], 0.25, 1.75),  # position 0.75: 1 + 0.75 * (2 - 1); order does not matter
        ([10, 20, 30, 40, 50], 0.99, 49.6),  # position 3.96: 40 + 0.96 * 10
        ([7], 0.99, 7),
    ],
)
def test_percentile_interpolates_between_ranks(values: list[float], q: float, expected: float):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_between_infinities_is_infinite():
    # A bootstrap of a ratio whose denominator can reach 0 has infinite replicates.
    assert percentile([1.0, math.inf, math.inf], 0.9) == math.inf
    assert percentile([1.0, 3.0, math.inf], 0.25) == 2.0


def test_percentile_of_nothing_is_nan_and_q_outside_0_1_is_refused():
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 1.5)


def test_mean():
    assert mean([1, 2, 6]) == 3
    assert math.isnan(mean([]))


# ---- pairing ------------------------------------------------------------------------------------
def test_rounds_pair_by_position():
    assert paired([1, 2, 3], ["a", "b", "c"]) == [(1, "a"), (2, "b"), (3, "c")]
    assert paired_ratios([2.0, 3.0, 5.0], [1.0, 2.0, 4.0]) == [2.0, 1.5, 1.25]


def test_rounds_of_unequal_count_do_not_pair():
    with pytest.raises(ValueError, match="cannot pair 2 rounds with 3"):
        paired_ratios([1.0, 2.0], [1.0, 2.0, 3.0])


# ---- bootstrap ----------------------------------------------------------------------------------
def test_bootstrap_of_two_rounds_spans_both():
    """Two rounds, 1 and 3: a resample's mean is 1 (p = 1/4), 2 (p = 1/2) or 3 (p = 1/4), so the
    2.5th percentile of many resamples is 1 and the 97.5th is 3; the figure itself is 2."""
    interval = bootstrap([1.0, 3.0], mean, resamples=4000)
    assert interval == Interval(2.0, 1.0, 3.0)


def test_bootstrap_of_identical_rounds_has_no_width():
    assert bootstrap([5.0] * 7, mean, resamples=200) == Interval(5.0, 5.0, 5.0)


def test_bootstrap_is_reproducible_and_the_seed_matters():
    rows = [0.91, 1.13, 1.02, 1.37, 0.84, 1.26, 0.99]
    assert bootstrap(rows, mean, resamples=100) == bootstrap(rows, mean, resamples=100)
    assert bootstrap(rows, mean, resamples=100) != bootstrap(rows, mean, resamples=100, seed=1)


def test_bootstrap_interval_contains_the_figure_and_shrinks_with_rounds():
    few = bootstrap([0.9, 1.1] * 3, mean, resamples=2000)
    many = bootstrap([0.9, 1.1] * 30, mean, resamples=2000)
    assert few.low < few.value < few.high
    assert many.low < many.value < many.high
    assert many.high - many.low < few.high - few.low


def test_bootstrap_needs_rounds():
    with pytest.raises(ValueError, match="no rounds"):
        bootstrap([], mean)


def test_ratio_keeps_each_round_paired():
    """The machine's speed swings fourfold between rounds, but in every round the hook costs
    exactly 2 % more than off: paired, the interval is exactly [1.02, 1.02]. Resampled
    unpaired, the swings would make it wide."""
    off = [5.0, 20.0, 7.0, 11.0, 6.0]
    hook = [1.02 * x for x in off]
    interval = ratio_interval(hook, off, resamples=1000)
    assert interval.value == pytest.approx(1.02)
    assert interval.low == pytest.approx(1.02)
    assert interval.high == pytest.approx(1.02)


def test_ratio_is_the_mean_of_per_round_ratios():
    # per round: 1.10, 1.00, 1.30 -> mean 1.1333 (a ratio of means would give 1.075 here)
    interval = ratio_interval([11.0, 20.0, 6.5], [10.0, 20.0, 5.0], resamples=500)
    assert interval.value == pytest.approx((1.1 + 1.0 + 1.3) / 3)
    assert interval.low >= 1.0 - 1e-12 and interval.high <= 1.3 + 1e-12


def test_pooled_percentile_difference_with_a_constant_shift():
    """Every sample of the mode is the base's plus 2 ms: every resample's median differs by 2."""
    base = [[10.0, 11.0, 12.0], [13.0, 14.0], [9.0, 15.0, 16.0]]
    mode = [[x + 2 for x in samples] for samples in base]
    interval = pooled_percentile_difference(mode, base, 0.5, resamples=300)
    assert interval == Interval(2.0, 2.0, 2.0)


def test_pooled_percentile_difference_pools_the_rounds_it_draws():
    # Pooled: mode [1, 2, 10, 20] has median 6, base [1, 2, 3, 4] has 2.5: difference 3.5.
    interval = pooled_percentile_difference([[1, 2], [10, 20]], [[1, 2], [3, 4]], 0.5)
    assert interval.value == pytest.approx(3.5)
    # A resample of round 1 twice gives 0, of round 2 twice gives 15 - 3.5 = 11.5.
    assert interval.low == pytest.approx(0.0)
    assert interval.high == pytest.approx(11.5)


def test_overhead_ratio_of_builtin_over_hook():
    off = [10.0, 20.0, 10.0]
    hook = [10.2, 20.4, 10.2]  # +2 % every round
    builtin = [11.0, 22.0, 11.0]  # +10 % every round
    interval = overhead_ratio_interval(off, hook, builtin, resamples=200)
    assert interval.value == pytest.approx(5.0)
    assert interval.low == pytest.approx(5.0) and interval.high == pytest.approx(5.0)


def test_overhead_ratio_is_infinite_when_the_hook_costs_nothing():
    interval = overhead_ratio_interval([10.0, 10.0], [10.0, 9.9], [12.0, 12.0], resamples=50)
    assert interval.value == math.inf
    assert interval.as_json(2)["value"] is None


# ---- the claim ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("interval", "holds"),
    [
        (Interval(1.01, 0.99, 1.03), True),  # the bound itself is within
        (Interval(1.01, 0.99, 1.0301), False),  # the figure is within, the interval is not
        (Interval(1.0, 0.9, math.inf), False),
        (Interval(1.0, 0.9, math.nan), False),
    ],
)
def test_within_3_percent_only_when_the_upper_bound_is(interval: Interval, holds: bool):
    assert within(interval, 1.03) is holds


def test_interval_renders_as_changes_and_json():
    interval = Interval(1.052, 1.031, 1.074)
    assert interval.percent_change() == "+5.2 % [+3.1, +7.4]"
    assert Interval(0.8, 0.5, 1.1).difference("ms", 2) == "+0.80 ms [+0.50, +1.10]"
    assert interval.as_json() == {"value": 1.052, "ci95": [1.031, 1.074]}


# ---- instructions -------------------------------------------------------------------------------
CALLGRIND_DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 3135
cmd:  /work/main/.venv/bin/python /work/main/.venv/bin/litellm --config config.yaml
part: 1

desc: I1 cache:
desc: Timerange: Basic block 0 - 123456
desc: Trigger: Program termination

positions: line
events: Ir
summary: 883066748

ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ???
fn=(1) 0x0000000000028150
0 3

totals: 883066748
"""


def test_callgrind_total_reads_the_totals_line():
    assert callgrind_total(CALLGRIND_DUMP) == 883_066_748


def test_callgrind_total_picks_the_named_event():
    text = "events: Ir Dr Dw\nsummary: 100 20 5\n"
    assert callgrind_total(text, "Dr") == 20
    with pytest.raises(ValueError, match="'Bc' not among"):
        callgrind_total(text, "Bc")
    with pytest.raises(ValueError, match="no totals"):
        callgrind_total("events: Ir\n")


def test_instructions_per_request_and_spread():
    # Two windows of 25 requests: (883066748 + 882923102) / 50 = 1765989850 / 50
    assert per_request([883_066_748, 882_923_102], 25) == 35_319_797
    # (883066748 - 882923102) / 882994925 = 0.0163 %
    assert spread([883_066_748, 882_923_102]) == pytest.approx(143_646 / 882_994_925)
    with pytest.raises(ValueError):
        per_request([], 25)


# ---- CPU time from /proc ------------------------------------------------------------------------
def test_cpu_time_from_threads_when_all_are_still_there():
    before = CpuSample(ticks=100, task_ns={(1, 1): 1_000_000_000, (1, 2): 500_000_000})
    after = CpuSample(
        ticks=260,  # ignored: the nanosecond figures cover every thread
        task_ns={(1, 1): 2_250_000_000, (1, 2): 750_000_000, (1, 3): 100_000_000},
    )
    # 1.25 s + 0.25 s + 0.1 s for the thread started in between
    assert cpu_seconds_between(before, after) == pytest.approx(1.6)


def test_cpu_time_from_ticks_when_a_thread_exited():
    before = CpuSample(ticks=100, task_ns={(1, 1): 1_000_000_000, (1, 2): 500_000_000})
    after = CpuSample(ticks=100 + 2 * CLK_TCK, task_ns={(1, 1): 2_000_000_000})
    assert cpu_seconds_between(before, after) == pytest.approx(2.0)


def _counts(off: int, hook: int, builtin: int) -> dict[str, InstructionCount]:
    counts = {}
    for mode, total in (("off", off), ("hook", hook), ("builtin", builtin)):
        count = InstructionCount(mode, requests=1, totals=[total, total], window_seconds=[1, 1])
        counts[mode] = count
    return counts


def test_the_goals_judged_on_instructions():
    # hook 1,025 / 1,000 = +2.5 %; built-in +27 %: 27 / 2.5 = 10.8
    verdict = instruction_verdict(_counts(1_000, 1_025, 1_270))
    assert verdict == {
        "hook_vs_off": 1.025,
        "claim_3pct": True,
        "overhead_ratio_builtin_over_hook": 10.8,
    }
    assert instruction_verdict(_counts(1_000, 1_031, 1_270))["claim_3pct"] is False
    # a hook that costs nothing leaves no overhead to divide by
    assert (
        instruction_verdict(_counts(1_000, 1_000, 1_270))["overhead_ratio_builtin_over_hook"]
        is None
    )
