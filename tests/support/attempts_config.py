"""A LiteLLM config for the attempt rule's tests: the repository's config.yaml plus priced
model groups at a fake upstream, `primary` falling back to `backup` and a small-context group
falling back to a larger one, with a fixed retry budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scripts.native_stack.paths import LITELLM_CONFIG

PRICES = {  # group -> (upstream model, USD per input token, per output token)
    "primary": ("primary-up", 1e-6, 2e-6),
    "backup": ("backup-up", 3e-6, 4e-6),
    "small-context": ("small-up", 1e-6, 2e-6),
    "large-context": ("large-up", 5e-6, 6e-6),
}
RETRIES = 2  # num_retries: a call is tried 1 + RETRIES times per model group


def write_attempts_config(path: Path, upstream_base_url: str) -> Path:
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    for group, (model, input_price, output_price) in PRICES.items():
        info: dict[str, Any] = {
            "input_cost_per_token": input_price,
            "output_cost_per_token": output_price,
        }
        config["model_list"].append(
            {
                "model_name": group,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream_base_url,
                    "api_key": "sk-fake-upstream-key",
                },
                "model_info": info,
            }
        )
    config["router_settings"] = {
        "num_retries": RETRIES,
        "retry_after": 0,
        "fallbacks": [{"primary": ["backup"]}],
        "context_window_fallbacks": [{"small-context": ["large-context"]}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def usage_cost(group: str, usage: dict[str, int]) -> float:
    _, input_price, output_price = PRICES[group]
    return usage["prompt_tokens"] * input_price + usage["completion_tokens"] * output_price
