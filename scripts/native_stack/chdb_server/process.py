"""The adapter as a child process for test harnesses: `AdapterProcess` and `start_adapter`."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE = "scripts.native_stack.chdb_server"  # run with `python -m` (its __main__)


class AdapterProcess:
    """The adapter as a child process on 127.0.0.1 (one chdb data path per process)."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        users: Mapping[str, Mapping[str, Any] | str] | None = None,
        verbose: bool = False,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`tls`: (CA file, certificate, key) to serve HTTPS; the CA checks the readiness probe."""
        from scripts.native_stack.procs import free_port

        self.data_dir = Path(data_dir)
        self.host = host
        self._fixed_port = port is not None
        self.port = port or free_port(host)
        self.users = users
        self.verbose = verbose
        self.log_path = (
            Path(log_path) if log_path else self.data_dir.parent / f"chdb-adapter-{self.port}.log"
        )
        self._proc: Any = None
        self._users_file: Path | None = None
        self.tls = tls

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> AdapterProcess:
        """Start the subprocess and wait until `GET /ping` answers `Ok.`."""
        from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http

        if self.users is not None and self._users_file is None:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed in stop()
                "w", suffix=".json", prefix="chdb-adapter-users-", delete=False
            )
            with handle:
                json.dump(dict(self.users), handle)
            self._users_file = Path(handle.name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A port picked free can be taken before the child binds it: then try another one.
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            argv = [
                sys.executable,
                "-m",
                MODULE,
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ]
            if self._users_file is not None:
                argv += ["--users-file", str(self._users_file)]
            if self.tls is not None:
                argv += ["--tls-cert", str(self.tls[1]), "--tls-key", str(self.tls[2])]
            if self.verbose:
                argv.append("--verbose")
            self._proc = ManagedProcess(
                f"chdb-adapter:{self.port}", argv, log_path=self.log_path, cwd=REPO_ROOT
            )
            try:
                verify = str(self.tls[0]) if self.tls else True
                wait_for_http(f"{self.url}/ping", timeout=timeout, proc=self._proc, verify=verify)
                if self._proc.poll() is None:
                    return self
                raise RuntimeError(f"chdb adapter exited at start:\n{self._proc.log_tail()}")
            except RuntimeError:
                port_taken = "Address already in use" in self._proc.log_text()
                self._proc.stop()
                self._proc = None
                if not port_taken or attempt == attempts - 1:
                    self.stop()
                    raise
                self.port = free_port(self.host)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def log_text(self) -> str:
        return self._proc.log_text() if self._proc is not None else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            self._proc.stop(timeout=timeout)
            self._proc = None
        if self._users_file is not None:
            self._users_file.unlink(missing_ok=True)
            self._users_file = None

    def __enter__(self) -> AdapterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_adapter(
    data_dir: str | Path,
    *,
    port: int | None = None,
    users: Mapping[str, Mapping[str, Any] | str] | None = None,
    verbose: bool = False,
    log_path: str | Path | None = None,
    timeout: float = 30.0,
    tls: tuple[Path, Path, Path] | None = None,
) -> AdapterProcess:
    """Start the adapter subprocess on a free 127.0.0.1 port and wait for `GET /ping`."""
    return AdapterProcess(
        data_dir, port=port, users=users, verbose=verbose, log_path=log_path, tls=tls
    ).start(timeout=timeout)
