"""Everything a hop may read: options, the parsed `.env`, and what earlier hops measured.

Every endpoint and credential comes from the `.env` (the native harness writes one with the ports
it picked), never from the process environment, so `make verify` checks what compose was given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.clickhouse_schema.endpoint import Endpoint, EndpointError, external_endpoint
from scripts.envfile.parser import EnvFile
from scripts.envfile.spec import KeySpec, enabled_overlays

from .prom import Counters

ROOT = Path(__file__).resolve().parents[2]


class NeedsSetting(Exception):  # noqa: N818 - it is a signal to the runner, not an error
    """Raised by a hop when a `.env` value it needs is missing or invalid; the runner turns it into
    SKIP "needs: settings (...)" because the settings hop already reports the cause."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key} {reason}")
        self.key = key
        self.reason = reason


@dataclass
class Options:
    env_file: Path = Path(".env")
    native: bool = False
    native_reason: str = ""  # "--native", "no docker CLI on PATH", ...
    live: bool = False
    preflight: bool = False
    verbose: bool = False
    timeout_s: float = 20.0  # deadline of each polling hop (collector, clickhouse)
    http_timeout_s: float = 10.0
    poll_interval_s: float = 0.5


@dataclass
class CallRecord:
    """What the llm-call hop sent and got back, for the hops that look for it downstream."""

    trace_id: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    call_id: str | None = None


Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


@dataclass
class Context:
    options: Options
    env: EnvFile
    spec: KeySpec
    root: Path = ROOT
    progress: Progress = _no_progress
    # Filled in by hops, read by later hops.
    call: CallRecord | None = None
    prepare_errors: dict[str, str] = field(default_factory=dict)  # hop name -> what went wrong
    collector_baseline: Counters | None = None
    collector_latest: Counters | None = None
    collector_saw_call: bool | None = None  # None: not checked in this run

    # -- settings access -------------------------------------------------------------------
    def setting(self, key: str) -> str:
        """A value from .env; optional keys fall back to their documented default."""
        value = self.env.get(key)
        if value is None or value == "":
            default = self.spec.default(key)
            if default is not None and key not in self.spec.required(self.overlays):
                return default
            raise NeedsSetting(key, "is not set in " + str(self.options.env_file))
        return value

    def port(self, key: str) -> int:
        raw = self.setting(key)
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise NeedsSetting(key, "is not a port number (1-65535)")
        return int(raw)

    @property
    def overlays(self) -> frozenset[str]:
        return enabled_overlays(self.env.get("COMPOSE_FILE"))

    @property
    def bind_address(self) -> str:
        """The address compose publishes every port on."""
        return self.env.get("BIND_ADDRESS") or self.spec.default("BIND_ADDRESS") or "127.0.0.1"

    @property
    def host(self) -> str:
        """Where to reach published ports: BIND_ADDRESS, or loopback when it is a wildcard."""
        return connect_host(self.bind_address)

    @property
    def clickhouse(self) -> Endpoint:
        """ClickHouse as scripts reach it: the bundled server's published HTTP port, or the
        external CLICKHOUSE_URL (clickhouse/external.yaml)."""
        try:
            external = external_endpoint(self.env.values, self.root)
        except EndpointError as exc:
            raise NeedsSetting("CLICKHOUSE_URL", f"is unusable: {exc}") from exc
        if external is not None:
            return external
        return Endpoint(self.host, self.port("CLICKHOUSE_HTTP_PORT"), secure=False)

    def url(self, port_key: str, path: str = "/") -> str:
        host = self.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port(port_key)}{path}"


def connect_host(bind: str) -> str:
    try:
        addr = ipaddress.ip_address(bind.strip("[]"))
    except ValueError:
        return bind  # a hostname: use as is
    if addr.is_unspecified:
        return "::1" if addr.version == 6 else "127.0.0.1"
    return str(addr)
