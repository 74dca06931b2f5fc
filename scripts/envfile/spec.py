"""Which `.env` keys exist, which are required, and the defaults of the optional ones.

Single source: `.env.example` at the repo root; the constants below are only the fallback for a
copy of the scripts without it. These are `.env` keys, not API keys.
Required = secrets and ports, classified by name so a new `*_PORT` / `*_PASSWORD` key in
`.env.example` is picked up without touching this package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .parser import load_env_file, parse_env_text

# The value `.env.example` gives every key the user must supply (`make init` generates most).
PLACEHOLDER = "CHANGEME"
# Fallback when .env.example is missing (same keys and defaults as docs/CONTRACTS.md).
CONTRACT_DEFAULTS: dict[str, str] = {
    "BIND_ADDRESS": "127.0.0.1",
    "LITELLM_PORT": "4000",
    "OTEL_COLLECTOR_GRPC_PORT": "4317",
    "OTEL_COLLECTOR_HTTP_PORT": "4318",
    "OTEL_COLLECTOR_HEALTH_PORT": "13133",
    "OTEL_COLLECTOR_METRICS_PORT": "8888",
    "CLICKHOUSE_HTTP_PORT": "8124",
    "CLICKHOUSE_TCP_PORT": "9002",
    "LITELLM_MASTER_KEY": PLACEHOLDER,
    "LITELLM_NUM_WORKERS": "1",
    "OPENROUTER_API_KEY": PLACEHOLDER,
    "OPENROUTER_MODEL_NAME": "qwen/qwen3-235b-a22b-2507",
    "CLICKHOUSE_DATABASE": "otel",
    "CLICKHOUSE_ADMIN_USER": "admin",
    "CLICKHOUSE_ADMIN_PASSWORD": PLACEHOLDER,
    "CLICKHOUSE_WRITER_USER": "otel_writer",
    "CLICKHOUSE_WRITER_PASSWORD": PLACEHOLDER,
    "CLICKHOUSE_READER_USER": "otel_reader",
    "CLICKHOUSE_READER_PASSWORD": PLACEHOLDER,
    "OTEL_SERVICE_NAME": "litellm-proxy",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
    "DEPLOYMENT_ENVIRONMENT": "local",
}

_PORT_RE = re.compile(r"_PORT$")
_SECRET_RE = re.compile(r"(_PASSWORD|_KEY|_SECRET|_TOKEN|_SALT|_BASIC_AUTH)$")
# Provider keys only matter for real (paid) model calls: verify-mock works without them, so a
# placeholder is a WARN unless --live is asked for.
_PROVIDER_KEY_RE = re.compile(r"_API_KEY$")
# Keys of an optional compose overlay are only required when that overlay is enabled via
# COMPOSE_FILE (e.g. LANGFUSE_* for the Langfuse overlay).
OVERLAY_KEY_PREFIXES: dict[str, tuple[str, ...]] = {
    "langfuse": ("LANGFUSE_",),
    "grafana": ("GRAFANA_",),
    "agentops": ("AGENTOPS_",),
    "loadbalancer": ("LITELLM_REDIS_", "LOADBALANCER_"),
    "clickhouse/external": ("CLICKHOUSE_URL", "CLICKHOUSE_CA_FILE"),
}


def is_port_key(key: str) -> bool:
    return bool(_PORT_RE.search(key))


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_RE.search(key))


def is_provider_key(key: str) -> bool:
    return bool(_PROVIDER_KEY_RE.search(key))


def overlay_of(key: str) -> str | None:
    for overlay, prefixes in OVERLAY_KEY_PREFIXES.items():
        if key.startswith(prefixes):
            return overlay
    return None


@dataclass(frozen=True)
class KeySpec:
    """The known keys, where they came from, and their example/default values.

    defaults: the active `KEY=value` lines of .env.example (the ones a user must review).
    optional: its commented-out `# KEY=value` lines: known (not typos), never required.
    """

    source: str  # ".env.example" or "built-in list"
    defaults: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [*self.defaults, *(k for k in self.optional if k not in self.defaults)]

    def required(self, overlays: frozenset[str] = frozenset()) -> list[str]:
        out = []
        for key in self.defaults:
            # Provider keys are optional: the keyless verify-mock model works without them.
            if not (is_port_key(key) or is_secret_key(key)) or is_provider_key(key):
                continue
            overlay = overlay_of(key)
            if overlay is None or overlay in overlays:
                out.append(key)
        return out

    def default(self, key: str) -> str | None:
        """Default of a non-secret key (a secret's example value is never a usable default)."""
        # Names fixed by the stack's files are not in .env.example: their built-in value.
        value = self.defaults.get(key, self.optional.get(key, FIXED_VALUES.get(key)))
        if not value or is_secret_key(key) or PLACEHOLDER in value:
            return None
        return value


_COMMENTED_KEY_RE = re.compile(r"^#\s*([A-Z][A-Z0-9_]*=.*)$")


def load_key_spec(root: Path) -> KeySpec:
    example = root / ".env.example"
    if example.is_file():
        parsed = load_env_file(example)
        if parsed.values:
            text = example.read_text(encoding="utf-8-sig", errors="replace")
            commented = "\n".join(
                m.group(1)
                for line in text.splitlines()
                if (m := _COMMENTED_KEY_RE.match(line.strip()))
            )
            optional = parse_env_text(commented, example).values
            return KeySpec(source=".env.example", defaults=dict(parsed.values), optional=optional)
    return KeySpec(source="built-in list", defaults=dict(CONTRACT_DEFAULTS))


def enabled_overlays(compose_file: str | None) -> frozenset[str]:
    """Overlays named in COMPOSE_FILE (paths separated by ':' or ';' as compose accepts)."""
    if not compose_file:
        return frozenset()
    parts = [p.strip().lower() for p in re.split(r"[:;]", compose_file)]
    return frozenset(name for name in OVERLAY_KEY_PREFIXES if any(name in p for p in parts if p))


# Values the stack's own files hard-code; a different value in .env silently breaks a hop.
FIXED_BY_STACK: dict[str, str] = {
    "CLICKHOUSE_DATABASE": "clickhouse/initdb creates this database name",
    "CLICKHOUSE_ADMIN_USER": "clickhouse/users.d/otel-users.xml defines this user name",
    "CLICKHOUSE_WRITER_USER": "clickhouse/users.d/otel-users.xml defines this user name",
    "CLICKHOUSE_READER_USER": "clickhouse/users.d/otel-users.xml defines this user name",
}
FIXED_VALUES: dict[str, str] = {key: CONTRACT_DEFAULTS[key] for key in FIXED_BY_STACK}
