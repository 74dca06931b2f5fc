"""The fake upstream's own HTTP behaviour, where tests elsewhere rely on it: injected errors that
clear on retry or spare another model, rate limits the way OpenAI sends them, cut streams,
every-Nth failures (in-process and as the process the Docker tests run), and the encodings a
client must decode (base64 embeddings, multipart transcriptions)."""

from __future__ import annotations

import base64
import json
import secrets
import struct
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.native_stack.fake_upstream import REPLY_TEXT, FakeUpstream
from scripts.native_stack.paths import REPO
from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as running:
        yield running


def chat(base_url: str, content: str, model: str = "m", **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": content}], **body}
    return httpx.post(f"{base_url}/chat/completions", json=payload, timeout=10)


def nonce() -> str:
    return secrets.token_hex(6)  # [[times]] counts per text: each test its own


def test_429_then_200_for_the_same_text(upstream: FakeUpstream) -> None:
    text = f"[[status=429]][[times=1]] {nonce()}"
    first = chat(upstream.base_url, text)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "0"
    assert first.json()["error"]["code"] == first.json()["error"]["type"] == "rate_limit_exceeded"
    second = chat(upstream.base_url, text)
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["content"] == REPLY_TEXT
    # Another text has its own count.
    assert chat(upstream.base_url, f"[[status=429]][[times=1]] {nonce()}").status_code == 429


def test_times_counts_concurrent_requests_exactly(upstream: FakeUpstream) -> None:
    text = f"[[status=503]][[times=3]] {nonce()}"
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(upstream.base_url, text).status_code, range(8)))
    assert sorted(statuses) == [200] * 5 + [503] * 3


def test_only_model_spares_another_model(upstream: FakeUpstream) -> None:
    text = f"[[status=500]][[only_model=openai/primary-1.0]] {nonce()}"
    assert chat(upstream.base_url, text, model="openai/primary-1.0").status_code == 500
    assert chat(upstream.base_url, text, model="fallback").status_code == 200
    # Not counted for the other model: with [[times=1]] the primary still gets its one error.
    counted = f"[[status=429]][[times=1]][[only_model=a]] {nonce()}"
    assert chat(upstream.base_url, counted, model="b").status_code == 200
    assert chat(upstream.base_url, counted, model="a").status_code == 429
    assert chat(upstream.base_url, counted, model="a").status_code == 200


def test_directives_work_on_every_route(upstream: FakeUpstream) -> None:
    text = f"[[status=429]] {nonce()}"
    routes = {
        "/completions": {"model": "m", "prompt": text},
        "/embeddings": {"model": "m", "input": text},
        "/responses": {"model": "m", "input": text},
        "/images/generations": {"model": "gpt-image-1", "prompt": text},
        "/audio/speech": {"model": "tts-1", "input": text, "voice": "alloy"},
    }
    for route, body in routes.items():
        response = httpx.post(upstream.base_url + route, json=body, timeout=10)
        assert response.status_code == 429, route
    transcription = httpx.post(
        f"{upstream.base_url}/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
        data={"model": "whisper-1", "prompt": text},
        timeout=10,
    )
    assert transcription.status_code == 429


def stream_lines(url: str, body: dict[str, Any]) -> tuple[list[str], Exception | None]:
    """The SSE lines a client read, and the error that ended the stream (None: a clean end)."""
    lines: list[str] = []
    try:
        with httpx.stream("POST", url, json=body, timeout=10) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line:
                    lines.append(line)
    except httpx.RemoteProtocolError as exc:
        return lines, exc
    return lines, None


def test_cut_after_drops_the_connection_mid_stream(upstream: FakeUpstream) -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[cut_after=2]] {nonce()}"}],
    }
    lines, error = stream_lines(f"{upstream.base_url}/chat/completions", body)
    assert error is not None  # incomplete chunked body: not a clean end of the answer
    assert len(lines) == 2
    assert "data: [DONE]" not in lines
    # Without the directive the same stream ends cleanly with usage and [DONE].
    body["messages"] = [{"role": "user", "content": nonce()}]
    lines, error = stream_lines(f"{upstream.base_url}/chat/completions", body)
    assert error is None
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2].removeprefix("data: "))["usage"]["completion_tokens"] > 0


def test_cut_after_on_a_responses_stream(upstream: FakeUpstream) -> None:
    body = {"model": "m", "stream": True, "input": f"[[cut_after=1]] {nonce()}"}
    lines, error = stream_lines(f"{upstream.base_url}/responses", body)
    assert error is not None
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events[-1] == "response.output_text.delta"
    assert events.count("response.output_text.delta") == 1
    assert "response.completed" not in events


def test_responses_stream_events_carry_usage(upstream: FakeUpstream) -> None:
    body = {"model": "m", "stream": True, "input": nonce()}
    lines, error = stream_lines(f"{upstream.base_url}/responses", body)
    assert error is None
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == (
        REPLY_TEXT
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens"] > 0 and usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_chunk_delay_spaces_the_chunks(upstream: FakeUpstream) -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[chunk_delay=0.2]] {nonce()}"}],
    }
    start = time.monotonic()
    with httpx.stream("POST", f"{upstream.base_url}/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    elapsed = time.monotonic() - start
    # 6 words, the finish chunk and the usage chunk: 7 pauses between them, then [DONE]. Only
    # a lower bound: the sleeps guarantee it, a busy machine can only add to it.
    assert len(lines) == 9 and lines[-1] == "data: [DONE]"
    assert elapsed >= 0.2 * 7


def test_fail_every_third_post() -> None:
    with FakeUpstream(fail_every=3) as upstream:
        statuses = [chat(upstream.base_url, nonce()).status_code for _ in range(6)]
        # GETs are not counted.
        assert httpx.get(f"{upstream.base_url}/models", timeout=10).status_code == 200
        assert chat(upstream.base_url, nonce()).status_code == 200
    assert statuses == [200, 200, 429, 200, 200, 429]


def test_fail_every_from_the_environment_of_the_process(tmp_path: Path) -> None:
    """As tests/docker/fake-openrouter.yaml runs it: a module, options from the environment."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "FAKE_UPSTREAM_FAIL_EVERY": "2",
        "FAKE_UPSTREAM_FAIL_STATUS": "503",
    }
    argv = [sys.executable, "-m", "scripts.native_stack.fake_upstream", "--port", str(port)]
    with ManagedProcess(
        "fake-upstream", argv, log_path=tmp_path / "log", env=env, cwd=REPO
    ) as proc:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_for_http(f"{base_url}/models", 30, proc=proc)
        statuses = [chat(base_url, nonce()).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]


def test_embeddings_float_and_base64_agree(upstream: FakeUpstream) -> None:
    text = nonce()
    answers = {
        fmt: httpx.post(
            f"{upstream.base_url}/embeddings",
            json={"model": "m", "input": [text, "two"], "encoding_format": fmt},
            timeout=10,
        ).json()
        for fmt in ("float", "base64")
    }
    floats = [d["embedding"] for d in answers["float"]["data"]]
    decoded = [
        list(struct.unpack(f"<{len(floats[0])}f", base64.b64decode(d["embedding"])))
        for d in answers["base64"]["data"]
    ]
    assert decoded == floats and len(floats) == 2
    usage = answers["float"]["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 0


def test_transcription_reads_the_multipart_form(upstream: FakeUpstream) -> None:
    response = httpx.post(
        f"{upstream.base_url}/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
        data={"model": "gpt-4o-transcribe"},
        timeout=10,
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["text"] and answer["usage"]["type"] == "tokens"
    missing = httpx.post(
        f"{upstream.base_url}/audio/transcriptions",
        files={"other": ("a.txt", b"x", "text/plain")},
        data={"model": "whisper-1"},
        timeout=10,
    )
    assert missing.status_code == 400
