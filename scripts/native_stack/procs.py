"""Process and port helpers for the native test harness: free ports, readiness, clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    timeout: float = 30.0,
    *,
    ok: Sequence[int] = (200,),
    proc: ManagedProcess | None = None,
    verify: str | bool = True,
) -> None:
    """Poll `url` until it answers with one of `ok`; fail early if `proc` has exited.
    `verify`: a CA file for an https URL signed by a private CA."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    tls_verify = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.poll()} before {url} was ready;"
                f" log tail:\n{proc.log_tail()}"
            )
        try:
            response = httpx.get(url, timeout=2.0, verify=tls_verify)
            if response.status_code in ok:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    tail = f"; log tail:\n{proc.log_tail()}" if proc is not None else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last}){tail}")


class ManagedProcess:
    """A child process in its own process group, its output in a log file, stopped for sure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group (uvicorn workers too), then SIGKILL what is left."""
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers can outlive the parent for a moment; make sure none is left behind.
        self.signal_group(signal.SIGKILL)
        self._log.close()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
