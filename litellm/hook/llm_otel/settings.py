"""Read and validate the standard OTEL_* variables the hook honours.

Anything the SDK classes read themselves (endpoint, headers, timeouts, sampler, resource
attributes) is left to them; this module only decides what the SDK would otherwise get
silently wrong, and turns it into one clear message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .capture import APPS_ENV, KEYS_ENV, CapturePolicy, names

DEFAULT_SERVICE_NAME = "litellm-proxy"
# Sized for ~30 s of collector outage at ~100 req/s with 2 spans per request; the SDK default
# (2048) drops spans silently after ~10 s.
DEFAULT_MAX_QUEUE_SIZE = 16384
# The SDK default (5 s) holds every span that long before export; 0.5 s keeps a call queryable
# in ClickHouse within ~2 s of its response, for one small POST per half second.
DEFAULT_SCHEDULE_DELAY_MS = 500
SUPPORTED_PROTOCOLS = ("http/protobuf", "grpc")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class TelemetryConfigError(ValueError):
    """A variable the user set cannot work; the message says which one and what to set."""


@dataclass(frozen=True)
class Settings:
    disabled: bool
    protocol: str
    traces_enabled: bool
    metrics_enabled: bool
    capture_content: bool
    max_queue_size: int
    schedule_delay_ms: int
    # Content captured for these `app:` tags and key aliases/hashes only (capture.py).
    capture_apps: frozenset[str] = frozenset()
    capture_keys: frozenset[str] = frozenset()

    @property
    def capture(self) -> CapturePolicy:
        return CapturePolicy(self.capture_content, self.capture_apps, self.capture_keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        disabled = _flag(env, "OTEL_SDK_DISABLED", default=False)
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol not in SUPPORTED_PROTOCOLS:
            raise TelemetryConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; "
                "set it to 'http/protobuf' (port 4318) or 'grpc' (port 4317)"
            )
        for key in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ):
            _check_url(env, key)
        return cls(
            disabled=disabled,
            protocol=protocol,
            traces_enabled=_exporter_enabled(env, "OTEL_TRACES_EXPORTER"),
            metrics_enabled=_exporter_enabled(env, "OTEL_METRICS_EXPORTER"),
            capture_content=_flag(
                env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False
            ),
            max_queue_size=_positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE),
            schedule_delay_ms=_positive_int(
                env, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS
            ),
            capture_apps=names(env.get(APPS_ENV)),
            capture_keys=names(env.get(KEYS_ENV)),
        )


def _flag(env: Mapping[str, str], key: str, *, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TelemetryConfigError(f"{key}={raw!r} is not a boolean; set it to 'true' or 'false'")


def _exporter_enabled(env: Mapping[str, str], key: str) -> bool:
    value = env.get(key, "otlp").strip().lower() or "otlp"
    if value == "otlp":
        return True
    if value == "none":
        return False
    raise TelemetryConfigError(
        f"{key}={value!r} is not supported by this gateway; set it to 'otlp' or 'none'"
    )


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise TelemetryConfigError(f"{key}={raw!r} must be a positive integer")
    return value


def _check_url(env: Mapping[str, str], key: str) -> None:
    raw = env.get(key)
    if not raw:
        return
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TelemetryConfigError(
            f"{key}={raw!r} is not an http(s) URL; set it like http://otel-collector:4318"
        )
