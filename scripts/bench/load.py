"""Load on one proxy: a bounded closed loop (throughput, CPU per request, latency under load)
and a sequential probe (latency at concurrency 1)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from scripts.native_stack.harness import PROVIDER_MODEL

PAYLOAD = {"model": PROVIDER_MODEL, "messages": [{"role": "user", "content": "bench"}]}
CHAT_PATH = "/v1/chat/completions"


@dataclass
class LoopResult:
    requests: int  # answered or failed, all counted
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def _closed_loop(
    url: str, headers: dict[str, str], requests: int, concurrency: int, max_seconds: float
) -> LoopResult:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=PAYLOAD, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoopResult(len(latencies), errors, elapsed, latencies)


def closed_loop(
    base_url: str,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> LoopResult:
    """`concurrency` clients, each sending its next request when the last one is answered,
    until `requests` were sent or `max_seconds` passed."""
    return asyncio.run(
        _closed_loop(base_url + CHAT_PATH, headers, requests, concurrency, max_seconds)
    )


def sequential(
    base_url: str, headers: dict[str, str], requests: int, timeout: float = 30
) -> LoopResult:
    """One request at a time on one kept-alive connection (what a lone caller sees)."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    with httpx.Client(timeout=timeout) as client:
        for _ in range(requests):
            sent = time.perf_counter()
            try:
                ok = client.post(base_url + CHAT_PATH, json=PAYLOAD, headers=headers).is_success
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - sent)
            errors += 0 if ok else 1
    return LoopResult(requests, errors, time.perf_counter() - started, latencies)
