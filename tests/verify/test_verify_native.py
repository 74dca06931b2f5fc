"""`make verify` against the real native stack (issue #4): all green, then one fault at a time,
each diagnosed by exactly the right hop with the right hint while the other hops still report."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from scripts.clickhouse_schema.files import apply_schema
from scripts.native_stack.harness import NativeStack
from scripts.native_stack.paths import REPO
from tests.doubles.verify_peers import NATIVE_ALL_GREEN


def verify(env_file: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.verify",
            "--env-file",
            str(env_file),
            "--native",
            "--json",
            "--timeout",
            "15",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    return result.returncode, report


def hops(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {hop["name"]: hop for hop in report["hops"]}


def states(report: dict[str, Any]) -> dict[str, str]:
    return {name: hop["state"] for name, hop in hops(report).items()}


def env_with(stack: NativeStack, tmp_path: Path, **overrides: str) -> Path:
    return stack.write_env_file(tmp_path / ".env", **overrides)


def test_all_hops_green(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    code, report = verify(env_with(clickhouse_stack, tmp_path))
    assert code == 0, report
    assert states(report) == NATIVE_ALL_GREEN


def test_human_output_is_one_line_per_hop(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.verify",
            "--env-file",
            str(env_with(clickhouse_stack, tmp_path)),
            "--native",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0
    assert "[✓] Gateway" in result.stdout and "[✓] ClickHouse" in result.stdout
    assert "passed" in result.stdout.splitlines()[-1]


def test_wrong_master_key(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    code, report = verify(
        env_with(clickhouse_stack, tmp_path, LITELLM_MASTER_KEY="sk-not-the-right-one")
    )
    assert code == 1
    s = states(report)
    assert s["gateway"] == "ok" and s["auth"] == "fail"
    assert "LITELLM_MASTER_KEY" in hops(report)["auth"]["hint"]


def test_wrong_clickhouse_password(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    code, report = verify(
        env_with(clickhouse_stack, tmp_path, CLICKHOUSE_READER_PASSWORD="wrong-password")
    )
    assert code == 1
    s = states(report)
    assert s["llm-call"] == "ok" and s["collector"] == "ok" and s["clickhouse"] == "fail"
    clickhouse = hops(report)["clickhouse"]
    assert "CLICKHOUSE_READER_PASSWORD" in json.dumps(clickhouse)
    assert "516" in clickhouse["summary"]


def test_missing_key_and_changeme_secret(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    env_file = env_with(clickhouse_stack, tmp_path)
    lines = [
        line
        for line in env_file.read_text().splitlines()
        if not line.startswith("CLICKHOUSE_WRITER_PASSWORD=")
    ]
    lines = [
        ("LITELLM_MASTER_KEY=CHANGEME" if line.startswith("LITELLM_MASTER_KEY=") else line)
        for line in lines
    ]
    env_file.write_text("\n".join(lines) + "\n")
    code, report = verify(env_file, "settings")
    assert code == 1
    settings = hops(report)["settings"]
    assert settings["state"] == "fail"
    text = json.dumps(settings)
    assert "CLICKHOUSE_WRITER_PASSWORD" in text and "LITELLM_MASTER_KEY" in text


def test_port_in_use_fails_preflight(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env_file = env_with(clickhouse_stack, tmp_path, OTEL_COLLECTOR_GRPC_PORT=str(port))
        code, report = verify(env_file, "--preflight")
    assert code == 1
    assert str(port) in json.dumps(hops(report)["settings"])


def test_collector_down(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    clickhouse_stack.stop_collector()
    try:
        code, report = verify(env_with(clickhouse_stack, tmp_path))
    finally:
        clickhouse_stack.restart_collector()
    assert code == 1
    s = states(report)
    assert s["gateway"] == "ok" and s["llm-call"] == "ok"  # the gateway serves without it
    assert s["collector"] == "fail"
    assert "otel-collector" in hops(report)["collector"]["hint"]


def test_views_dropped(clickhouse_stack: NativeStack, tmp_path: Path) -> None:
    admin = clickhouse_stack.clickhouse.client("admin")
    admin.command("DROP VIEW otel.llm_calls")
    try:
        code, report = verify(env_with(clickhouse_stack, tmp_path))
    finally:
        apply_schema(admin.command)
    assert code == 1
    s = states(report)
    assert s["collector"] == "ok" and s["clickhouse"] == "fail"
    clickhouse = hops(report)["clickhouse"]
    assert "llm_calls" in json.dumps(clickhouse) and "make schema" in clickhouse["hint"]
