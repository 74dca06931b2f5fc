"""`make verify`: check the chain gateway -> collector -> ClickHouse, hop by hop.

    python -m scripts.verify                 # all hops
    python -m scripts.verify gateway auth    # only these
    python -m scripts.verify --preflight     # .env checks incl. free ports (what `make up` runs)

Exit code: 0 nothing failed (warnings allowed), 1 something failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from scripts.envfile.parser import load_env_file
from scripts.envfile.spec import load_key_spec

from .compose import native_reason
from .context import ROOT, Context, Options
from .hop import Hop
from .hops import ALL, BY_NAME
from .render import ProgressDisplay, make_console, print_hop, print_list, print_summary, report_json
from .results import HopReport, Report
from .runner import run_hops

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.verify",
        description="Verify the LLM gateway stack hop by hop: settings, containers, gateway, auth, "
        "llm-call, collector, clickhouse, langfuse, grafana, agentops.",
        epilog="Exit code: 0 = nothing failed (warnings allowed), 1 = a hop failed, 2 = usage.",
    )
    parser.add_argument("hops", nargs="*", metavar="HOP", help="run only these hops (see --list)")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="the .env to check and read endpoints from (default: ./.env)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the report"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show details of passing hops too"
    )
    parser.add_argument("--list", action="store_true", help="list the hop names and exit")
    parser.add_argument(
        "--live",
        action="store_true",
        help="also call the real provider model (OPENROUTER_MODEL_NAME); costs money",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="no containers: skip the containers hop (auto without docker compose / containers)",
    )
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="only the settings checks, plus: ports free on BIND_ADDRESS (run by `make up`)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for spans downstream (default: 20)",
    )
    parser.add_argument(
        "--http-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="per HTTP request (default: 10)",
    )
    return parser


def select_hops(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Hop]:
    if args.preflight:
        if args.hops:
            parser.error("--preflight runs only the settings checks; do not name hops with it")
        return [BY_NAME["settings"]]
    unknown = [name for name in args.hops if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown hop {', '.join(unknown)} (choose from: {', '.join(BY_NAME)})")
    wanted = set(args.hops)
    # Keep chain order whatever order the names were given in: later hops read earlier results.
    return [hop for hop in ALL if not wanted or hop.name in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    if args.timeout < 0 or args.http_timeout <= 0:
        parser.error("--timeout must be >= 0 and --http-timeout > 0")
    hops = select_hops(parser, args)
    out = make_console()
    if args.list:
        if args.json:
            print(json.dumps({"hops": [{"name": h.name, "title": h.title} for h in ALL]}, indent=2))
        else:
            print_list(out, ALL)
        return 0

    env = load_env_file(args.env_file)
    reason = (
        "--native" if args.native else native_reason(ROOT, env, args.env_file, not args.preflight)
    )
    options = Options(
        env_file=args.env_file,
        native=reason is not None,
        native_reason=reason or "",
        live=args.live,
        preflight=args.preflight,
        verbose=args.verbose,
        timeout_s=args.timeout,
        http_timeout_s=args.http_timeout,
    )
    # Progress goes to stderr in JSON mode so stdout stays one parseable document.
    progress = ProgressDisplay(make_console(stderr=True) if args.json else out)
    ctx = Context(options=options, env=env, spec=load_key_spec(ROOT), progress=progress.update)
    if args.live and not args.json:
        out.print(
            "--live: llm-call also calls the real provider model (costs a fraction of a cent)",
            style="yellow",
        )

    def done(report: HopReport) -> None:
        progress.stop()
        if not args.json:
            print_hop(out, report, args.verbose)

    try:
        report = run_hops(hops, ctx, on_start=progress.start, on_done=done)
    except KeyboardInterrupt:
        progress.stop()
        out.print("interrupted")
        return 130
    _finish(out, report, args.json, ctx)
    return report.exit_code


def _finish(out: Console, report: Report, as_json: bool, ctx: Context) -> None:
    if as_json:
        doc = report_json(
            report,
            env_file=str(ctx.options.env_file),
            mode="native" if ctx.options.native else "docker",
            trace_id=ctx.call.trace_id if ctx.call else None,
        )
        print(json.dumps(doc, indent=2))
    else:
        print_summary(out, report)


if __name__ == "__main__":
    sys.exit(main())
