"""The `make verify` doctor: checks the stack hop by hop (settings -> containers -> gateway -> auth
-> llm-call -> collector -> clickhouse -> langfuse -> grafana -> agentops). Run
`python -m scripts.verify --help`.

Layers, lowest first (tests/verify/test_layers.py enforces them): scripts/envfile (the .env
file) < results.py (Result, State, Report) < context.py, hop.py and the helpers (httpcheck,
polling, prom, compose) < hops/ (one module per hop, listed in hops/__init__.py) < runner.py,
render.py, __main__.py. A new hop is a module in hops/ exposing HOP, added to hops.ALL.

`make up` runs `python -m scripts.verify --preflight`; other scripts may call
`scripts.verify.hops.settings.preflight()` / `evaluate()` directly.
"""
