"""The adapter: ClickHouse HTTP semantics over one persistent chdb session, server-independent.

`ChdbHttpAdapter.handle(method, target, headers, body)` answers one request: routes, login,
body decoding, the statement's handler (`statements`), Native re-framing, compression.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .compression import block_method, decode_request_body, encode_ch_blocks
from .errors import AdapterError, error_from_chdb
from .form import is_form, read_form
from .native_framing import native_for_client
from .response import Outcome, Response, ServerInfo, error_response, plain, result_response
from .statements import MOVES_DATABASE, Call, handler_for, read_statement
from .users import UserSpec, authenticate, check_readonly

_HEALTH_PATHS = ("/ping", "/replicas_status")
_NO_HANDLE = (
    "There is no handle {path}\n\nUse / or /ping for health checks.\n"
    "Or /replicas_status for more sophisticated health checks.\n\n"
    "Send queries from your program with POST method or GET /?query=...\n"
)


class ChdbHttpAdapter:
    """ClickHouse HTTP semantics over one persistent chdb session; HTTP-server independent."""

    def __init__(
        self,
        data_dir: str | Path,
        users: Mapping[str, UserSpec] | None = None,
        verbose: bool = False,
    ) -> None:
        import chdb.session  # imported here: importing the module must not start an engine

        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self._session = chdb.session.Session(str(data_dir))
        self._lock = threading.Lock()
        self._current_db: str | None = None
        self.users = dict(users) if users is not None else None
        self.verbose = verbose
        row = (
            self._session.query(
                "SELECT version(), revision(), timezone(), displayName()", "TabSeparated"
            )
            .bytes()
            .decode()
            .rstrip("\n")
            .split("\t")
        )
        self.version, self.revision, self.timezone, self.display_name = (
            row[0],
            int(row[1]),
            row[2],
            row[3],
        )
        self._server = ServerInfo(self.display_name, self.timezone)

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def run(self, statement: str) -> None:
        """Run one statement as the engine's own superuser (volume initialisation)."""
        with self._lock:
            self._current_db = None  # the statement may switch databases
            try:
                self._session.query(statement, "TabSeparated")
            except Exception as exc:
                raise error_from_chdb(str(exc)) from exc

    def error_response(self, err: AdapterError, user: str | None = None) -> Response:
        return error_response(err, self.version)

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one HTTP request (`headers` keys lower-case)."""
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path or "/"
        if path in _HEALTH_PATHS or (
            path == "/" and method in ("GET", "HEAD") and "query" not in params and not body
        ):
            return plain(200, "Ok.\n")
        if path != "/":
            return plain(404, _NO_HANDLE.format(path=path))
        try:
            user, spec = authenticate(self.users, headers, params)
        except AdapterError as err:
            return self.error_response(err)  # before output setup: never block-compressed
        log: dict[str, str] = {}
        try:
            response = self._execute(method, params, headers, body, user, spec, log)
        except AdapterError as err:
            response = self._compressed_error(err, params)
        except Exception as err:  # noqa: BLE001 - an adapter bug must still be an answer
            response = self._compressed_error(
                AdapterError(1001, "STD_EXCEPTION", f"adapter: {err!r}"), params
            )
        response.statement, response.note = log.get("statement", ""), _note(user, params, headers)
        return response

    def _compressed_error(self, err: AdapterError, params: Mapping[str, str]) -> Response:
        """An error after login: block-framed too when the client asked for `compress=1`."""
        response = self.error_response(err)
        if params.get("compress") == "1":
            response.body = encode_ch_blocks(response.body, block_method(params))
        return response

    def _execute(
        self,
        method: str,
        params: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        user: str,
        spec: UserSpec,
        log: dict[str, str],
    ) -> Response:
        started = time.monotonic()
        call = _read_call(params, headers, body)
        log["statement"] = call.statement.log_line
        check_readonly(user, spec, method, params, call.statement.keyword)
        database = params.get("database") or headers.get("x-clickhouse-database") or "default"
        outcome = self._run(call, database)
        if outcome.out_format.lower() == "native" and outcome.body:
            revision = int(params.get("client_protocol_version") or 0)
            outcome.body = native_for_client(outcome.body, revision, self.revision)
        return result_response(outcome, params, headers, self._server, started)

    def _run(self, call: Call, database: str) -> Outcome:
        """Run the statement's handler in `database` under the session lock."""
        handler = handler_for(call.statement)
        with self._lock:
            self._use(database)
            try:
                return handler(self._session, call)
            except AdapterError:
                raise
            except Exception as exc:
                raise error_from_chdb(str(exc)) from exc
            finally:
                if call.statement.keyword in MOVES_DATABASE:
                    self._current_db = None

    def _use(self, database: str) -> None:
        if database == self._current_db:
            return
        quoted = "`" + database.replace("\\", "\\\\").replace("`", "\\`") + "`"
        try:
            self._session.query(f"USE {quoted}", "TabSeparated")
        except Exception as exc:
            self._current_db = None
            raise error_from_chdb(str(exc)) from exc
        self._current_db = database


def _read_call(params: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Call:
    """The statement and its query parameters, from the URL, the (decoded) body or a form."""
    query = params.get("query")
    query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
    body = decode_request_body(body, params, headers)
    content_type = headers.get("content-type", "")
    if is_form(content_type):
        query, body = read_form(content_type, body, query, query_params)
    return Call(read_statement(query, body), params, headers, query_params)


def _note(user: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """Who, where and which body encoding, for the request log."""
    encodings = [headers.get("content-encoding", "")]
    encodings += ["ch-blocks"] if params.get("decompress") == "1" else []
    return (
        f"user={user} db={params.get('database') or headers.get('x-clickhouse-database') or ''}"
        f" enc={'+'.join(e for e in encodings if e) or '-'}"
        f" rev={params.get('client_protocol_version', '0')}"
    )
