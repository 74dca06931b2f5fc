"""The `make verify` doctor: checks the stack hop by hop (settings -> containers -> gateway -> auth
-> llm-call -> collector -> clickhouse -> langfuse). Run `python -m scripts.verify --help`.

`make up` runs `python -m scripts.verify --preflight`; other scripts may call
`scripts.verify.hops.settings.preflight()` / `evaluate()` directly.
"""
