"""The LLM tier's async layer: :class:`LLMTier` wraps the ``openai`` client with the shared
rate limits, budget, breaker and retries (issue 7, docs/llm.md). Pure parts: ``models/llm``."""

from sentiflow.llm.tier import LLMAnswer, LLMTier, TierStats

__all__ = ["LLMAnswer", "LLMTier", "TierStats"]
