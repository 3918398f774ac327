"""The one error type configuration loading raises.

A node that starts with a wrong setting should stop before doing anything, with a message that
names the offending key (``router.threshold: must be in [0, 1]``) rather than a pydantic trace.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """Invalid or unreadable configuration. ``problems`` holds one ``"key: reason"`` per line."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        head = f"invalid configuration ({source})" if source else "invalid configuration"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))
