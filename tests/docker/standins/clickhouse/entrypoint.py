"""Entrypoint of the ClickHouse stand-in image: the chdb engine behind its HTTP adapter
(scripts/native_stack/chdb_server/), started the way the official clickhouse/clickhouse-server
entrypoint starts a server.

What it honours of the official image's contract (the parts this stack relies on):
- users and passwords from /etc/clickhouse-server/users.d/*.xml (`from_env` included, `remove`
  of a user, a profile's `readonly`), the image's passwordless `default` user otherwise;
- on an empty data volume only: CREATE DATABASE $CLICKHOUSE_DB, then every
  /docker-entrypoint-initdb.d/*.sql in name order; nothing answers on 8123 meanwhile;
- HTTP on 8123 on every interface, run as uid/gid 101 like the official server; HTTPS on 8443
  instead when STANDIN_TLS_CERT/STANDIN_TLS_KEY name a certificate and key (what the official
  server takes from config.d's <openSSL>, which the stand-in does not read).
What it does not: the native protocol (9000), grants beyond readonly, `networks`, quotas,
settings profiles other than readonly, server settings from config.d (tests/docker/README.md).
"""

from __future__ import annotations

import os
import pwd
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from scripts.clickhouse_schema.files import apply_schema
from scripts.native_stack.chdb_server import ChdbHttpAdapter, UserSpec, serve

DATA_DIR = Path("/var/lib/clickhouse")
USERS_DIR = Path("/etc/clickhouse-server/users.d")
INITDB_DIR = Path("/docker-entrypoint-initdb.d")
SERVER_USER = "clickhouse"


def log(message: str) -> None:
    print(f"[clickhouse-standin] {message}", file=sys.stderr, flush=True)


def users_from_xml(files: list[Path]) -> dict[str, UserSpec]:
    """Merge users.d files in name order over the image's built-in passwordless `default`."""
    readonly_profiles: set[str] = set()
    declared: dict[str, tuple[str, str]] = {"default": ("", "default")}
    for path in files:
        root = ET.parse(path).getroot()
        for profile in root.findall("profiles/*"):
            if (profile.findtext("readonly") or "0").strip() not in ("", "0"):
                readonly_profiles.add(profile.tag)
        for user in root.findall("users/*"):
            if user.get("remove"):
                declared.pop(user.tag, None)
                continue
            password = user.find("password")
            if password is None:
                value = ""
            elif password.get("from_env"):
                value = os.environ.get(password.get("from_env", ""), "")
            else:
                value = password.text or ""
            declared[user.tag] = (value, (user.findtext("profile") or "default").strip())
    return {
        name: UserSpec(password=pw, readonly=profile in readonly_profiles)
        for name, (pw, profile) in declared.items()
    }


def first_start_schema(adapter: ChdbHttpAdapter) -> None:
    database = os.environ.get("CLICKHOUSE_DB", "").strip()
    if database:
        adapter.run(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    if INITDB_DIR.is_dir():
        for script in sorted(INITDB_DIR.iterdir()):
            if script.suffix not in (".sql", ".sh"):
                continue
            if script.suffix == ".sh":
                log(f"{script.name}: shell init scripts are not run by the stand-in")
        applied = apply_schema(adapter.run, INITDB_DIR) if any(INITDB_DIR.glob("*.sql")) else []
        log(f"initdb applied: {', '.join(applied) or 'nothing'}")


def drop_privileges() -> None:
    """chown the volume and become uid 101, as the official entrypoint does with gosu."""
    if os.getuid() != 0:
        return
    server = pwd.getpwnam(SERVER_USER)
    for path in [DATA_DIR, *DATA_DIR.rglob("*")]:
        os.chown(path, server.pw_uid, server.pw_gid, follow_symlinks=False)
    os.setgroups([])
    os.setgid(server.pw_gid)
    os.setuid(server.pw_uid)
    os.environ["HOME"] = str(DATA_DIR)


def main() -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    fresh = not any(DATA_DIR.iterdir())
    users = users_from_xml(sorted(USERS_DIR.glob("*.xml")) if USERS_DIR.is_dir() else [])
    drop_privileges()
    volume = "empty volume: initialising" if fresh else "existing volume"
    log(f"users: {', '.join(sorted(users))}; {volume}")
    cert, key = os.environ.get("STANDIN_TLS_CERT"), os.environ.get("STANDIN_TLS_KEY")
    tls = (Path(cert), Path(key)) if cert and key else None
    serve(
        DATA_DIR,
        host="0.0.0.0",  # inside the container; compose decides what is published
        port=8443 if tls else 8123,
        tls=tls,
        users=users,
        verbose=os.environ.get("STANDIN_VERBOSE") == "1",
        prepare=first_start_schema if fresh else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
