"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 for the proxy to call.

Behaviour is steered from the request itself, so one server serves every test:
- a user message containing `[[status=500]]` gets that HTTP error;
- `[[delay=0.25]]` waits that many seconds before answering (before the first chunk on
  streams); the server-wide `latency` applies otherwise;
- `[[cached=N]]` / `[[reasoning=N]]` report N cached prompt tokens / N reasoning tokens in the
  usage, the way OpenAI does (prompt_tokens_details, completion_tokens_details).
Streams send a few chunks and a final usage chunk, as OpenAI does with include_usage.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DIRECTIVE = re.compile(r"\[\[(status|delay|cached|reasoning)=([0-9.]+)\]\]")
REPLY_WORDS = ["Hello", " from", " the", " fake", " upstream", "."]


class FakeUpstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[dict[str, Any]] = []
        self.seen_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.seen_headers.append(headers)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _directives(body: dict[str, Any]) -> dict[str, float]:
    text = json.dumps(body.get("messages") or body.get("input") or "")
    return {name: float(value) for name, value in _DIRECTIVE.findall(text)}


def _usage(body: dict[str, Any]) -> dict[str, Any]:
    directives = _directives(body)
    cached, reasoning = int(directives.get("cached", 0)), int(directives.get("reasoning", 0))
    # Like OpenAI: cached tokens are part of prompt_tokens, reasoning part of completion_tokens.
    prompt = max(1, len(json.dumps(body.get("messages", ""))) // 4) + cached
    completion = len(REPLY_WORDS) + reasoning
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "cached" in directives:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if "reasoning" in directives:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _handler_for(upstream: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this each keep-alive
            # response stalls ~40 ms on Nagle's algorithm.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": []})
            else:
                self._send_json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send_json(400, {"error": {"message": "invalid JSON"}})
                return
            upstream.record(body, {k.lower(): v for k, v in self.headers.items()})
            directives = _directives(body)
            delay = directives.get("delay", upstream.latency)
            status = int(directives.get("status", 200))
            if delay:
                time.sleep(delay)
            if status != 200:
                self._send_json(
                    status,
                    {
                        "error": {
                            "message": f"injected upstream error {status}",
                            "type": "server_error",
                            "code": status,
                        }
                    },
                )
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"unsupported path {self.path}"}})
                return
            if body.get("stream"):
                self._stream(body)
            else:
                self._send_json(
                    200,
                    {
                        "id": f"chatcmpl-{uuid.uuid4().hex}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "".join(REPLY_WORDS)},
                            }
                        ],
                        "usage": _usage(body),
                    },
                )

        def _stream(self, body: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            response_id = f"chatcmpl-{uuid.uuid4().hex}"
            base = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
            }
            chunks = [
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": word},
                            "finish_reason": None,
                        }
                    ],
                }
                for word in REPLY_WORDS
            ]
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            chunks.append({**base, "choices": [], "usage": _usage(body)})
            for chunk in chunks:
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def main() -> None:
    """Run as its own process (`python -m scripts.native_stack.fake_upstream`), e.g. for
    `make bench`, so the load generator and the upstream do not share one interpreter lock."""
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible upstream")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args()
    upstream = FakeUpstream(host=args.host, port=args.port, latency=args.latency)
    upstream.server.serve_forever()


if __name__ == "__main__":
    main()
