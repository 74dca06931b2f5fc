"""The AgentOps overlay on the real engine: `make agentops-token`, `make up` with the overlay, spans
filed by an AgentOps stand-in container under the token's project, `make verify` green, and a
rotated token used by the running collector (token directory bind-mounted, read as uid 10001)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from llm_otel.contract import GEN_AI_OPERATION_NAME
from tests.docker.stack import FAKE_OPENROUTER_OVERLAY, ComposeStack

pytestmark = pytest.mark.timeout(900)


def filed(stack: ComposeStack) -> list[dict[str, Any]]:
    run = stack.compose(
        "exec",
        "-T",
        "fake-agentops",
        "python3",
        "-c",
        "'import urllib.request; print(urllib.request.urlopen("
        '"http://127.0.0.1:4318/filed").read().decode())\'',
    ).ok()
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def wait_filed(stack: ComposeStack, trace_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [
            r
            for r in filed(stack)
            if r["trace_id"] == trace_id and GEN_AI_OPERATION_NAME in r["attributes"]
        ]
        if rows:
            return rows[0]
        time.sleep(1)
    raise AssertionError(f"trace {trace_id} never reached the AgentOps stand-in")


def collector_started_at(stack: ComposeStack) -> str:
    container = stack.compose("ps", "-q", "otel-collector").ok().stdout.strip()
    return stack.sh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {container}").ok().stdout


def test_agentops_overlay_end_to_end(
    fresh_clone: tuple[ComposeStack, dict[str, str]], standins: dict[str, str]
) -> None:
    stack, settings = fresh_clone
    stack.make("init").ok()
    files = [
        "docker-compose.yml",
        FAKE_OPENROUTER_OVERLAY,
        "agentops/compose.yaml",
        "tests/docker/fake-agentops.yaml",
    ]
    stack.set_env(
        {
            **settings,
            "COMPOSE_FILE": ":".join(files),
            "AGENTOPS_OTLP_ENDPOINT": "http://fake-agentops:4318",
            "AGENTOPS_JWT_SECRET_KEY": secrets.token_hex(32),
            "AGENTOPS_PROJECT_ID": "project-1",
            "FAKE_AGENTOPS_IMAGE": standins["FAKE_AGENTOPS_IMAGE"],
        }
    )
    assert "project project-1" in stack.make("agentops-token").ok().out
    stack.make("up").ok()

    first = secrets.token_hex(16)
    assert stack.chat(trace_id=first).status_code == 200
    row = wait_filed(stack, first)
    assert row["project_id"] == "project-1"
    assert row["attributes"]["gen_ai.usage.prompt_tokens"] > 0
    assert stack.wait_for_rows([first], timeout=60) == {first: 1}  # ClickHouse unchanged

    hops = {
        h["name"]: h
        for h in json.loads(stack.make("verify ARGS=--json", timeout=180).ok().stdout)["hops"]
    }
    assert hops["agentops"]["state"] == "ok", hops["agentops"]
    token = (stack.root / "agentops" / "secrets" / "token").read_text().strip()
    assert token not in json.dumps(hops)
    assert token not in stack.compose("logs", "otel-collector").ok().out

    # Rotation: a new token for another project, picked up by the running collector.
    started = collector_started_at(stack)
    stack.set_env({"AGENTOPS_PROJECT_ID": "project-2"})
    stack.make("agentops-token").ok()
    deadline = time.monotonic() + 60
    while True:
        trace_id = secrets.token_hex(16)
        assert stack.chat(trace_id=trace_id).status_code == 200
        project = wait_filed(stack, trace_id)["project_id"]
        if project == "project-2" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert project == "project-2"
    assert collector_started_at(stack) == started  # no restart
