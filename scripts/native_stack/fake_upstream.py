"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 for the proxy to call.

It answers the routes LiteLLM calls for an `openai/...` deployment (and OpenRouter's chat), with
OpenAI's response shapes: `/v1/chat/completions`, `/v1/completions` (text completion),
`/v1/embeddings`, `/v1/responses`, `/v1/images/generations`, `/v1/audio/speech`,
`/v1/audio/transcriptions` (multipart), `GET /v1/models`. Plain and streamed (server-sent
events) where OpenAI streams: chat, completions, responses.

Behaviour is steered from the request itself, so one server serves every test. Directives are
read from the text the client sent (`messages`, `input` or `prompt`; a transcription's `prompt`
form field):
- `[[status=500]]`: answer that HTTP status with an OpenAI-shaped error body; a 429 carries
  `Retry-After: 0` and `code`/`type` `rate_limit_exceeded`, like OpenAI's rate limit;
- `[[times=N]]`: the injected status applies only to the first N requests that carry the same
  text (and would get it: see only_model); later identical requests answer normally, so
  `[[status=429]][[times=1]] nonce` is a 429 then a 200 on the client's retry;
- `[[only_model=NAME]]`: the injected status applies only when the request's `model` is NAME
  (a fallback deployment with another upstream model gets a normal answer to the same text);
- `[[delay=0.25]]` waits that many seconds before answering (before the first chunk on
  streams); the server-wide `latency` applies otherwise;
- `[[cached=N]]` / `[[reasoning=N]]` report N cached prompt tokens / N reasoning tokens in the
  usage, the way OpenAI does (prompt_tokens_details, completion_tokens_details; in the
  Responses API input_tokens_details, output_tokens_details);
- `[[cut_after=N]]` (streams): N content chunks, then the connection closes without the rest
  (no usage, no `[DONE]`, no final chunk of the chunked encoding): a provider cutting a stream;
- `[[chunk_delay=0.5]]` (streams): sleeps that long between chunks (a client can leave mid-way).
Server-wide, `fail_every=N` makes every Nth POST overall answer `fail_status` (429 by default),
whatever it asks: "429 to every third request" for load tests.
Streams send a chunk per word and a final usage chunk, as OpenAI does with include_usage.

Stdlib only (and only `http_double` beside it): the Docker tests run it in a bare Python image.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import os
import re
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, cast

from .http_double import LocalServer, Reply, Request

_DIRECTIVE = re.compile(
    r"\[\[(status|delay|cached|reasoning|times|cut_after|chunk_delay)=([0-9.]+)\]\]"
)
_ONLY_MODEL = re.compile(r"\[\[only_model=([A-Za-z0-9._:/-]+)\]\]")
REPLY_WORDS = ["Hello", " from", " the", " fake", " upstream", "."]
REPLY_TEXT = "".join(REPLY_WORDS)
TRANSCRIPT = "Hello from the fake upstream."
EMBEDDING_DIMENSIONS = 8
AUDIO_SECONDS = 1.0  # what a transcription says the audio lasted (whisper bills per second)

# A valid 1x1 transparent PNG: what image generation returns (b64_json) and serves (url).
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
# gpt-image-1's output tokens for a 1024x1024 image by quality (OpenAI's pricing guide).
_IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}
_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class StreamCutError(ConnectionAbortedError):
    """Raised inside a streamed body: the server drops the connection mid-answer (a
    ConnectionError, so the server does not log it as a bug)."""


class FakeUpstream(LocalServer):
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fail_every: int = 0,
        fail_status: int = 429,
        context_windows: dict[str, int] | None = None,
    ) -> None:
        super().__init__(self._answer, host, port, name="fake-upstream")
        self.latency = latency
        # upstream model -> its context window in tokens: a longer prompt gets OpenAI's 400.
        self.context_windows = context_windows or {}
        self.fail_every = fail_every
        self.fail_status = fail_status
        self._lock = threading.Lock()
        self._posts = 0
        self._injected: Counter[str] = Counter()  # injected errors per directive text ([[times]])

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def seen_headers(self) -> list[dict[str, str]]:
        """The headers of every completion request (what the proxy forwarded upstream)."""
        return [r.headers for r in self.requests if r.method == "POST"]

    def _answer(self, req: Request) -> Reply:
        route = req.route.rstrip("/")
        if req.method == "GET":
            if route.endswith("/models"):
                return Reply(body={"object": "list", "data": []})
            if route.endswith(".png"):  # an image generation's url
                return Reply(headers={"Content-Type": "image/png"}, body=PNG_1X1)
            return error_reply(404, f"unsupported path {req.path}")
        with self._lock:
            self._posts += 1
            nth = self._posts
        if self.fail_every and nth % self.fail_every == 0:
            return error_reply(self.fail_status, f"every {self.fail_every}th request fails")
        try:
            body = _request_body(req)
        except ValueError as exc:
            return error_reply(400, str(exc))
        text = directive_text(body)
        directives = _directives(body)
        delay = directives.get("delay", self.latency)
        if delay:
            time.sleep(delay)
        window = self.context_windows.get(str(body.get("model")))
        if window is not None and _prompt_tokens(body) > window:
            return context_length_reply(window, _prompt_tokens(body))
        status = self._injected_status(body, text, directives)
        if status != 200:
            return error_reply(status, f"injected upstream error {status}")
        for suffix, handler in self._routes().items():
            if route.endswith(suffix):
                return handler(body)
        return error_reply(404, f"unsupported path {req.path}")

    def _injected_status(
        self, body: dict[str, Any], text: str, directives: dict[str, float]
    ) -> int:
        status = int(directives.get("status", 200))
        if status == 200:
            return 200
        only_model = _ONLY_MODEL.search(text)
        if only_model and body.get("model") != only_model.group(1):
            return 200
        if "times" in directives:
            with self._lock:  # concurrent retries of one text must not both get the error
                if self._injected[text] >= int(directives["times"]):
                    return 200
                self._injected[text] += 1
        return status

    def _routes(self) -> dict[str, Callable[[dict[str, Any]], Reply]]:
        # Longest suffixes first: "/chat/completions" before "/completions".
        return {
            "/chat/completions": _chat,
            "/completions": _text_completion,
            "/embeddings": _embeddings,
            "/responses": _responses,
            "/images/generations": lambda body: _images(body, self.base_url),
            "/audio/speech": _speech,
            "/audio/transcriptions": _transcription,
        }


def context_length_reply(window: int, tokens: int) -> Reply:
    """OpenAI's answer to a prompt longer than the model's context window."""
    message = (
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    return Reply(400, {"error": error})


def error_reply(status: int, message: str) -> Reply:
    """OpenAI's error shape; a 429 as OpenAI sends a rate limit (Retry-After: retry now)."""
    if status == 429:
        error = {
            "message": f"Rate limit reached: {message}",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        headers = {"Retry-After": "0", "x-ratelimit-remaining-requests": "0"}
        return Reply(status, {"error": error}, headers)
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return Reply(
        status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
    )


def _request_body(req: Request) -> dict[str, Any]:
    """JSON, or a multipart form (transcriptions) as {field: text or file bytes}."""
    content_type = req.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + req.body
        )
        form: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            # decode=True gives a field's bytes (a Message only for a nested multipart part).
            payload = cast(bytes, part.get_payload(decode=True) or b"")
            form[str(name)] = payload if part.get_filename() else payload.decode()
        return form
    try:
        body = json.loads(req.body or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError("invalid JSON") from exc
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def directive_text(body: dict[str, Any]) -> str:
    """The client's text, as the directives (and [[times]]'s count) see it."""
    source = body.get("messages") or body.get("input") or body.get("prompt") or ""
    return json.dumps(source)


def _directives(body: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in _DIRECTIVE.findall(directive_text(body))}


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # roughly a tokenizer's count; what matters is consistency


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps(body.get("messages") or body.get("input") or body.get("prompt") or "")
    return _tokens(text + str(body.get("instructions") or ""))


def _usage(body: dict[str, Any]) -> dict[str, Any]:
    directives = _directives(body)
    cached, reasoning = int(directives.get("cached", 0)), int(directives.get("reasoning", 0))
    # Like OpenAI: cached tokens are part of prompt_tokens, reasoning part of completion_tokens.
    prompt = _prompt_tokens(body) + cached
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


def _sse(events: Iterator[dict[str, Any]], body: dict[str, Any], done: bool) -> Reply:
    return Reply(headers={"Content-Type": "text/event-stream"}, body=_paced(events, body, done))


def _paced(events: Iterator[dict[str, Any]], body: dict[str, Any], done: bool) -> Iterator[bytes]:
    """Server-sent events with the stream directives applied: [[chunk_delay]] between events,
    [[cut_after]]: the connection dropped after that many content events."""
    directives = _directives(body)
    pause = directives.get("chunk_delay", 0.0)
    cut_after = int(directives["cut_after"]) if "cut_after" in directives else None
    content_sent = 0
    for index, event in enumerate(events):
        if cut_after is not None and content_sent >= cut_after and _is_content(event):
            raise StreamCutError("[[cut_after]]: the upstream drops the stream")
        if pause and index:
            time.sleep(pause)
        name = event.get("type") if isinstance(event.get("type"), str) else None
        prefix = f"event: {name}\n" if name and "." in name else ""  # Responses API events
        yield f"{prefix}data: {json.dumps(event)}\n\n".encode()
        content_sent += _is_content(event)
    if cut_after is not None:  # fewer content chunks than asked: still cut before the end
        raise StreamCutError("[[cut_after]]: the upstream drops the stream")
    if done:
        yield b"data: [DONE]\n\n"


def _is_content(event: dict[str, Any]) -> bool:
    if event.get("type") == "response.output_text.delta":
        return True
    for choice in event.get("choices") or []:
        if (choice.get("delta") or {}).get("content") or choice.get("text"):
            return True
    return False


# ---- chat completions ------------------------------------------------------------------------


def _chat(body: dict[str, Any]) -> Reply:
    if body.get("stream"):
        return _sse(_chat_chunks(body), body, done=True)
    return Reply(
        body={
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": REPLY_TEXT},
                }
            ],
            "usage": _usage(body),
        }
    )


def _chat_chunks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A chunk per word, the finish reason, then the usage."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }
    for word in REPLY_WORDS:
        delta = {"role": "assistant", "content": word}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield {**base, "choices": [], "usage": _usage(body)}


# ---- text completions (/v1/completions) ------------------------------------------------------


def _text_completion(body: dict[str, Any]) -> Reply:
    base = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }
    usage = _usage(body)
    usage.pop("prompt_tokens_details", None)  # the legacy endpoint reports plain counts
    usage.pop("completion_tokens_details", None)
    if body.get("stream"):

        def chunks() -> Iterator[dict[str, Any]]:
            for word in REPLY_WORDS:
                choice = {"text": word, "index": 0, "logprobs": None, "finish_reason": None}
                yield {**base, "choices": [choice]}
            yield {
                **base,
                "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
            }
            yield {**base, "choices": [], "usage": usage}

        return _sse(chunks(), body, done=True)
    choice = {"text": REPLY_TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}
    return Reply(body={**base, "choices": [choice], "usage": usage})


# ---- embeddings ------------------------------------------------------------------------------


def _embeddings(body: dict[str, Any]) -> Reply:
    raw = body.get("input")
    # One input or many; each a string or a list of token ids.
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        return error_reply(400, "'input' must be a non-empty string or array")
    dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    prompt_tokens = 0
    for index, item in enumerate(inputs):
        prompt_tokens += len(item) if isinstance(item, list) else _tokens(item)
        vector = _vector(json.dumps(item), dimensions)
        encoded: Any = vector
        if as_base64:  # little-endian float32, as OpenAI encodes it
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return Reply(
        body={
            "object": "list",
            "data": data,
            "model": body.get("model", "fake"),
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


def _vector(text: str, dimensions: int) -> list[float]:
    """Deterministic per text, unit length (OpenAI's embeddings are normalised)."""
    seed = hashlib.sha256(text.encode()).digest()
    values = [(seed[i % len(seed)] - 127.5) / 127.5 or 0.5 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values))
    # Round-trip through float32 so float and base64 answers carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


# ---- Responses API ---------------------------------------------------------------------------


def _responses(body: dict[str, Any]) -> Reply:
    response_id = f"resp_{uuid.uuid4().hex}"
    message_id = f"msg_{uuid.uuid4().hex}"
    if not body.get("stream"):
        return Reply(body=_response_object(body, response_id, message_id, completed=True))

    def events() -> Iterator[dict[str, Any]]:
        seq = itertools.count()
        in_progress = _response_object(body, response_id, message_id, completed=False)
        yield {"type": "response.created", "sequence_number": next(seq), "response": in_progress}
        yield {
            "type": "response.in_progress",
            "sequence_number": next(seq),
            "response": in_progress,
        }
        item = {
            "id": message_id,
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        }
        yield {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": item,
        }
        where = {"item_id": message_id, "output_index": 0, "content_index": 0}
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        yield {
            "type": "response.content_part.added",
            "sequence_number": next(seq),
            **where,
            "part": empty,
        }
        for word in REPLY_WORDS:
            yield {
                "type": "response.output_text.delta",
                "sequence_number": next(seq),
                **where,
                "delta": word,
                "logprobs": [],
            }
        yield {
            "type": "response.output_text.done",
            "sequence_number": next(seq),
            **where,
            "text": REPLY_TEXT,
            "logprobs": [],
        }
        part = {**empty, "text": REPLY_TEXT}
        yield {
            "type": "response.content_part.done",
            "sequence_number": next(seq),
            **where,
            "part": part,
        }
        done_item = _message_item(message_id)
        yield {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": done_item,
        }
        completed = _response_object(body, response_id, message_id, completed=True)
        yield {"type": "response.completed", "sequence_number": next(seq), "response": completed}

    return _sse(events(), body, done=False)  # the Responses API sends no [DONE]


def _message_item(message_id: str) -> dict[str, Any]:
    text = {"type": "output_text", "annotations": [], "logprobs": [], "text": REPLY_TEXT}
    return {
        "id": message_id,
        "type": "message",
        "status": "completed",
        "content": [text],
        "role": "assistant",
    }


def _response_object(
    body: dict[str, Any], response_id: str, message_id: str, *, completed: bool
) -> dict[str, Any]:
    """A Responses API `response` object; output and usage only once completed, as OpenAI."""
    usage = None
    if completed:
        chat = _usage(body)
        cached = (chat.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        reasoning = (chat.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        usage = {
            "input_tokens": chat["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": chat["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": chat["total_tokens"],
        }
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if completed else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", "fake"),
        "output": [_message_item(message_id)] if completed else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


# ---- images ----------------------------------------------------------------------------------


def _images(body: dict[str, Any], base_url: str) -> Reply:
    model = str(body.get("model") or "dall-e-2")
    gpt_image = model.startswith("gpt-image")
    count = int(body.get("n") or 1)
    # gpt-image models always answer base64; DALL-E a URL unless b64_json is asked for.
    as_b64 = gpt_image or body.get("response_format") == "b64_json"
    data: list[dict[str, Any]] = []
    for _ in range(count):
        if as_b64:
            data.append({"b64_json": base64.b64encode(PNG_1X1).decode()})
        else:
            data.append({"url": f"{base_url}/files/image-{uuid.uuid4().hex}.png"})
        if model == "dall-e-3":
            data[-1]["revised_prompt"] = str(body.get("prompt", ""))
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt_image:  # only the token-priced image models report usage
        quality = str(body.get("quality") or "auto")
        prompt_tokens = _tokens(str(body.get("prompt", "")))
        output_tokens = _IMAGE_OUTPUT_TOKENS.get(quality, 1056) * count
        answer.update(
            {
                "background": "opaque",
                "output_format": "png",
                "quality": "medium" if quality == "auto" else quality,
                "size": body.get("size") or "1024x1024",
                "usage": {
                    "input_tokens": prompt_tokens,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": prompt_tokens},
                    "output_tokens": output_tokens,
                    "total_tokens": prompt_tokens + output_tokens,
                },
            }
        )
    return Reply(body=answer)


# ---- audio -----------------------------------------------------------------------------------


def _speech(body: dict[str, Any]) -> Reply:
    """Short silent audio: a WAV for wav/pcm, else MPEG frames (any player accepts them)."""
    fmt = str(body.get("response_format") or "mp3")
    if fmt not in _AUDIO_TYPES:
        return error_reply(400, f"unsupported response_format {fmt}")
    samples = b"\x00\x00" * 2400  # 0.1 s of 16-bit mono silence at 24 kHz, OpenAI's rate
    if fmt == "pcm":
        audio = samples
    elif fmt == "wav":
        header = struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            *(b"RIFF", 36 + len(samples), b"WAVE", b"fmt ", 16, 1, 1, 24000, 48000, 2, 16),
            *(b"data", len(samples)),
        )
        audio = header + samples
    else:
        frame = b"\xff\xfb\x90\x64" + b"\x00" * 413  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
        audio = frame * 4
    return Reply(headers={"Content-Type": _AUDIO_TYPES[fmt]}, body=audio)


def _transcription(form: dict[str, Any]) -> Reply:
    if not isinstance(form.get("file"), bytes):
        return error_reply(400, "a multipart 'file' is required")
    model = str(form.get("model") or "whisper-1")
    fmt = str(form.get("response_format") or "json")
    if fmt == "text":
        return Reply(headers={"Content-Type": "text/plain"}, body=TRANSCRIPT + "\n")
    if fmt in ("srt", "vtt"):
        stamp = "00:00:00,000 --> 00:00:01,000" if fmt == "srt" else "00:00:00.000 --> 00:00:01.000"
        head = "1\n" if fmt == "srt" else "WEBVTT\n\n"
        return Reply(headers={"Content-Type": "text/plain"}, body=f"{head}{stamp}\n{TRANSCRIPT}\n")
    usage: dict[str, Any]
    if model.startswith("whisper"):  # whisper bills audio seconds, the gpt-4o models tokens
        usage = {"type": "duration", "seconds": math.ceil(AUDIO_SECONDS)}
    else:
        audio_tokens = 10
        text_tokens = _tokens(str(form.get("prompt") or ""))
        output = _tokens(TRANSCRIPT)
        usage = {
            "type": "tokens",
            "input_tokens": audio_tokens + text_tokens,
            "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
            "output_tokens": output,
            "total_tokens": audio_tokens + text_tokens + output,
        }
    answer: dict[str, Any] = {"text": TRANSCRIPT, "usage": usage}
    if fmt == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": AUDIO_SECONDS,
            "text": TRANSCRIPT,
            "tokens": [50364, 2425, 490, 264, 7592, 33915, 13],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 0.9,
            "no_speech_prob": 0.01,
        }
        answer = {
            "task": "transcribe",
            "language": "english",
            "duration": AUDIO_SECONDS,
            "text": TRANSCRIPT,
            "segments": [segment],
            "usage": usage,
        }
    return Reply(body=answer)


def main() -> None:
    """Run as its own process (`python -m scripts.native_stack.fake_upstream`), e.g. for
    `make bench` and the Docker tests, so the client and the upstream do not share one
    interpreter lock. The failure options default from FAKE_UPSTREAM_FAIL_EVERY /
    FAKE_UPSTREAM_FAIL_STATUS, so a compose file can set them from `.env`."""
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible upstream")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument(
        "--fail-every",
        type=int,
        default=int(os.environ.get("FAKE_UPSTREAM_FAIL_EVERY") or 0),
        help="every Nth POST answers --fail-status (0: never)",
    )
    parser.add_argument(
        "--fail-status",
        type=int,
        default=int(os.environ.get("FAKE_UPSTREAM_FAIL_STATUS") or 429),
        help="the status of --fail-every's answers",
    )
    args = parser.parse_args()
    upstream = FakeUpstream(
        host=args.host,
        port=args.port,
        latency=args.latency,
        fail_every=args.fail_every,
        fail_status=args.fail_status,
    )
    upstream.serve_forever()


if __name__ == "__main__":
    main()
