"""Deadline polling shared by the hops that wait for data to travel downstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .context import Context

T = TypeVar("T")


@dataclass(frozen=True)
class Polled(Generic[T]):
    value: T
    elapsed_s: float
    done: bool  # False: the deadline passed first


def poll(
    ctx: Context,
    fetch: Callable[[], T],
    is_done: Callable[[T], bool],
    describe: Callable[[T], str],
    deadline_s: float | None = None,
) -> Polled[T]:
    """Call fetch until is_done or the deadline; report progress between attempts."""
    deadline = ctx.options.timeout_s if deadline_s is None else deadline_s
    started = time.monotonic()
    while True:
        value = fetch()
        elapsed = time.monotonic() - started
        if is_done(value):
            return Polled(value, elapsed, True)
        if elapsed >= deadline:
            return Polled(value, elapsed, False)
        ctx.progress(f"{describe(value)} ({elapsed:.0f}s of {deadline:g}s)")
        time.sleep(min(ctx.options.poll_interval_s, max(deadline - elapsed, 0.0)))
