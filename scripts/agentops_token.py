"""`make agentops-token`: the bearer token the collector sends to a self-hosted AgentOps.

    python -m scripts.agentops_token mint [--days 365]   # from AGENTOPS_JWT_SECRET_KEY and
                                                         # AGENTOPS_PROJECT_ID in .env
    python -m scripts.agentops_token show                # project and expiry, never the token

The token is an HS256 JWT with the claims AgentOps' own API puts in the tokens it mints
(`/v3/auth/token`: project_id, aud "authenticated", exp); AgentOps' collector verifies the
signature with the same JWT_SECRET_KEY and files the spans under `project_id`. A token minted
here cannot be revoked on its own: only a new JWT_SECRET_KEY on the AgentOps side invalidates it
(and every other token). It is written to AGENTOPS_TOKEN_DIR/token atomically, so the collector
picks up a new one without a restart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import jwt

from scripts.envfile.parser import read_values

AUDIENCE = "authenticated"  # what AgentOps' API sets in its own tokens
DEFAULT_DIR = "./agentops/secrets"


def mint(secret: str, project_id: str, days: int, now: dt.datetime | None = None) -> str:
    issued = now or dt.datetime.now(dt.UTC)
    claims = {
        "project_id": project_id,
        "aud": AUDIENCE,
        "exp": int((issued + dt.timedelta(days=days)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def claims_of(token: str) -> dict[str, Any]:
    """The token's claims without verifying it (the collector holds no secret to verify with)."""
    return jwt.decode(
        token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False}
    )


def write_token(directory: Path, token: str) -> Path:
    """Replace DIR/token atomically; readable by the collector's uid 10001 inside the container
    (the directory is mounted read-only; keep the checkout itself private on shared hosts)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "token"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".token-")
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("mint", "show"))
    parser.add_argument("--days", type=int, default=365, help="validity of a minted token")
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    args = parser.parse_args(argv)
    env = read_values(args.env_file)
    directory = Path(env.get("AGENTOPS_TOKEN_DIR") or DEFAULT_DIR)
    if args.action == "mint":
        missing = [k for k in ("AGENTOPS_JWT_SECRET_KEY", "AGENTOPS_PROJECT_ID") if not env.get(k)]
        if missing:
            print(
                f"error: set {' and '.join(missing)} in {args.env_file} (the JWT_SECRET_KEY of "
                "your AgentOps API, and your project's id)",
                file=sys.stderr,
            )
            return 2
        token = mint(env["AGENTOPS_JWT_SECRET_KEY"], env["AGENTOPS_PROJECT_ID"], args.days)
        path = write_token(directory, token)
        print(f"wrote {path} (project {env['AGENTOPS_PROJECT_ID']}, valid {args.days} days)")
        return 0
    path = directory / "token"
    if not path.is_file():
        print(
            f"no token at {path}: make agentops-token, or paste one from AgentOps there",
            file=sys.stderr,
        )
        return 1
    claims = claims_of(path.read_text().strip())
    expires = dt.datetime.fromtimestamp(int(claims.get("exp", 0)), dt.UTC)
    print(f"{path}: project {claims.get('project_id', '?')}, expires {expires:%Y-%m-%d %H:%M} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
