"""What a chat completion costs, from its token usage and a per-model price table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """A response's ``usage``: what the server billed for one completion."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ModelPricing:
    """USD per million prompt (input) and completion (output) tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return cost_usd(self, prompt_tokens, completion_tokens)


def cost_usd(price: ModelPricing, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one completion; token counts come from the response's ``usage``."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts must be >= 0")
    return (prompt_tokens * price.input_per_million
            + completion_tokens * price.output_per_million) / 1_000_000
