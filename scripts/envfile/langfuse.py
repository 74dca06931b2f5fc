"""The Langfuse overlay's derived `.env` values, for `make init` and for fixing an existing .env.

The collector authenticates to Langfuse's OTLP endpoint with HTTP Basic auth, username = the
project's public key, password = its secret key. The collector's `basicauth` extension is not in
our collector build, so the header value is precomputed here as base64("public:secret") and
passed to the collector as LANGFUSE_OTLP_BASIC_AUTH. It is derived, never typed: when the keys
change, rerun `python3 -m scripts.envfile.langfuse --write` to update it.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from .parser import parse_env_text, parse_line
from .spec import PLACEHOLDER

PUBLIC_KEY = "LANGFUSE_INIT_PROJECT_PUBLIC_KEY"
SECRET_KEY = "LANGFUSE_INIT_PROJECT_SECRET_KEY"
BASIC_AUTH = "LANGFUSE_OTLP_BASIC_AUTH"
WRITE_COMMAND = "python3 -m scripts.envfile.langfuse --write"

# Formats Langfuse expects, by .env key (init.py matches keys by suffix, first wins).
GENERATORS: list[tuple[str, Callable[[], str]]] = [
    # Langfuse refuses to start unless this is 256 bits as 64 hex characters.
    ("LANGFUSE_ENCRYPTION_KEY", lambda: secrets.token_hex(32)),
    # The prefixes are what Langfuse itself issues; the API tells the two apart by them.
    (PUBLIC_KEY, lambda: f"pk-lf-{secrets.token_hex(16)}"),
    (SECRET_KEY, lambda: f"sk-lf-{secrets.token_hex(16)}"),
]


def otlp_basic_auth(public_key: str, secret_key: str) -> str:
    """The credentials part of `Authorization: Basic ...` for Langfuse's OTLP endpoint."""
    if not public_key or not secret_key:
        raise ValueError(f"{PUBLIC_KEY} and {SECRET_KEY} must both be set")
    return base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")


def expected_basic_auth(values: Mapping[str, str]) -> str | None:
    """What LANGFUSE_OTLP_BASIC_AUTH must be for these keys; None when a key is missing."""
    public, secret = values.get(PUBLIC_KEY, ""), values.get(SECRET_KEY, "")
    if not public or not secret or PLACEHOLDER in (public + secret):
        return None
    return otlp_basic_auth(public, secret)


def basic_auth_mismatch(values: Mapping[str, str]) -> str | None:
    """A one-line problem description when LANGFUSE_OTLP_BASIC_AUTH does not match the keys."""
    expected = expected_basic_auth(values)
    if expected is None:
        return None
    actual = values.get(BASIC_AUTH, "")
    if actual == expected:
        return None
    what = "is not set" if not actual else "does not match the project keys"
    return (
        f"{BASIC_AUTH} in .env {what}, so Langfuse refuses the collector: "
        f"{WRITE_COMMAND} && docker compose up -d"
    )


def with_otlp_basic_auth(env_text: str) -> str:
    """.env text with LANGFUSE_OTLP_BASIC_AUTH set from the keys in it (appended if absent).

    Unchanged when the keys are missing, so it is safe on any .env. Comments on the line stay.
    """
    expected = expected_basic_auth(parse_env_text(env_text).values)
    if expected is None:
        return env_text
    lines = env_text.splitlines()
    for i, line in enumerate(lines):
        assignment, _ = parse_line(line)
        if assignment is not None and assignment.key == BASIC_AUTH:
            lines[i] = f"{BASIC_AUTH}={expected}{assignment.comment}"
            break
    else:
        lines.append(f"{BASIC_AUTH}={expected}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m scripts.envfile.langfuse", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"update {BASIC_AUTH} in the env file instead of printing it",
    )
    args = parser.parse_args(argv)
    if not args.env_file.exists():
        print(f"error: {args.env_file} not found", file=sys.stderr)
        return 2
    text = args.env_file.read_text()
    expected = expected_basic_auth(parse_env_text(text, args.env_file).values)
    if expected is None:
        print(f"error: set {PUBLIC_KEY} and {SECRET_KEY} in {args.env_file} first", file=sys.stderr)
        return 2
    if not args.write:
        print(expected)
        return 0
    updated = with_otlp_basic_auth(text)
    if updated != text:
        args.env_file.write_text(updated)
        print(f"updated {BASIC_AUTH} in {args.env_file}; apply it with: docker compose up -d")
    else:
        print(f"{BASIC_AUTH} in {args.env_file} already matches the keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
