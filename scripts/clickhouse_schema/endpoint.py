"""Where scripts reach an external ClickHouse (clickhouse/external.yaml): CLICKHOUSE_URL, over TLS
when it is https, trusting CLICKHOUSE_CA_FILE or else the system store. Stdlib only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXTERNAL_OVERLAY = "clickhouse/external.yaml"
DEFAULT_PORTS = {"http": 8123, "https": 8443}


class EndpointError(ValueError):
    """A CLICKHOUSE_URL / CLICKHOUSE_CA_FILE value that cannot work; the message says the fix."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    secure: bool
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for clickhouse_connect.get_client. `secure` is explicit: the driver
        ignores a URL's scheme and would speak plain HTTP to a non-standard TLS port."""
        options: dict[str, Any] = {"host": self.host, "port": self.port, "secure": self.secure}
        if self.ca_file is not None:
            options["ca_cert"] = str(self.ca_file)
        return options


def external_endpoint(values: Mapping[str, str], root: Path) -> Endpoint | None:
    """The external ClickHouse from .env values, or None when the stack runs its own."""
    url = (values.get("CLICKHOUSE_URL") or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if "," in parts.netloc:
        # Several hosts (the exporter fails over between them): scripts use the first one.
        first = parts.netloc.split(",", 1)[0]
        parts = urlsplit(f"{parts.scheme}://{first}{parts.path}")
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise EndpointError(
            f"CLICKHOUSE_URL={url!r} is not an http(s) URL: set it to e.g. https://host:8443"
        )
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise EndpointError(f"CLICKHOUSE_URL={url!r} has an invalid port ({exc})") from exc
    ca_text = (values.get("CLICKHOUSE_CA_FILE") or "").strip()
    ca_file = None
    if ca_text:
        ca_file = (root / ca_text).resolve()
        if not ca_file.is_file():
            raise EndpointError(
                f"CLICKHOUSE_CA_FILE={ca_text!r} is not a file: give the PEM of the CA that signed "
                "the server's certificate, or leave it empty to trust the system store"
            )
        if parts.scheme != "https":
            raise EndpointError(
                f"CLICKHOUSE_CA_FILE is set but CLICKHOUSE_URL={url!r} is not https: use https://"
            )
    return Endpoint(parts.hostname, port, parts.scheme == "https", ca_file)


def tls_problem(error_text: str) -> str | None:
    """A one-line diagnosis when a connection failed in the TLS handshake, else None."""
    if "CERTIFICATE_VERIFY_FAILED" in error_text or "certificate signed by unknown" in error_text:
        return (
            "TLS: the server's certificate is not trusted; set CLICKHOUSE_CA_FILE in .env to the "
            "CA that signed it (or fix the server's certificate chain)"
        )
    if "SSL" in error_text and (
        "WRONG_VERSION_NUMBER" in error_text or "record layer" in error_text
    ):
        return "TLS: the server does not speak TLS on that port; use http:// or the TLS port"
    return None
