"""Users: who is asking (Basic auth, X-ClickHouse-User, URL), their password and readonly mode.

There are no grants or roles: a user has a password and may be readonly. A failed login is
Code 516 (HTTP 403, as ClickHouse's exceptionCodeToHTTPStatus maps AUTHENTICATION_FAILED).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AdapterError

# What a readonly user, or a GET request, may still run.
READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "USE", "CHECK"}
)


@dataclass
class UserSpec:
    password: str = ""
    readonly: bool = False


def load_users(raw: Mapping[str, Any]) -> dict[str, UserSpec]:
    """{name: {password, readonly}} (a bare string value is taken as the password)."""
    users: dict[str, UserSpec] = {}
    for name, spec in raw.items():
        if isinstance(spec, str):
            users[name] = UserSpec(password=spec)
        else:
            users[name] = UserSpec(
                password=str(spec.get("password", "")), readonly=bool(spec.get("readonly", False))
            )
    return users


def credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> tuple[str, str]:
    """User and password the ways ClickHouse takes them, in its order; else passwordless default."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AdapterError(194, "REQUIRED_PASSWORD", "Invalid Basic authorization") from exc
        return user, password
    if "x-clickhouse-user" in headers:
        return headers["x-clickhouse-user"], headers.get("x-clickhouse-key", "")
    if "user" in params:
        return params["user"], params.get("password", "")
    return "default", ""


def authenticate(
    users: Mapping[str, UserSpec] | None, headers: Mapping[str, str], params: Mapping[str, str]
) -> tuple[str, UserSpec]:
    """The request's user and their spec; without a users map anyone is accepted."""
    user, password = credentials(headers, params)
    if users is None:
        return user, UserSpec(password=password)
    spec = users.get(user)
    if spec is None or spec.password != password:
        raise AdapterError(
            516,
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is "
            "no user with such name.",
        )
    return user, spec


def check_readonly(
    user: str, spec: UserSpec, method: str, params: Mapping[str, str], keyword: str
) -> None:
    """Only reads in readonly mode (Code 164); GET implies readonly but still allows SET."""
    get_readonly = method in ("GET", "HEAD")
    readonly = spec.readonly or params.get("readonly", "0") not in ("0", "")
    if not (readonly or get_readonly) or keyword in READ_KEYWORDS:
        return
    if get_readonly and not readonly and keyword == "SET":
        return
    message = f"{user}: Cannot execute query in readonly mode"
    if get_readonly and not readonly:
        message += (
            ". For queries over HTTP, method GET implies readonly. "
            "You should use method POST for modifying queries"
        )
    raise AdapterError(164, "READONLY", message)
