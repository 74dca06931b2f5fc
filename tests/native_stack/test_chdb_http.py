"""The chdb adapter over plain HTTP: health checks, login, errors, databases, block compression,
bad requests and concurrent clients, as ClickHouse's HTTP interface answers them."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx

from scripts.native_stack.chdb_server import AdapterProcess, encode_ch_blocks

from .chdb_clients import ADMIN_AUTH, connect


def test_ping_and_plain_http(adapter: AdapterProcess) -> None:
    assert httpx.get(f"{adapter.url}/ping").text == "Ok.\n"
    assert httpx.get(f"{adapter.url}/").text == "Ok.\n"
    answer = httpx.get(f"{adapter.url}/", params={"query": "SELECT 40 + 2"}, auth=ADMIN_AUTH)
    assert (answer.status_code, answer.text) == (200, "42\n")
    # Credentials as ClickHouse takes them: headers, URL parameters.
    by_header = httpx.post(
        f"{adapter.url}/",
        content="SELECT 'h'",
        headers={"X-ClickHouse-User": "admin", "X-ClickHouse-Key": "admin-pw"},
    )
    assert by_header.text == "h\n"
    by_params = httpx.post(f"{adapter.url}/?user=admin&password=admin-pw", content="SELECT 'p'")
    assert by_params.text == "p\n"

    missing = httpx.post(f"{adapter.url}/", content="SELECT * FROM no_such_table", auth=ADMIN_AUTH)
    assert missing.status_code == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert missing.text.startswith("Code: 60. DB::Exception:") and "(UNKNOWN_TABLE)" in missing.text

    syntax = httpx.post(f"{adapter.url}/", content="SELEC 1", auth=ADMIN_AUTH)
    assert (syntax.status_code, syntax.headers["X-ClickHouse-Exception-Code"]) == (400, "62")

    # GET implies readonly, as in ClickHouse.
    get_ddl = httpx.get(
        f"{adapter.url}/",
        params={"query": "CREATE TABLE g (a UInt8) ENGINE = Memory"},
        auth=ADMIN_AUTH,
    )
    assert get_ddl.headers["X-ClickHouse-Exception-Code"] == "164"
    assert "method GET implies readonly" in get_ddl.text

    bad_auth = httpx.post(f"{adapter.url}/", content="SELECT 1", auth=("admin", "wrong"))
    assert bad_auth.status_code == 403
    assert bad_auth.headers["X-ClickHouse-Exception-Code"] == "516"
    assert "Authentication failed" in bad_auth.text

    # `database=` selects the default database per request, not per server.
    httpx.post(f"{adapter.url}/", content="CREATE DATABASE IF NOT EXISTS plain_db", auth=ADMIN_AUTH)
    assert (
        httpx.post(
            f"{adapter.url}/?database=plain_db", content="SELECT currentDatabase()", auth=ADMIN_AUTH
        ).text
        == "plain_db\n"
    )
    assert (
        httpx.post(f"{adapter.url}/", content="SELECT currentDatabase()", auth=ADMIN_AUTH).text
        == "default\n"
    )
    assert (
        httpx.post(
            f"{adapter.url}/",
            content="SELECT currentDatabase()",
            auth=ADMIN_AUTH,
            headers={"X-ClickHouse-Database": "plain_db"},
        ).text
        == "plain_db\n"
    )
    unknown_db = httpx.post(f"{adapter.url}/?database=nope_db", content="SELECT 1", auth=ADMIN_AUTH)
    assert unknown_db.headers["X-ClickHouse-Exception-Code"] == "81"


def test_block_compressed_request_and_response(adapter: AdapterProcess) -> None:
    """`decompress=1` bodies and `compress=1` answers use ClickHouse block framing."""
    httpx.post(
        f"{adapter.url}/",
        content="CREATE TABLE IF NOT EXISTS framed (a UInt32, s String) "
        "ENGINE = MergeTree ORDER BY a",
        auth=ADMIN_AUTH,
    ).raise_for_status()
    rows = "".join(f"{i}\tv{i}\n" for i in range(1000)).encode()
    for method in ("lz4", "zstd", "none"):
        httpx.post(
            f"{adapter.url}/",
            params={"query": "INSERT INTO framed FORMAT TabSeparated", "decompress": "1"},
            content=encode_ch_blocks(rows, method),
            auth=ADMIN_AUTH,
        ).raise_for_status()
    corrupt = bytearray(encode_ch_blocks(rows, "lz4"))
    corrupt[-1] ^= 0xFF
    broken = httpx.post(
        f"{adapter.url}/",
        params={"query": "INSERT INTO framed FORMAT TabSeparated", "decompress": "1"},
        content=bytes(corrupt),
        auth=ADMIN_AUTH,
    )
    assert broken.headers["X-ClickHouse-Exception-Code"] == "40"  # CHECKSUM_DOESNT_MATCH

    answer = httpx.post(
        f"{adapter.url}/",
        params={"compress": "1"},
        content="SELECT count(), sum(a) FROM framed",
        auth=ADMIN_AUTH,
    )
    assert answer.content != b"3000\t1498500\n"
    assert encode_ch_blocks(b"3000\t1498500\n", "lz4") == answer.content


def test_bad_requests_get_answers_and_the_server_lives_on(adapter: AdapterProcess) -> None:
    url = f"{adapter.url}/"
    garbage = httpx.post(url, params={"decompress": "1"}, content=b"\x00" * 40, auth=ADMIN_AUTH)
    assert garbage.status_code >= 400 and garbage.text.startswith("Code: ")
    bad_gzip = httpx.post(
        url, content=b"not gzip", auth=ADMIN_AUTH, headers={"Content-Encoding": "gzip"}
    )
    assert bad_gzip.headers["X-ClickHouse-Exception-Code"] == "271"  # CANNOT_DECOMPRESS
    brotli = httpx.post(
        url,
        content=b"\x0b\x02\x80SELECT 1\x03",
        auth=ADMIN_AUTH,
        headers={"Content-Encoding": "br"},
    )
    assert brotli.status_code >= 400 and "Code: " in brotli.text  # no brotli module here
    empty = httpx.post(url, content=b"", auth=ADMIN_AUTH)
    assert empty.headers["X-ClickHouse-Exception-Code"] == "62"
    assert httpx.get(f"{adapter.url}/play").status_code == 404
    # A raw, malformed chunked body must not take the server down.
    with socket.create_connection(("127.0.0.1", adapter.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 ")
    assert httpx.get(f"{adapter.url}/ping").text == "Ok.\n"
    # Every statement is logged with its status (--verbose).
    assert "[chdb-adapter] POST 404" in adapter.log_text()


def test_concurrent_clients(adapter: AdapterProcess) -> None:
    """Requests from many threads, each with its own default database, stay independent."""
    admin = connect(adapter)
    for name in ("conc_a", "conc_b"):
        admin.command(f"CREATE DATABASE IF NOT EXISTS {name}")
        admin.command(
            f"CREATE TABLE IF NOT EXISTS {name}.t (v UInt64) ENGINE = MergeTree ORDER BY v"
        )
    admin.close()

    def worker(index: int) -> tuple[str, int]:
        database = ("conc_a", "conc_b")[index % 2]
        client = connect(adapter, database=database)
        try:
            for value in range(10):
                client.insert("t", [(index * 100 + value,)], column_names=["v"])
                assert client.command("SELECT currentDatabase()") == database
            return database, int(
                client.command(f"SELECT count() FROM t WHERE intDiv(v, 100) = {index}")
            )
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [(("conc_a", "conc_b")[i % 2], 10) for i in range(8)]
