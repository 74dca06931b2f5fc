"""A small parser for the Prometheus text exposition format (what the collector serves on /metrics).

prometheus_client's parser would do, but it is not a dependency and we only need name, labels and
value of each sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}

# Metric name -> value, e.g. the summed collector counters of one scrape.
Counters = dict[str, float]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class PromParseError(ValueError):
    pass


def parse_prometheus_text(text: str) -> list[Sample]:
    samples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):  # HELP / TYPE / comments
            continue
        try:
            samples.append(_parse_sample(line))
        except (PromParseError, ValueError) as exc:
            raise PromParseError(f"line {number}: {exc}: {line[:80]!r}") from None
    return samples


def _parse_sample(line: str) -> Sample:
    match = _NAME_RE.match(line)
    if not match:
        raise PromParseError("no metric name")
    name, pos = match.group(0), match.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos + 1)
    fields = line[pos:].split()
    if not fields:
        raise PromParseError("no value")
    # Go formats specials as +Inf / -Inf / NaN, which float() accepts.
    return Sample(name, labels, float(fields[0]))


def _parse_labels(line: str, pos: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in " ,":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME_RE.match(line, pos)
        if not match:
            raise PromParseError("malformed label set")
        pos = match.end()
        value: list[str] = []
        while pos < len(line) and line[pos] != '"':
            if line[pos] == "\\" and pos + 1 < len(line):
                value.append(_ESCAPES.get(line[pos + 1], "\\" + line[pos + 1]))
                pos += 2
            else:
                value.append(line[pos])
                pos += 1
        if pos >= len(line):
            raise PromParseError("unterminated label value")
        labels[match.group(1)] = "".join(value)
        pos += 1


def metric_sum(samples: list[Sample], name: str) -> float | None:
    """Sum a metric over all its label sets; None when it is absent.

    Accepts both spellings: the collector's own Prometheus exporter writes counters without the
    `_total` suffix (0.161), while older releases and some scrape pipelines append it.
    """
    wanted = (
        {name, name + "_total"} if not name.endswith("_total") else {name, name[: -len("_total")]}
    )
    values = [s.value for s in samples if s.name in wanted and not math.isnan(s.value)]
    return sum(values) if values else None


def metric_by_label(samples: list[Sample], name: str, label: str) -> dict[str, float]:
    """Per-label-value sums, e.g. sent spans per exporter, for detail lines."""
    wanted = {name, name + "_total"}
    out: dict[str, float] = {}
    for s in samples:
        if s.name in wanted:
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
    return out
