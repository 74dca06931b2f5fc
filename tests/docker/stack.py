"""A compose stack as a user has it: a copy of the repository (tracked files, no .env), driven
through its Makefile and `docker compose`, with the stand-in images selected by `.env` alone."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx

from scripts.clickhouse_schema.endpoint import Endpoint, external_endpoint
from scripts.envfile.parser import read_values
from scripts.envfile.spec import CONTRACT_DEFAULTS
from scripts.native_stack.paths import REPO
from tests.support.traceparent import traceparent

FAKE_OPENROUTER_OVERLAY = "tests/docker/fake-openrouter.yaml"
PROVIDER_MODEL = "fake/upstream-model"
# This sandbox's hard `nofile` ceiling; ClickHouse's 262144 default cannot be granted here.
SANDBOX_NOFILE = "20000"
# The developer's shell must not steer the stack under test (only its .env does), and commands
# run as typed in a shell, not as a sub-make of `make test` (which would print "Entering
# directory" lines into their output).
_STACK_PREFIXES = (
    "COMPOSE_",
    "OTEL_",
    "LITELLM_",
    "CLICKHOUSE_",
    "OPENROUTER_",
    "LANGFUSE_",
    "LOADBALANCER_",
)
_MAKE_VARIABLES = {
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "MAKEOVERRIDES",
    "MAKE_TERMOUT",
    "MAKE_TERMERR",
}


def engine_problem() -> str | None:
    """Why no Docker engine with Compose v2 can be used, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    for args, what in ((["info"], "the Docker engine"), (["compose", "version"], "Compose v2")):
        try:
            done = subprocess.run(["docker", *args], capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return f"{what} did not answer within 30 s"
        if done.returncode != 0:
            return f"{what} is not available (`docker {' '.join(args)}` failed; `make engine`)"
    return None


def standin_settings() -> dict[str, str]:
    """The .env lines selecting the stand-in images (built and cached by the script)."""
    done = subprocess.run(
        [str(REPO / "tests/docker/standins/build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stand-in images failed to build:\n{done.stderr[-4000:]}")
    return dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)


def copy_repository(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and new, not ignored), no .env.
    The venv is shared through a symlink so `make verify` does not reinstall its packages."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file() and name != ".env":
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


@dataclass
class Run:
    args: list[str]
    code: int
    out: str  # stdout and stderr, for messages
    stdout: str = ""

    def ok(self) -> Run:
        assert self.code == 0, f"`{' '.join(self.args)}` exited {self.code}:\n{self.out[-6000:]}"
        return self


@dataclass
class ComposeStack:
    root: Path
    project: str = field(default_factory=lambda: f"llmgw-test-{secrets.token_hex(3)}")

    # -- running commands the way a user types them --------------------------------------------
    @staticmethod
    def shell_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a user's shell gives commands: this process's minus the stack's own."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_STACK_PREFIXES) and k not in _MAKE_VARIABLES
        }
        return {**base, **(env or {})}

    def sh(self, command: str, timeout: float = 600, env: Mapping[str, str] | None = None) -> Run:
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.shell_env(env),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = (
                (exc.stdout or b"").decode(errors="replace")
                if isinstance(exc.stdout, bytes)
                else (exc.stdout or "")
            )
            return Run([command], 124, output + f"\n[timed out after {timeout:g} s]", output)
        return Run([command], done.returncode, done.stdout + done.stderr, done.stdout)

    def make(self, target: str, timeout: float = 900, **env: str) -> Run:
        return self.sh(f"make {target}", timeout=timeout, env=env)

    def compose(self, *args: str, timeout: float = 300) -> Run:
        return self.sh("docker compose " + " ".join(args), timeout=timeout)

    def compose_background(self, *args: str) -> subprocess.Popen[str]:
        """`docker compose ARGS` left running (e.g. `exec ... redis-cli monitor`), stdout piped
        line by line; the caller terminates it."""
        return subprocess.Popen(
            ["docker", "compose", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=self.shell_env(),
        )

    # -- .env -----------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return read_values(self.root / ".env")

    def set_env(self, values: Mapping[str, str]) -> None:
        """Replace or append KEY=value lines, as a user editing .env would."""
        path = self.root / ".env"
        lines = path.read_text().splitlines()
        for key, value in values.items():
            lines = [line for line in lines if not re.match(rf"^{key}=", line)]
            lines.append(f"{key}={value}")
        path.write_text("\n".join(lines) + "\n")

    # -- the stack's endpoints -----------------------------------------------------------------
    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.env.get('LITELLM_PORT', '4000')}"

    def chat(
        self,
        model: str = "verify-mock",
        *,
        stream: bool = False,
        trace_id: str | None = None,
        text: str = "hi",
        timeout: float = 60,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.env['LITELLM_MASTER_KEY']}"}
        if trace_id:
            headers["traceparent"] = traceparent(trace_id)
        body: dict[str, Any] = {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return httpx.post(
            f"{self.gateway}/v1/chat/completions", json=body, headers=headers, timeout=timeout
        )

    def clickhouse(self) -> Any:
        """The stack's ClickHouse as the reader: the bundled one, or the external CLICKHOUSE_URL."""
        env = self.env
        endpoint = external_endpoint(env, self.root) or Endpoint(
            "127.0.0.1", int(env.get("CLICKHOUSE_HTTP_PORT", "8124")), secure=False
        )
        return clickhouse_connect.get_client(
            **endpoint.client_options(),
            username=env.get("CLICKHOUSE_READER_USER")
            or CONTRACT_DEFAULTS["CLICKHOUSE_READER_USER"],
            password=env["CLICKHOUSE_READER_PASSWORD"],
            database=env.get("CLICKHOUSE_DATABASE", "otel"),
        )

    def rows_per_trace(self, trace_ids: Iterable[str]) -> dict[str, int]:
        wanted = sorted(set(trace_ids))
        result = self.clickhouse().query(
            "SELECT trace_id, count() FROM llm_calls WHERE trace_id IN {ids:Array(String)} "
            "GROUP BY trace_id",
            parameters={"ids": wanted},
        )
        return {str(t): int(n) for t, n in result.result_rows}

    def wait_for_rows(self, trace_ids: Iterable[str], timeout: float = 120) -> dict[str, int]:
        """Poll until every trace has a row (or the time is up); the last counts either way."""
        wanted = set(trace_ids)
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                counts = self.rows_per_trace(wanted)
            except Exception:  # noqa: BLE001 - ClickHouse may be coming back
                counts = {}
            if wanted <= set(counts):
                time.sleep(3)  # a duplicate would arrive with the same batch or just after
                return self.rows_per_trace(wanted)
            time.sleep(1)
        return counts

    def load(
        self, calls: int, concurrency: int = 8, model: str = "verify-mock", pause: float = 0.0
    ) -> list[tuple[str, int]]:
        """`calls` chat calls, each with its own trace id: [(trace_id, HTTP status)]."""

        def one(_: int) -> tuple[str, int]:
            trace_id = secrets.token_hex(16)
            try:
                status = self.chat(model, trace_id=trace_id, timeout=120).status_code
            except httpx.HTTPError:
                status = 0
            if pause:
                time.sleep(pause)
            return trace_id, status

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(calls)))

    def project_objects(self) -> dict[str, list[str]]:
        """Containers, networks and volumes labelled with this compose project."""
        label = f"label=com.docker.compose.project={self.project}"
        out = {}
        for kind, cmd in (
            ("containers", f"docker ps -aq --filter {label}"),
            ("networks", f"docker network ls -q --filter {label}"),
            ("volumes", f"docker volume ls -q --filter {label}"),
        ):
            out[kind] = self.sh(cmd).out.split()
        return out

    def destroy(self) -> None:
        self.sh("docker compose down -v --remove-orphans --timeout 10", timeout=300)
