"""The hook's span contract (litellm/hook/llm_otel/contract.py), for scripts run outside pytest.

The hook is a top-level package baked into the gateway image, not installed in this venv, so
this puts its folder on sys.path once; every script then reads the names from that one module
(`from scripts.span_contract import contract`). Under pytest the same folder is on sys.path
through pyproject's `pythonpath`, so both routes load the same `llm_otel.contract`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository's litellm/hook, found from this file: a leaf every script imports needs no
# other package of the repository (the test harness's paths included).
HOOK_DIR = Path(__file__).resolve().parents[1] / "litellm" / "hook"

# Appended, not prepended: nothing in the hook folder may shadow a module of this venv.
if str(HOOK_DIR) not in sys.path:
    sys.path.append(str(HOOK_DIR))

from llm_otel import contract  # noqa: E402 - after the path above: the hook is not installed

__all__ = ["contract"]
