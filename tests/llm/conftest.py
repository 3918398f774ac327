"""Fixtures of the LLM tier's tests. The tier drives the real ``openai`` client (asyncio), so
its tests run under asyncio only; the store and pure tests use the shared fixtures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sentiflow.config.settings import LLMSettings
from sentiflow.models.langid import LanguageDetector


@pytest.fixture
def llm_settings() -> Callable[..., LLMSettings]:
    """``LLMSettings`` pointing at a fake server, fast backoff; overrides as kwargs."""

    def make(base_url: str, **overrides: Any) -> LLMSettings:
        values: dict[str, Any] = {"base_url": base_url, "backoff_initial_s": 0.01,
                                  "backoff_max_s": 0.05, "timeout_s": 2.0,
                                  "requests_per_minute": 6000, "breaker_reset_s": 0.3}
        values.update(overrides)
        return LLMSettings(**values)

    return make


@pytest.fixture(scope="session")
def detector() -> LanguageDetector:
    return LanguageDetector()
