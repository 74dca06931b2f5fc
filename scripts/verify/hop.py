"""What a hop is: a named check of the chain that reads a Context and returns a Result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .context import Context
from .results import Result


@dataclass(frozen=True)
class Hop:
    """One check of the chain gateway -> collector -> ClickHouse.

    needs: hops that must not have failed or been skipped *in this run* for this hop to make sense;
    a need that was not selected at all is ignored, so single hops can still be run alone.
    prepare: optional, called for every selected hop before any hop runs (e.g. the collector takes
    its counter baseline before the LLM call is made).
    """

    name: str
    title: str
    run: Callable[[Context], Result]
    needs: tuple[str, ...] = ()
    prepare: Callable[[Context], None] | None = None
    why: str = ""
