"""Hop 0: the `.env` file. Its check functions are pure and importable: `make up` runs them via
`python -m scripts.verify --preflight`, other scripts may call `preflight()` / `evaluate()`.

Each check returns one Result per finding; `evaluate` folds them into the hop's Result."""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

from scripts.clickhouse_schema.endpoint import EXTERNAL_OVERLAY, EndpointError, external_endpoint
from scripts.envfile.parser import EnvFile, load_env_file
from scripts.envfile.spec import (
    FIXED_BY_STACK,
    PLACEHOLDER,
    KeySpec,
    enabled_overlays,
    is_port_key,
    is_provider_key,
    is_secret_key,
    load_key_spec,
    overlay_of,
)

from ..compose import ComposeError, compose_files, engine_versions, list_containers
from ..context import ROOT, Context
from ..hop import Hop
from ..results import Result, State, worst
from . import clickhouse

# Values that ship in tutorials, images and our own example: never acceptable as a secret.
WELL_KNOWN_SECRETS = frozenset(
    {"", "changeme", "sk-1234", "password", "admin", "clickhouse", "secret", "default"}
)
# Keys compose itself reads from .env: not ours, but not typos either.
COMPOSE_KEYS = frozenset(
    {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR"}
)
WHY = (
    "compose hands these values to every service; a wrong one shows up later as a confusing "
    "failure (refused connection, 401, authentication failed) far from its cause"
)


# The parser's own severities, as the doctor's states.
_SEVERITY_STATE = {"error": State.FAIL, "warning": State.WARN}


def _secret_hint(key: str) -> str:
    if is_provider_key(key):
        return f"set {key} in .env to your provider key, then: docker compose up -d litellm"
    prefix = "sk-" if key == "LITELLM_MASTER_KEY" else ""
    return f'set {key} in .env, e.g.: echo "{key}={prefix}$(openssl rand -hex 24)"'


def check_file(env: EnvFile) -> list[Result]:
    if env.exists:
        return []
    hint = f"make init   # or: cp .env.example .env, then replace every {PLACEHOLDER}"
    return [Result.fail(f"{env.path} not found", hint=hint)]


def check_syntax(env: EnvFile) -> list[Result]:
    """Malformed lines, unbalanced quotes, duplicate keys (found by the strict parser)."""
    return [
        Result(
            _SEVERITY_STATE[problem.severity],
            problem.render(),
            hint=f"edit line {problem.line} of {env.path}",
        )
        for problem in env.problems
    ]


def check_required(
    env: EnvFile, spec: KeySpec, overlays: frozenset[str] = frozenset(), native: bool = False
) -> list[Result]:
    """Every required key present and non-empty; an empty optional key is a warning.

    Natively (no compose) a missing port is only a warning: nothing publishes it, and the hop
    that needs it says so itself.
    """
    if not env.exists:
        return []
    required = spec.required(overlays)
    out = []
    for key in required:
        level = State.WARN if native and is_port_key(key) else State.FAIL
        if key not in env.values:
            out.append(
                Result(level, f"{key} is missing", hint=f"set {key} in .env (see .env.example)")
            )
        elif env.values[key] == "":
            out.append(
                Result(level, f"line {env.lines[key]}: {key} is empty", hint=f"set {key} in .env")
            )
    for key, value in env.values.items():
        # An empty provider key is the documented default (`make init` leaves it for the user):
        # only the keyless verify-mock model works then, which is what the README promises.
        if value == "" and key not in required and not is_provider_key(key):
            out.append(
                Result.warn(
                    f"line {env.lines[key]}: {key} is empty (its default applies)",
                    hint=f"set {key} in .env or delete the line",
                )
            )
    return out


def check_secrets(
    env: EnvFile, spec: KeySpec, overlays: frozenset[str] = frozenset(), live: bool = False
) -> list[Result]:
    """No placeholder or well-known default left; the master key has LiteLLM's `sk-` prefix."""
    out = []
    in_scope = [
        k
        for k in env.values
        if k in spec.required(overlays) or (is_provider_key(k) and k in spec.keys)
    ]
    for key in in_scope:
        value = env.values.get(key)
        if not is_secret_key(key) or not value:  # missing/empty: reported by check_required
            continue
        where = f"line {env.lines[key]}: {key}"
        weak = PLACEHOLDER.lower() in value.lower() or value.lower() in WELL_KNOWN_SECRETS
        if weak and is_provider_key(key) and not live:
            message = f"{where} is a placeholder: real model calls fail (verify-mock needs no key)"
            out.append(Result(State.WARN, message, hint=_secret_hint(key)))
        elif weak:
            message = f"{where} is still a placeholder or a well-known default"
            out.append(Result(State.FAIL, message, hint=_secret_hint(key)))
        if key == "LITELLM_MASTER_KEY" and not value.startswith("sk-"):
            message = f"{where} must start with 'sk-' (LiteLLM rejects other master keys)"
            out.append(Result(State.FAIL, message, hint=_secret_hint(key)))
    # Whatever its name, a value still saying CHANGEME was never filled in.
    for key, value in env.values.items():
        if key in in_scope or PLACEHOLDER.lower() not in value.lower():
            continue
        overlay = overlay_of(key)
        if overlay is None or overlay in overlays:
            message = f"line {env.lines[key]}: {key} is still a placeholder"
            out.append(Result(State.FAIL, message, hint=_secret_hint(key)))
    return out


def port_values(env: EnvFile, spec: KeySpec) -> dict[str, str]:
    extra = [k for k in env.values if is_port_key(k) and k not in spec.keys]
    return {k: env.values[k] for k in [*spec.keys, *extra] if is_port_key(k) and env.values.get(k)}


def valid_port(raw: str) -> bool:
    return raw.isdigit() and 1 <= int(raw) <= 65535


def check_ports(env: EnvFile, spec: KeySpec) -> list[Result]:
    """Every port is a number 1-65535 and no two keys share one."""
    out = []
    by_port: dict[int, list[str]] = {}
    for key, raw in port_values(env, spec).items():
        if not valid_port(raw):
            example = spec.default(key) or "18000"
            out.append(
                Result.fail(
                    f"line {env.lines[key]}: {key} is not a port number 1-65535",
                    hint=f"set {key} in .env to a free port, e.g. {key}={example}",
                )
            )
            continue
        by_port.setdefault(int(raw), []).append(key)
    for port, keys in sorted(by_port.items()):
        if len(keys) > 1:
            out.append(
                Result.fail(
                    f"{' and '.join(keys)} all use port {port}",
                    hint=f"give {keys[-1]} its own port in .env",
                )
            )
    return out


def check_other_values(env: EnvFile, spec: KeySpec) -> list[Result]:
    """The few non-secret values with a format or a value fixed by the stack's files."""
    out = []
    bind = env.values.get("BIND_ADDRESS")
    if bind:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            line = env.lines["BIND_ADDRESS"]
            message = f"line {line}: BIND_ADDRESS is not an IP address"
            out.append(Result(State.FAIL, message, hint="set BIND_ADDRESS=127.0.0.1 in .env"))
    workers = env.values.get("LITELLM_NUM_WORKERS")
    if workers and (not workers.isdigit() or int(workers) < 1):
        line = env.lines["LITELLM_NUM_WORKERS"]
        message = f"line {line}: LITELLM_NUM_WORKERS must be a whole number >= 1"
        out.append(Result(State.FAIL, message, hint="set LITELLM_NUM_WORKERS=1 in .env"))
    for key, reason in FIXED_BY_STACK.items():
        value, expected = env.values.get(key), spec.default(key)
        if value and expected and value != expected:
            # A FAIL, not a warning: `make up` would start, then fail far from this cause.
            message = f"line {env.lines[key]}: {key}={value}, but {reason} as {expected!r}"
            out.append(Result(State.FAIL, message, hint=f"set {key}={expected} in .env"))
    return out


# Overlays wired to the bundled `clickhouse` service (compose would refuse them cryptically).
BUNDLED_CLICKHOUSE_OVERLAYS = frozenset({"langfuse"})


def check_clickhouse_endpoint(env: EnvFile, overlays: frozenset[str], root: Path) -> list[Result]:
    """An external ClickHouse needs both the overlay and a usable CLICKHOUSE_URL (and CA file)."""
    url = (env.values.get("CLICKHOUSE_URL") or "").strip()
    external = "clickhouse/external" in overlays
    if external and not url:
        return [
            Result(
                State.FAIL,
                f"COMPOSE_FILE adds {EXTERNAL_OVERLAY} but CLICKHOUSE_URL is empty",
                hint="set CLICKHOUSE_URL=https://<host>:8443 in .env",
            )
        ]
    needs_bundled = sorted(overlays & BUNDLED_CLICKHOUSE_OVERLAYS) if external else []
    if needs_bundled:
        names = " and ".join(needs_bundled)
        return [
            Result(
                State.FAIL,
                f"the {names} overlay reads the bundled ClickHouse, which {EXTERNAL_OVERLAY} "
                "turns off",
                hint=f"remove {names} from COMPOSE_FILE in .env (docs/SCALING.md, section 1)",
            )
        ]
    if url and not external:
        return [
            Result(
                State.FAIL,
                f"line {env.lines['CLICKHOUSE_URL']}: CLICKHOUSE_URL is set, but the stack would "
                "still start its own ClickHouse and write there",
                hint=f"add :{EXTERNAL_OVERLAY} to COMPOSE_FILE in .env (or empty CLICKHOUSE_URL)",
            )
        ]
    try:
        external_endpoint(env.values, root)
    except EndpointError as exc:
        return [
            Result(State.FAIL, str(exc), hint="fix CLICKHOUSE_URL / CLICKHOUSE_CA_FILE in .env")
        ]
    return []


def bind_error(host: str, port: int) -> OSError | None:
    """Try to bind host:port the way a published port would; None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if sys.platform.startswith("linux"):
            # Linux: ignores TIME_WAIT leftovers but still conflicts with a listener. (On BSD and
            # macOS it would also hide a wildcard listener, so it is not set there.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports_free(
    env: EnvFile, spec: KeySpec, host: str, owned: Iterable[int] = ()
) -> list[Result]:
    """Preflight: every port can be bound on BIND_ADDRESS. Ports published by this stack's own
    running containers (owned) are fine: `make up` on a running stack is no conflict."""
    owned_ports = set(owned)
    out = []
    for key, raw in port_values(env, spec).items():
        if not valid_port(raw):
            continue  # reported by check_ports
        port = int(raw)
        err = bind_error(host, port)
        if err is None:
            continue
        if err.errno == errno.EADDRINUSE and port in owned_ports:
            out.append(Result.ok(f"{key}={port} is in use by this stack (already up)"))
        elif err.errno == errno.EADDRINUSE:
            hint = f"ss -ltnp 'sport = :{port}'   # who holds it? or set another {key} in .env"
            out.append(Result(State.FAIL, f"{key}={port} is already in use on {host}", hint=hint))
        elif err.errno == errno.EADDRNOTAVAIL:
            message = f"BIND_ADDRESS={host} is not an address of this machine"
            out.append(Result(State.FAIL, message, hint="set BIND_ADDRESS=127.0.0.1 in .env"))
            break
        elif err.errno == errno.EACCES:
            message = f"{key}={port}: binding a port below 1024 needs root"
            out.append(Result(State.FAIL, message, hint=f"set {key} in .env to a port >= 1024"))
        else:
            message = f"{key}={port} cannot be bound on {host}: {err.strerror or err}"
            out.append(Result(State.FAIL, message, hint=f"set another {key} in .env"))
    return out


# The oldest versions the stack is tested on (README): Debian 12's engine, and the Compose
# release that brought `up --wait-timeout` (used by `make up`).
MIN_ENGINE = (20, 10)
MIN_COMPOSE = (2, 17, 0)
# Compose file features the stack's overlays use, and the first Compose release that reads
# each as today's does: the first docker/compose tag whose go.mod requires a compose-go release
# with the feature working (docs/PINS.md, "Compose"; tests/compose/test_compose_minimums.py
# loads the files with each). 2.18 knows `!reset` but leaves a reset list of ports in place.
COMPOSE_FEATURES: tuple[tuple[str, re.Pattern[str], tuple[int, ...]], ...] = (
    ("the !reset tag", re.compile(r"!reset\b"), (2, 19, 0)),
    ("depends_on `required:`", re.compile(r"^\s+required:\s", re.MULTILINE), (2, 20, 0)),
    ("the !override tag", re.compile(r"!override\b"), (2, 24, 4)),
)


def _version_tuple(text: str) -> tuple[int, ...] | None:
    parts = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not parts:
        return None
    return tuple(int(p) for p in parts.groups() if p is not None)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def compose_minimum(files: Iterable[Path], root: Path) -> tuple[tuple[int, ...], list[str]]:
    """The oldest Compose that reads all `files`, and which file needs more than the base."""
    minimum: tuple[int, ...] = MIN_COMPOSE
    reasons: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue  # a missing file is the compose check's to report
        for feature, pattern, version in COMPOSE_FEATURES:
            if pattern.search(text):
                where = path.relative_to(root) if path.is_relative_to(root) else path
                reasons.append(f"{where} uses {feature} (Compose {_dotted(version)})")
                minimum = max(minimum, version)
    return minimum, reasons


def check_engine(
    engine: str, compose: str, compose_needs: tuple[tuple[int, ...], list[str]] | None = None
) -> list[Result]:
    """Preflight: an engine or Compose older than the stack needs fails before anything starts.
    `compose_needs`: what `compose_minimum` found in the files COMPOSE_FILE names."""
    compose_min, reasons = compose_needs or (MIN_COMPOSE, [])
    out = []
    for name, found, minimum, why, hint in (
        (
            "Docker Engine",
            engine,
            MIN_ENGINE,
            "the oldest this stack runs on",
            "upgrade Docker Engine: https://docs.docker.com/engine/install/",
        ),
        (
            "Docker Compose",
            compose,
            compose_min,
            "; ".join(r for r in reasons if r.endswith(f"(Compose {_dotted(compose_min)})"))
            or "the oldest this stack runs on",
            "upgrade the Compose plugin: https://docs.docker.com/compose/install/linux/",
        ),
    ):
        version = _version_tuple(found)
        wanted = _dotted(minimum)
        if version is None:
            out.append(
                Result.warn(f"{name} version {found!r} not understood (needs {wanted} or newer)")
            )
        elif version < minimum:
            out.append(Result.fail(f"{name} {found} is older than {wanted}: {why}", hint=hint))
    return out


def evaluate(
    env: EnvFile,
    spec: KeySpec,
    *,
    live: bool = False,
    preflight: bool = False,
    native: bool = False,
    host: str = "127.0.0.1",
    owned_ports: Iterable[int] = (),
    engine: tuple[str, str] | None = None,
    root: Path = ROOT,
) -> Result:
    """All settings checks as one Result (what the hop returns; callable without a Context)."""
    overlays = enabled_overlays(env.get("COMPOSE_FILE"))
    findings = check_file(env)
    if env.exists:
        findings += check_syntax(env)
        findings += check_required(env, spec, overlays, native)
        findings += check_secrets(env, spec, overlays, live)
        findings += check_ports(env, spec)
        findings += check_other_values(env, spec)
        findings += check_clickhouse_endpoint(env, overlays, root)
        bad_bind = any("BIND_ADDRESS" in f.summary for f in findings if f.state is State.FAIL)
        if preflight and not bad_bind:
            findings += check_ports_free(env, spec, host, owned_ports)
    if engine is not None:
        files = compose_files(root, env.get("COMPOSE_FILE"))
        findings += check_engine(*engine, compose_minimum(files, root))
    state = worst([State.OK, *(f.state for f in findings)])
    details = [f.line() for f in findings]
    unknown = sorted(set(env.values) - set(spec.keys) - COMPOSE_KEYS)
    if unknown:
        details.append(f"not in {spec.source} (typo?): {', '.join(unknown)}")
    if state is State.OK:
        summary = f"{len(env.values)} keys, {len(port_values(env, spec))} ports distinct"
        summary += ", secrets set" + (f", ports free on {host}" if preflight else "")
        return Result.ok(f"{summary} (keys from {spec.source})", details)
    problems = [f for f in findings if f.state in (State.FAIL, State.WARN)]
    first = next(f for f in problems if f.state is state)
    noun = "problem" if len(problems) == 1 else "problems"
    summary = f"{env.path}: {len(problems)} {noun}" if env.exists else f"{env.path} not found"
    return Result(state, summary, tuple(details), first.hint, WHY)


def run(ctx: Context) -> Result:
    owned: list[int] = []
    engine = None
    if ctx.options.preflight and not ctx.options.native:
        owned = _published_by_this_stack(ctx)
        engine = _engine_versions(ctx)
    result = evaluate(
        ctx.env,
        ctx.spec,
        live=ctx.options.live,
        preflight=ctx.options.preflight,
        native=ctx.options.native,
        host=ctx.bind_address,
        owned_ports=owned,
        engine=engine,
        root=ctx.root,
    )
    if ctx.options.preflight and result.state is not State.FAIL and ctx.env.get("CLICKHOUSE_URL"):
        external = clickhouse.check_external(ctx)[0]
        if external.state is not State.OK:
            return external
        return Result.ok(f"{result.summary}; {external.summary}", result.details)
    return result


def _engine_versions(ctx: Context) -> tuple[str, str] | None:
    try:
        return engine_versions(ctx.root, ctx.options.env_file)
    except (ComposeError, OSError):
        return None  # no engine to ask: `docker compose up` itself says so next


def _published_by_this_stack(ctx: Context) -> list[int]:
    # Best effort: if docker cannot tell, every busy port is reported as a conflict.
    try:
        containers = list_containers(ctx.root, ctx.options.env_file)
    except (ComposeError, OSError, ValueError):
        return []
    return [p for c in containers if c.state == "running" for p in c.published_ports]


def preflight(env_file: Path = Path(".env"), root: Path | None = None) -> Result:
    """The settings checks plus free ports, without a Context (for other scripts)."""
    env = load_env_file(env_file)
    spec = load_key_spec(root or ROOT)
    return evaluate(
        env, spec, preflight=True, host=env.get("BIND_ADDRESS") or "127.0.0.1", root=root or ROOT
    )


HOP = Hop(name="settings", title="Settings (.env)", run=run, why=WHY)
