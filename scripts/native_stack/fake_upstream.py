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
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .http_double import LocalServer, Reply, Request

_DIRECTIVE = re.compile(r"\[\[(status|delay|cached|reasoning)=([0-9.]+)\]\]")
REPLY_WORDS = ["Hello", " from", " the", " fake", " upstream", "."]


class FakeUpstream(LocalServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        super().__init__(self._answer, host, port, name="fake-upstream")
        self.latency = latency

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def seen_headers(self) -> list[dict[str, str]]:
        """The headers of every completion request (what the proxy forwarded upstream)."""
        return [r.headers for r in self.requests if r.method == "POST"]

    def _answer(self, req: Request) -> Reply:
        if req.method == "GET":
            if req.path.rstrip("/").endswith("/models"):
                return Reply(body={"object": "list", "data": []})
            return Reply(404, {"error": {"message": "not found"}})
        try:
            body = json.loads(req.body or b"{}")
        except json.JSONDecodeError:
            return Reply(400, {"error": {"message": "invalid JSON"}})
        directives = _directives(body)
        delay = directives.get("delay", self.latency)
        status = int(directives.get("status", 200))
        if delay:
            time.sleep(delay)
        if status != 200:
            message = f"injected upstream error {status}"
            return Reply(
                status, {"error": {"message": message, "type": "server_error", "code": status}}
            )
        if not req.path.rstrip("/").endswith("/chat/completions"):
            return Reply(404, {"error": {"message": f"unsupported path {req.path}"}})
        if body.get("stream"):
            return Reply(headers={"Content-Type": "text/event-stream"}, body=_stream(body))
        return Reply(body=_completion(body))


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


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
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
    }


def _stream(body: dict[str, Any]) -> Iterator[bytes]:
    """Server-sent events: a chunk per word, the finish reason, the usage, then [DONE]."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }
    for word in REPLY_WORDS:
        delta = {"role": "assistant", "content": word}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    finish = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(finish)}\n\n".encode()
    yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(body)})}\n\n".encode()
    yield b"data: [DONE]\n\n"


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
    upstream.serve_forever()


if __name__ == "__main__":
    main()
