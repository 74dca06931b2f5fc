"""`make init`: write .env from .env.example, replacing every CHANGEME secret with a fresh one.

    python3 -m scripts.envfile.init [--example .env.example] [--output .env]

Never overwrites an .env. Provider keys cannot be generated: they are left empty, with a note
saying where to set them.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from . import langfuse
from .parser import parse_line
from .spec import PLACEHOLDER

# Secret formats by key suffix; hex keeps values safe in URLs, XML and shell alike.
GENERATORS: list[tuple[str, Callable[[], str]]] = [
    ("_MASTER_KEY", lambda: f"sk-{secrets.token_hex(24)}"),
    *langfuse.GENERATORS,
]
USER_SUPPLIED = ("_API_KEY",)  # provider keys: only the user has them


def generate(key: str) -> str | None:
    if key.endswith(USER_SUPPLIED):
        return None
    for suffix, make in GENERATORS:
        if key.endswith(suffix):
            return make()
    return secrets.token_hex(20)


def render(example: str) -> tuple[str, list[str]]:
    """The .env text, and the keys the user still has to fill in."""
    lines, todo = [], []
    for line in example.splitlines():
        assignment, _ = parse_line(line)
        if assignment is not None and assignment.value == PLACEHOLDER:
            key = assignment.key
            value = generate(key)
            if value is None:
                # No inline comment after an empty value: compose would read it as the value.
                todo.append(key)
                line = f"{key}="
            else:
                # The `# CHANGEME` marker is dropped with the placeholder: it asks the user for a
                # value, and a comment left on the line ends up in `grep ... | cut` one-liners.
                line = f"{key}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n", todo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m scripts.envfile.init", description=__doc__)
    parser.add_argument("--example", type=Path, default=Path(".env.example"))
    parser.add_argument("--output", type=Path, default=Path(".env"))
    args = parser.parse_args(argv)
    if args.output.exists():
        print(f"{args.output} exists; left unchanged (delete it to start over).")
        return 0
    if not args.example.exists():
        print(f"error: {args.example} not found; run from the repository root.", file=sys.stderr)
        return 2
    text, todo = render(args.example.read_text())
    text = langfuse.with_otlp_basic_auth(text)
    args.output.touch(mode=0o600)
    args.output.write_text(text)
    print(f"wrote {args.output} with generated secrets (mode 600).")
    for key in todo:
        print(
            f"  set {key} in {args.output} to use the provider model "
            "(the keyless verify-mock model works without it)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
