"""CLI: serve a chdb data path over ClickHouse's HTTP interface until SIGTERM/SIGINT.

    python -m scripts.native_stack.chdb_server --data-dir DIR --port PORT [--host 127.0.0.1]
        [--users-file users.json] [--tls-cert cert.pem --tls-key key.pem] [--verbose]

users.json: {"name": {"password": "...", "readonly": false}, ...}; without it anyone is accepted.
`--verbose` logs one line per request to stderr: method, status, time, user, database, body
encoding, client revision, statement (200 chars).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .http_server import serve
from .users import load_users

DESCRIPTION = (
    "ClickHouse HTTP interface served from an in-process chdb session (test support only)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=DESCRIPTION)
    parser.add_argument("--data-dir", required=True, help="chdb data path (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--users-file", help='JSON {"name": {"password": "...", "readonly": false}}'
    )
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key")
    parser.add_argument("--verbose", action="store_true", help="log each statement and status")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    users = None
    if args.users_file:
        users = load_users(json.loads(Path(args.users_file).read_text()))
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    serve(args.data_dir, args.host, args.port, users, args.verbose, tls=tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
