"""One record per client request, however many provider attempts LiteLLM made for it.

LiteLLM reports a call's *first* failed attempt as a failure event while its router goes on
retrying or falling back; the later failed attempts it reports only inside the terminal event
(`metadata.previous_models`). The terminal event is either the success event of the attempt whose
answer the client got, or the proxy's `post_call_failure_hook` when the client got an error.
So a failure event only opens a call here; the terminal event closes it and emits its record
(docs/CONTRACTS.md, "Attempts"). Plain data and a lock, no LiteLLM import: unit-tested directly.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import contract
from .attributes import LLMCall


@dataclass(frozen=True)
class FailedAttempt:
    """A provider attempt that failed before the call's terminal event."""

    model_group: str
    model: str
    error_type: str


def failed_attempts(metadata: Mapping[str, Any] | None) -> list[FailedAttempt]:
    """The failed attempts LiteLLM's router lists in `previous_models`, oldest first.

    When the router falls back, it appends the group's last failure a second time (same group,
    deployment and retry number); that repeat is one attempt, not two.
    """
    entries = (metadata or {}).get("previous_models")
    out: list[FailedAttempt] = []
    seen: set[tuple[Any, Any, Any]] = set()
    # A list, or a tuple once LiteLLM's redaction has copied the metadata.
    for entry in entries if isinstance(entries, (list, tuple)) else ():
        if not isinstance(entry, Mapping):
            continue
        key = (entry.get("model_group"), entry.get("deployment_id"), entry.get("attempted_retries"))
        if key in seen:
            continue
        seen.add(key)
        out.append(
            FailedAttempt(
                model_group=str(entry.get("model_group") or ""),
                model=str(entry.get("model") or ""),
                error_type=str(entry.get("exception_type") or "error"),
            )
        )
    return out


def requested_model_group(metadata: Mapping[str, Any] | None) -> str | None:
    """The model group the client asked for; after a fallback the payload names another."""
    value = (metadata or {}).get("original_model_group")
    return value if isinstance(value, str) and value else None


def answered_by_fallback(metadata: Mapping[str, Any] | None, answering_group: str | None) -> bool:
    metadata = metadata or {}
    fallbacks = metadata.get("attempted_fallbacks")
    if isinstance(fallbacks, int) and not isinstance(fallbacks, bool) and fallbacks > 0:
        return True
    requested = requested_model_group(metadata)
    return bool(requested and answering_group and requested != answering_group)


class OpenCalls:
    """Calls with a failed attempt and no terminal event yet, keyed by `request_key`.

    Bounded: a call held longer than `max_age_s` (no terminal event ever came) or pushed out by
    `limit` newer ones is handed back to be recorded as a failed call, never dropped silently.
    Keys closed recently are remembered, so a failure event that arrives after its call's
    terminal event (LiteLLM runs them as separate tasks) opens nothing.
    """

    def __init__(self, limit: int = 4096, max_age_s: float = 3600.0) -> None:
        self._open: OrderedDict[str, tuple[float, LLMCall]] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._max_age_s = max_age_s
        self._lock = threading.Lock()  # sync handlers run on LiteLLM's executor threads
        self.expired_total = 0  # calls handed back without a terminal event (a health metric)

    def open(self, key: str, first_failure: LLMCall) -> list[LLMCall]:
        """Hold a call's first failed attempt; returns calls that must be recorded now."""
        with self._lock:
            if key in self._closed or key in self._open:
                return self._expired()
            self._open[key] = (time.monotonic(), first_failure)
            return self._expired()

    def close(self, key: str) -> tuple[bool, LLMCall | None]:
        """End a call: (False, None) if it was closed already (a repeated terminal event),
        else (True, its held first failure or None)."""
        with self._lock:
            if key in self._closed:
                return False, None
            self._closed[key] = None
            if len(self._closed) > self._limit:
                self._closed.popitem(last=False)
            held = self._open.pop(key, None)
            return True, held[1] if held else None

    def expired(self) -> list[LLMCall]:
        with self._lock:
            return self._expired()

    def _expired(self) -> list[LLMCall]:
        out = []
        deadline = time.monotonic() - self._max_age_s
        while self._open:
            key, (opened, call) = next(iter(self._open.items()))
            if opened > deadline and len(self._open) <= self._limit:
                break
            del self._open[key]
            self._closed[key] = None
            self.expired_total += 1
            out.append(call)
        return out

    def __len__(self) -> int:
        return len(self._open)


def request_key(payload: Mapping[str, Any]) -> str:
    """One client request, the same for all its attempts: the proxy's call id with LiteLLM's
    trace id. Neither alone is enough: the trace id is the caller's session or W3C trace id when
    it sends one (many calls share it), and a client may reuse `x-litellm-call-id`."""
    call_id = payload.get("litellm_call_id") or payload.get("id") or ""
    return f"{call_id}|{payload.get('trace_id') or ''}"


def _attempt_events(
    attempts: list[FailedAttempt], first_failure: LLMCall | None, later_ns: int
) -> list[tuple[int, dict[str, Any]]]:
    """Span events for failed attempts. LiteLLM times only the first one (its failure event);
    the others are stamped `later_ns`, when the terminal attempt started or the call ended."""
    events = []
    for number, attempt in enumerate(attempts, start=1):
        attributes: dict[str, Any] = {
            contract.LITELLM_ATTEMPT_NUMBER: number,
            contract.LITELLM_MODEL_GROUP: attempt.model_group,
            contract.LITELLM_ATTEMPT_MODEL: attempt.model,
            contract.ERROR_TYPE: attempt.error_type,
        }
        timestamp = later_ns
        if number == 1 and first_failure is not None:
            timestamp = first_failure.end_ns or later_ns
            status = first_failure.attributes.get(contract.HTTP_RESPONSE_STATUS_CODE)
            if status is not None:
                attributes[contract.HTTP_RESPONSE_STATUS_CODE] = status
        events.append((timestamp, attributes))
    return events


def _span_start(call: LLMCall, first_failure: LLMCall | None) -> int:
    starts = [t for t in (call.start_ns, first_failure.start_ns if first_failure else 0) if t]
    return min(starts) if starts else 0


def _set_requested_model(call: LLMCall, metadata: Mapping[str, Any] | None) -> None:
    requested = requested_model_group(metadata)
    if requested:
        call.attributes[contract.GEN_AI_REQUEST_MODEL] = requested
        call.name = f"{call.attributes[contract.GEN_AI_OPERATION_NAME]} {requested}"


def close_succeeded(
    call: LLMCall, metadata: Mapping[str, Any] | None, first_failure: LLMCall | None
) -> LLMCall:
    """The record of a call whose client got the answer of `call`'s attempt."""
    failed = failed_attempts(metadata)
    if first_failure is not None and not failed:
        # A failure LiteLLM reported without listing it (no router): still an attempt.
        error = first_failure.error_type or "error"
        failed = [FailedAttempt(call.attributes.get(contract.LITELLM_MODEL_GROUP, ""), "", error)]
    answering_group = call.attributes.get(contract.LITELLM_MODEL_GROUP)
    _set_requested_model(call, metadata)
    call.attributes[contract.LITELLM_CALL_ATTEMPTS] = len(failed) + 1
    if answered_by_fallback(metadata, answering_group):
        call.attributes[contract.LITELLM_CALL_FALLBACK] = True
    call.attempt_events = _attempt_events(failed, first_failure, call.start_ns)
    call.start_ns = _span_start(call, first_failure)
    return call


def close_failed(
    call: LLMCall,
    metadata: Mapping[str, Any] | None,
    first_failure: LLMCall | None,
    *,
    error_type: str,
    status_code: int | None,
    end_ns: int,
) -> LLMCall:
    """The record of a call whose client got an error: the last failed attempt is the span's
    own error, the ones before it are its events."""
    failed = failed_attempts(metadata)
    _set_requested_model(call, metadata)
    call.attributes[contract.LITELLM_CALL_ATTEMPTS] = max(1, len(failed))
    call.attributes[contract.ERROR_TYPE] = error_type
    call.error_type = error_type
    if status_code is not None:
        call.attributes[contract.HTTP_RESPONSE_STATUS_CODE] = status_code
    call.attempt_events = _attempt_events(failed[:-1], first_failure, end_ns)
    call.start_ns = _span_start(call, first_failure)
    call.end_ns = max(end_ns, call.start_ns)
    return call
