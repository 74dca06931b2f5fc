"""The hops in chain order. Order matters: later hops read what earlier ones recorded."""

from __future__ import annotations

from ..hop import Hop
from . import (
    agentops,
    auth,
    clickhouse,
    collector,
    containers,
    gateway,
    grafana,
    langfuse,
    llm_call,
    settings,
)

ALL: tuple[Hop, ...] = (
    settings.HOP,
    containers.HOP,
    gateway.HOP,
    auth.HOP,
    llm_call.HOP,
    collector.HOP,
    clickhouse.HOP,
    langfuse.HOP,
    grafana.HOP,
    agentops.HOP,
)
BY_NAME: dict[str, Hop] = {hop.name: hop for hop in ALL}
