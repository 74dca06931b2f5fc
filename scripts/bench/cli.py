"""The command line and the order of the phases (`python -m scripts.bench`, `make bench`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

import scripts.bench as package

from . import instructions, pipeline, procstat, render
from .proxies import HOOK_SINK, MODES, OFF_AGAIN, Bench
from .rounds import RoundSettings, run_rounds, warm_up
from .stats import RESAMPLES, percentile


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("(a) rounds")
    load.add_argument("--rounds", type=int, default=16, help="interleaved rounds")
    load.add_argument(
        "--requests", type=int, default=150, help="closed-loop requests per round and mode"
    )
    load.add_argument("--concurrency", type=int, default=32)
    load.add_argument("--max-seconds", type=float, default=30, help="cap per round and mode")
    load.add_argument(
        "--settle",
        type=float,
        default=0.6,
        help="seconds after each closed loop still counted (the last spans' export, <= 0.5 s)",
    )
    load.add_argument(
        "--probe-requests",
        type=int,
        default=20,
        help="sequential requests per round and mode for latency at concurrency 1",
    )
    load.add_argument("--upstream-latency", type=float, default=0.02, help="seconds")
    load.add_argument("--no-pin", action="store_true", help="let every process run on every core")
    load.add_argument(
        "--receiver",
        choices=("collector", "sink"),
        default="collector",
        help="where hook and builtin export: the real pipeline, or a receiver keeping nothing",
    )
    load.add_argument(
        "--check-competition",
        action="store_true",
        help=f"add a mode '{HOOK_SINK}' (the hook exporting to a receiver that keeps nothing): "
        "hook against hook-sink is the pipeline's effect on the hook's figures",
    )
    load.add_argument(
        "--check-noise",
        action="store_true",
        help=f"add a mode '{OFF_AGAIN}' (a second, identical off proxy, measured last in each "
        "round): its interval against off is the smallest difference this machine can resolve",
    )
    load.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    counted = parser.add_argument_group("instructions under valgrind (callgrind)")
    counted.add_argument(
        "--instr-requests",
        type=int,
        default=25,
        help="sequential requests per counted window (0: skip the valgrind phase)",
    )
    counted.add_argument("--instr-windows", type=int, default=2)
    counted.add_argument("--instr-warmup", type=int, default=80, help="uninstrumented requests")
    counted.add_argument(
        "--instr-idle", type=float, default=5.0, help="seconds counted without requests"
    )
    after = parser.add_argument_group("(b) the pipeline, and what reaches ClickHouse")
    after.add_argument(
        "--pipeline-requests",
        type=int,
        default=600,
        help="hook requests whose pipeline CPU is measured (0: skip)",
    )
    after.add_argument("--freshness-samples", type=int, default=20)
    after.add_argument("--synthetic-rows", type=int, default=1_000_000, help="0: skip")
    after.add_argument(
        "--ingest-spans",
        type=int,
        default=51_200,
        help="spans sent straight to each collector pipeline (0: skip)",
    )
    return parser.parse_args(argv)


class Phases:
    """Wall-clock seconds per phase, for the summary."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.say = say

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.say(f"[{time.strftime('%H:%M:%S')}] {name}...")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width = None if sys.stdout.isatty() else 140
    console = Console(width=width)
    started = time.perf_counter()
    phases = Phases(console.print)
    settings = RoundSettings(
        rounds=args.rounds,
        requests=args.requests,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        settle=args.settle,
        probe_requests=args.probe_requests,
    )
    out: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("resamples",)}
    }
    collector = args.receiver == "collector"
    stored: dict[str, Any] | None = None
    counts: dict[str, instructions.InstructionCount] | None = None
    cost: pipeline.PipelineCost | None = None
    fresh: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        # hook-sink right after off: neither it nor hook then follows a turn whose spans the
        # pipeline is still storing (builtin's trailing work lands in off's turn either way).
        modes = ("off", HOOK_SINK, "hook", "builtin") if args.check_competition else MODES
        modes = (*modes, OFF_AGAIN) if args.check_noise else modes
        bench = Bench(Path(tmp), args.upstream_latency, receiver=args.receiver, modes=modes)
        try:
            with phases("start: three proxies, the upstream, the collector, ClickHouse"):
                bench.start()
            pinned = None if args.no_pin else bench.pin()
            out["pinning"] = pinned or "none: every process on every core"
            console.print(f"pinning: {out['pinning']}")
            with phases("warm-up"):
                warm_up(bench, settings)
            with phases("rounds"):
                rounds, machine = run_rounds(bench, settings, console.print)
            if collector and args.pipeline_requests:
                with phases("pipeline cost per stored call"):
                    cost = pipeline.pipeline_cost(bench, args.pipeline_requests, args.concurrency)
            bench.unpin()
            rss = {m: procstat.peak_rss_mib(bench.proxy_pids(m)[0]) for m in bench.modes}
            if collector:
                with phases("spans stored"):
                    stored = pipeline.spans_stored(bench)
                if args.freshness_samples:
                    with phases("freshness"):
                        fresh = pipeline.freshness(bench, args.freshness_samples)
            bench.stop_proxies()  # the valgrind phase wants both cores
            if args.instr_requests:
                if missing := instructions.missing_tools():
                    console.print(f"instructions: skipped, {', '.join(missing)} not installed")
                else:
                    with phases("instructions under callgrind"):
                        counts = instructions.count_all(
                            bench.workdir / "callgrind",
                            bench.upstream_url,
                            bench.builtin_config,
                            instructions.InstructionSettings(
                                args.instr_requests,
                                args.instr_windows,
                                args.instr_warmup,
                                args.instr_idle,
                            ),
                        )
            if args.ingest_spans:
                with phases("collector ingest"):
                    out["collector_ingest"] = pipeline.collector_ingest(bench, args.ingest_spans)
            if args.synthetic_rows:
                with phases("report speed"):
                    out["report_speed"] = pipeline.report_speed(bench, args.synthetic_rows)
        finally:
            bench.stop()

    title = (
        f"Gateway overhead: {args.rounds} interleaved rounds x {args.requests} requests, "
        f"concurrency {args.concurrency}, upstream {args.upstream_latency * 1000:.0f} ms; "
        f"means over rounds; 'alone': {args.probe_requests} sequential requests per round"
    )
    console.print(render.mode_table(rounds, stored, counts, rss, title))
    comparisons, verdict = render.summary(rounds, args.resamples, console)
    console.print(render.comparison_table(comparisons, args.rounds))
    out.update(verdict)
    out["modes"] = render.mode_json(rounds, rss)
    out["competition"] = render.competition_json(rounds)
    competition = out["competition"]
    console.print(
        "beside each mode (its rounds): other processes' CPU "
        + ", ".join(f"{m} {100 * c['others_cpu_share']:.0f} %" for m, c in competition.items())
        + " of a core; pipeline CPU "
        + ", ".join(f"{m} {c['pipeline_cpu_ms_per_request']:.2f}" for m, c in competition.items())
        + " ms per request"
    )
    out["machine_during_rounds"] = {
        "foreign_cpu_share": round(machine.foreign, 3),
        "steal_share": round(machine.steal, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    console.print(
        f"other users of this machine during the rounds: {100 * machine.foreign:.0f} % of a core"
        f" (hypervisor steal {100 * machine.steal:.0f} %)"
        + ("  <- figures disturbed: rerun on a quiet machine" if machine.foreign > 0.1 else "")
    )
    if counts is not None:
        for line in render.instruction_lines(counts):
            console.print(line)
        out["instructions"] = render.instruction_json(counts)
    if cost is not None:
        console.print(render.pipeline_line(cost))
        out["pipeline"] = cost.as_json()
    if stored is not None:
        hook = stored["hook"]
        console.print(
            f"LLM spans stored (hook): {hook['llm_spans_stored']} for {hook['served']} "
            "requests served"
        )
        out["llm_spans_lost"] = hook["served"] - hook["llm_spans_stored"]
        out["spans_per_request"] = {m: round(stored[m]["spans_per_request"], 3) for m in stored}
    if fresh:
        console.print(
            f"freshness response -> llm_calls row: p50 {percentile(fresh, 0.5):.2f} s, "
            f"p95 {percentile(fresh, 0.95):.2f} s ({len(fresh)} samples)"
        )
        out["freshness_p50_s"] = round(percentile(fresh, 0.5), 3)
        out["freshness_p95_s"] = round(percentile(fresh, 0.95), 3)
    if "report_speed" in out:
        speed = out["report_speed"]
        console.print(
            f"report over {args.synthetic_rows:,} synthetic LLM spans: "
            + ", ".join(f"{k} {v:.3f} s" for k, v in speed.items())
        )
        out["report_max_s"] = max(v for k, v in speed.items() if k.startswith("report"))
    for mode, f in out.get("collector_ingest", {}).items():
        console.print(
            f"collector ingest ({mode}): {f['ack_spans_per_s']:,.0f} spans/s acknowledged, "
            f"{f['stored_spans_per_s']:,.0f} spans/s stored, "
            f"{f['spans_per_collector_cpu_s']:,.0f} spans per collector CPU-second"
        )
    out["phase_seconds"] = phases.seconds
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    console.print(f"took {out['total_seconds']:.0f} s: {phases.seconds}")
    print(json.dumps(out, sort_keys=True))
    return 0
