"""The result-store contract: the embedded SQLite store implements it now, PostgreSQL later.

Actors (the result writer, the API's look-ups, the batch tracker, the webhook sender) depend on
this protocol only, so the backend is a configuration choice (``storage.results_url``).

Guarantees every implementation gives:

* ``write_results`` is idempotent on ``request_id`` (an upsert: writing the same record twice
  leaves one row, and the last write wins, aspects included) and atomic per call (the whole
  batch in one transaction; on error nothing of it is visible and a :class:`StorageError` is
  raised). Return means durable: the caller may then commit a Kafka offset.
* Methods are safe to call concurrently from many tasks.
* Errors are :mod:`sentiflow.stores.errors` types, never a driver's exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sentiflow.stores.records import (
    BatchJob,
    BatchState,
    BatchView,
    ClassificationRequest,
    ResultRecord,
    WebhookAttempt,
)


@runtime_checkable
class ResultStore(Protocol):
    async def write_results(self, batch: Sequence[ResultRecord]) -> None:
        """Upsert ``batch`` (results, their requests and aspects) in one transaction."""
        ...

    async def get_result(self, request_id: str) -> ResultRecord | None:
        """The stored record for ``request_id``, or ``None``."""
        ...

    async def create_batch(self, job: BatchJob, requests: Sequence[ClassificationRequest]) -> None:
        """Persist a new batch job and its requests (so it can resume after a restart).

        Raises ``ValueError`` if ``len(requests) != job.count`` and
        :class:`~sentiflow.stores.errors.DuplicateBatchError` if the id exists.
        """
        ...

    async def update_batch_progress(
        self, batch_id: str, *, done: int, status: BatchState | None = None,
        error: str | None = None,
    ) -> None:
        """Set the number of finished items (never decreases) and optionally the status.

        Raises :class:`~sentiflow.stores.errors.BatchNotFoundError` for an unknown id.
        """
        ...

    async def get_batch(self, batch_id: str) -> BatchView | None:
        """The job, its results so far (submission order) and its webhook delivery state."""
        ...

    async def pending_requests(self, batch_id: str) -> list[ClassificationRequest]:
        """The batch's requests that have no stored result yet (submission order)."""
        ...

    async def unfinished_batches(self) -> list[BatchJob]:
        """Jobs still ``queued`` or ``running`` (to resume after a restart), oldest first."""
        ...

    async def record_webhook_attempt(self, attempt: WebhookAttempt) -> None:
        """Append one delivery attempt (the sender's ``on_attempt`` callback)."""
        ...

    async def close(self) -> None:
        """Flush and release the backend; later calls raise ``StorageClosedError``."""
        ...
