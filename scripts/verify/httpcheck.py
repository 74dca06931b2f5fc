"""httpx helpers shared by the HTTP hops: one client setup and one way to explain "can't reach it".

The distinction matters for the fix: "connection refused" means nothing listens (not started,
crashed, wrong port), a timeout means something listens but hangs (still starting, blocked).
"""

from __future__ import annotations

import errno
from typing import Any

import httpx

from .context import Context
from .results import Result


def client(ctx: Context) -> httpx.Client:
    t = ctx.options.http_timeout_s
    # trust_env=False: an HTTP(S)_PROXY in the user's shell must not proxy 127.0.0.1.
    return httpx.Client(
        timeout=httpx.Timeout(t, connect=min(t, 5.0)), trust_env=False, follow_redirects=False
    )


def is_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if (
            isinstance(seen, ConnectionRefusedError)
            or getattr(seen, "errno", None) == errno.ECONNREFUSED
        ):
            return True
        if "connection refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable(
    exc: httpx.HTTPError, url: str, service: str, port_key: str, timeout_s: float
) -> Result:
    """Turn a transport error into a FAIL that says which of the usual causes it is."""
    address = httpx.URL(url)
    where = f"{address.host}:{address.port}"
    if isinstance(exc, httpx.ConnectTimeout):
        return Result.fail(
            f"connect to {where} timed out after {timeout_s:g}s",
            [
                f"GET {url}",
                "something drops the connection attempt (firewall, wrong BIND_ADDRESS)",
            ],
            hint=f"check BIND_ADDRESS and {port_key} in .env, then: docker compose ps",
        )
    if isinstance(exc, httpx.TimeoutException):
        return Result.fail(
            f"{service} accepted the connection on {where}, no answer within {timeout_s:g}s",
            [f"GET {url}", "still starting, overloaded, or hung"],
            hint=f"make logs s={service}",
        )
    if isinstance(exc, httpx.ConnectError) and is_refused(exc):
        return Result.fail(
            f"not running: connection refused on {where}",
            [f"GET {url}", f"nothing listens on {port_key}={address.port}"],
            hint=f"make up   # then, if it keeps failing: make logs s={service}",
        )
    if isinstance(exc, httpx.ConnectError):
        return Result.fail(
            f"cannot connect to {where}: {exc}",
            [f"GET {url}"],
            hint=f"check BIND_ADDRESS and {port_key} in .env",
        )
    # RemoteProtocolError, ReadError, ...: something answered, but not the HTTP we expected.
    return Result.fail(
        f"{where} dropped the connection or does not speak HTTP ({type(exc).__name__})",
        [f"GET {url}", str(exc) or type(exc).__name__, f"is {port_key} the port of {service}?"],
        hint=f"check {port_key} in .env, then: docker compose ps",
    )


def error_message(resp: httpx.Response) -> str:
    """LiteLLM errors look like {"error": {"message": ...}}; never echo the request (the key)."""
    try:
        err = resp.json().get("error", {})
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = resp.text
    return "server said: " + (str(message or "").strip()[:200] or "(empty body)")


def json_body(resp: httpx.Response) -> Any:
    """The decoded JSON body, or None when the answer is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None


def status_text(resp: httpx.Response) -> str:
    """What a health endpoint says about itself: its JSON status or message, else its body."""
    body = json_body(resp)
    if isinstance(body, dict) and (body.get("status") or body.get("message")):
        return str(body.get("status") or body.get("message"))
    if body is None and resp.text.strip():
        return resp.text.strip()[:80]
    return resp.reason_phrase or str(resp.status_code)
