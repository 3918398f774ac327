"""Error types of the storage layer.

Writers raise these (never a driver's own exception), so the actors above can decide what to do
(retry, back off, stop the node) by type, whatever backend is configured.
"""

from __future__ import annotations


class StorageError(RuntimeError):
    """A storage operation failed; the transaction was rolled back and nothing was half-written."""


class StorageFullError(StorageError):
    """The store ran out of space (disk full or a configured size cap). Retrying after space is
    freed is safe: writes are idempotent on ``request_id``."""


class InvalidRecordError(StorageError, ValueError):
    """A record this backend cannot store as given (e.g. a NUL character in a text field, which
    PostgreSQL refuses). Nothing of the call was written; retrying the same records fails again,
    so a writer should set the offending record aside (dead letter) instead of retrying."""


class StorageClosedError(StorageError):
    """The store was used after :meth:`close`."""


class UnsupportedStoreURLError(StorageError):
    """The configured ``storage.results_url`` names a backend this build cannot open."""


class BatchNotFoundError(LookupError):
    """No batch job with that id."""


class DuplicateBatchError(ValueError):
    """A batch job with that id already exists."""


class ReviewNotFoundError(LookupError):
    """No stored result with that request id (so nothing to review)."""


class ReviewConflictError(ValueError):
    """The post was already labelled by a person with a different label."""

    def __init__(self, request_id: str, existing: str) -> None:
        super().__init__(f"{request_id!r} was already labelled {existing!r}")
        self.request_id = request_id
        self.existing = existing
