"""Error types raised by models/ for input it cannot classify.

They are types (not messages) so that the API can map them to a 4xx body and the streaming
path to a dead-letter record without parsing strings.
"""

from __future__ import annotations


class InputError(ValueError):
    """The text cannot be classified as given. ``code`` is a stable machine-readable reason."""

    code: str = "invalid_input"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EmptyTextError(InputError):
    code = "empty_text"


class TextTooLongError(InputError):
    code = "text_too_long"


class InvalidEncodingError(InputError):
    """Lone surrogates, NUL bytes or other content that is not text (binary junk)."""

    code = "invalid_encoding"


class ModelNotFoundError(LookupError):
    """No model artifact at the configured location (train one with ``sentiflow train``)."""


class VersionExistsError(FileExistsError):
    """A model version with this id already exists; pass ``force`` or choose a new id."""


class ArtifactError(ValueError):
    """A model artifact on disk is incomplete or inconsistent (wrong shapes, bad metadata)."""
