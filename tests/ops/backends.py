"""Model factories for subprocess nodes in the ops tests
(``classifier.model = "python:tests.ops.backends:<factory>"``)."""

from __future__ import annotations

from tests.node.backends import LexiconBackend

#: Texts containing this make the model raise (a poison post: the model fails on it alone).
POISON = "POISON"


def poison_lexicon() -> LexiconBackend:
    """The lexicon test model, raising on any batch that contains :data:`POISON`."""
    return LexiconBackend(crash_marker=POISON)
