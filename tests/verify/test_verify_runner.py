"""`make verify` (scripts/verify): the runner (states, exit codes, crashes, needs), the
rendering and the CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from scripts.verify import __main__ as cli
from scripts.verify.context import ROOT, Context, NeedsSetting
from scripts.verify.hop import Hop
from scripts.verify.render import ProgressDisplay, print_hop, summary_line
from scripts.verify.results import Report, Result, State, worst
from scripts.verify.runner import run_hops
from tests.verify.verify_context import (
    env_values,
    make_ctx,
)

# --- runner: states, exit codes, crashes, needs -------------------------------------------------


def _hop(name: str, result: Result | Exception, needs: tuple[str, ...] = ()) -> Hop:
    def run(ctx: Context) -> Result:
        if isinstance(result, Exception):
            raise result
        return result

    return Hop(name=name, title=name.title(), run=run, needs=needs)


def test_worst_state_reduction() -> None:
    assert worst([]) is State.OK
    assert worst([State.SKIP]) is State.SKIP
    assert worst([State.SKIP, State.OK]) is State.OK
    assert worst([State.OK, State.WARN, State.SKIP]) is State.WARN
    assert worst([State.WARN, State.FAIL, State.OK]) is State.FAIL


@pytest.mark.parametrize(
    ("results", "state", "code"),
    [
        ([Result.ok("a"), Result.ok("b")], State.OK, 0),
        ([Result.ok("a"), Result.warn("b")], State.WARN, 0),  # warnings never fail the run
        ([Result.skip("a"), Result.ok("b")], State.OK, 0),
        ([Result.warn("a"), Result.fail("b"), Result.ok("c")], State.FAIL, 1),
    ],
)
def test_report_state_and_exit_code(results: list[Result], state: State, code: int) -> None:
    hops = [_hop(f"h{i}", r) for i, r in enumerate(results)]
    report = run_hops(hops, make_ctx())
    assert (report.state, report.exit_code) == (state, code)


def test_a_crashing_check_is_that_hops_fail_and_the_rest_still_run() -> None:
    seen: list[str] = []
    hops = [
        _hop("first", Result.ok("fine")),
        _hop("boom", ValueError("unexpected answer\nsecond line")),
        _hop("after", Result.ok("still ran")),
    ]
    report = run_hops(hops, make_ctx(), on_done=lambda r: seen.append(r.name))
    assert seen == ["first", "boom", "after"]
    crashed = report.hops[1].result
    assert crashed.state is State.FAIL
    assert crashed.summary == "check crashed: ValueError: unexpected answer"
    assert crashed.details[0].startswith(f"at {Path(__file__).name}:")
    assert report.hops[2].state is State.OK
    assert report.exit_code == 1


def test_needs_skip_after_a_failure_but_not_when_unselected() -> None:
    hops = [
        _hop("gateway", Result.fail("down")),
        _hop("auth", Result.ok("x"), needs=("gateway",)),
        _hop("call", Result.ok("x"), needs=("auth",)),
    ]
    report = run_hops(hops, make_ctx())
    assert [(h.state, h.result.summary) for h in report.hops[1:]] == [
        (State.SKIP, "needs: gateway"),
        (State.SKIP, "needs: auth"),  # a skipped need blocks too
    ]
    # Run alone, a hop does not wait for needs nobody asked for.
    alone = run_hops([hops[1]], make_ctx())
    assert alone.hops[0].state is State.OK


def test_missing_setting_is_a_skip_that_names_it() -> None:
    def run(ctx: Context) -> Result:
        ctx.port("LITELLM_PORT")
        return Result.ok("unreachable")

    ctx = make_ctx(LITELLM_PORT="not-a-port")
    report = run_hops([Hop("gateway", "Gateway", run)], ctx)
    assert report.hops[0].state is State.SKIP
    assert report.hops[0].result.summary == (
        "needs: settings (LITELLM_PORT is not a port number (1-65535))"
    )
    with pytest.raises(NeedsSetting):
        make_ctx(LITELLM_MASTER_KEY="").setting("LITELLM_MASTER_KEY")
    assert make_ctx().setting("CLICKHOUSE_READER_USER") == "otel_reader"  # documented default


def test_prepare_runs_before_any_hop_and_its_crash_is_recorded() -> None:
    order: list[str] = []

    def prepare(ctx: Context) -> None:
        order.append("prepare")
        raise ConnectionError("metrics down")

    def run(ctx: Context) -> Result:
        order.append("run")
        return Result.ok(ctx.prepare_errors.get("late", ""))

    hops = [Hop("early", "Early", run), Hop("late", "Late", run, prepare=prepare)]
    report = run_hops(hops, make_ctx())
    assert order == ["prepare", "run", "run"]
    assert report.hops[1].result.summary == "ConnectionError: metrics down"


def test_render_failure_shows_what_why_and_fix_without_traceback() -> None:
    out = io.StringIO()
    console = Console(file=out, width=300, soft_wrap=True)
    hops = [_hop("ok", Result.ok("3 ms", ["hidden detail"])), _hop("boom", RuntimeError("kaput"))]
    report = run_hops(hops, make_ctx())
    for hop_report in report.hops:
        print_hop(console, hop_report)
    text = out.getvalue()
    assert "[✓] Ok: 3 ms" in text
    assert "hidden detail" not in text  # details of passing hops only with -v
    assert "[✗] Boom: check crashed: RuntimeError: kaput" in text
    assert "    why: " in text and "    fix: python -m scripts.verify -v boom" in text
    assert "Traceback" not in text
    assert summary_line(Report(report.hops, 1.25)) == "1 passed, 1 failed in 1.2s"


def test_plain_progress_line_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = ProgressDisplay(Console(file=out, width=200))
    progress.start(_hop("x", Result.ok("")))
    progress.update("waiting for trace (1s of 20s)")
    progress.update("waiting for trace (2s of 20s)")  # throttled: CI logs stay short
    progress.stop()
    assert out.getvalue().strip().splitlines() == ["… waiting for trace (1s of 20s)"]


# --- CLI ------------------------------------------------------------------------------------------


def test_list_via_python_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.verify", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == [
        "settings",
        "containers",
        "gateway",
        "auth",
        "llm-call",
        "collector",
        "clickhouse",
        "langfuse",
        "grafana",
        "agentops",
    ]


@pytest.mark.parametrize(
    "argv",
    [["no-such-hop"], ["--preflight", "gateway"], ["--timeout", "-1"], ["--bogus-flag"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_json_document_and_single_hop_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_values().items()))
    # Names in any order run in chain order; only those run.
    code = cli.main(["--json", "--native", "--env-file", str(env_file), "auth", "gateway"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(doc) == {
        "state",
        "exit_code",
        "elapsed_s",
        "counts",
        "env_file",
        "mode",
        "trace_id",
        "hops",
    }
    assert (doc["state"], doc["exit_code"], doc["mode"]) == ("fail", 1, "native")
    assert doc["counts"] == {"skip": 1, "ok": 0, "warn": 0, "fail": 1}
    assert [h["name"] for h in doc["hops"]] == ["gateway", "auth"]
    gw = doc["hops"][0]
    assert set(gw) == {"name", "title", "state", "summary", "details", "hint", "why", "elapsed_s"}
    assert gw["state"] == "fail" and gw["summary"].startswith("not running: connection refused")
    assert gw["hint"].startswith("make up")
    assert doc["hops"][1] | {"elapsed_s": 0} == {
        "name": "auth",
        "title": "Auth (master key)",
        "state": "skip",
        "summary": "needs: gateway",
        "details": [],
        "hint": "",
        "why": "",
        "elapsed_s": 0,
    }


def test_cli_crash_is_reported_and_other_hops_still_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hops = (_hop("alpha", KeyError("model")), _hop("beta", Result.warn("slow", hint="wait")))
    monkeypatch.setattr(cli, "ALL", hops)
    monkeypatch.setattr(cli, "BY_NAME", {h.name: h for h in hops})
    code = cli.main(["--native", "--env-file", str(tmp_path / "none.env")])
    out = capsys.readouterr().out
    assert code == 1
    assert "[✗] Alpha: check crashed: KeyError: 'model'" in out
    assert "[!] Beta: slow" in out and "fix: wait" in out
    assert "Traceback" not in out
    assert re.search(r"1 warning, 1 failed in \d+\.\ds", out)
