"""The `.env` file: its strict parser, the key spec read from `.env.example`, `make init` and the
Langfuse overlay's derived values.

Standard library only: `make init` runs this package with the system Python, before any
virtualenv exists (tests/verify/test_layers.py enforces it).
"""
