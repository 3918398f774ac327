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

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from sentiflow.stores.records import (
    AspectLabel,
    AuditItem,
    AuditRun,
    BatchJob,
    BatchState,
    BatchView,
    ClassificationRequest,
    DriftSnapshot,
    LLMUsage,
    ModelVersionRecord,
    ResultRecord,
    ReviewItem,
    ReviewStatus,
    TrainingLabel,
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

    # -- drift watching, model versions, nightly audit (issue 9) -------------------------------

    async def write_drift_snapshot(self, snapshot: DriftSnapshot) -> None:
        """Upsert ``snapshot`` on its ``snapshot_id`` (an open day is rewritten as it grows)."""
        ...

    async def drift_snapshots(self, *, since: date | None = None,
                              until: date | None = None) -> list[DriftSnapshot]:
        """Snapshots with ``since <= day <= until`` (either bound optional), oldest day first."""
        ...

    async def record_model_version(self, record: ModelVersionRecord) -> None:
        """Upsert a model version on ``version_id`` (status and promotion changes)."""
        ...

    async def model_versions(self) -> list[ModelVersionRecord]:
        """Every recorded model version, oldest ``created_at`` first."""
        ...

    def iter_results(self, start: datetime, end: datetime, *, page_size: int = 500
                     ) -> AsyncIterator[list[ResultRecord]]:
        """Results created in ``[start, end)``, in pages, ordered by (created_at, request_id);
        keyset-paginated so a long day is never held in memory at once."""
        ...

    async def get_audit_run(self, run_id: str) -> AuditRun | None:
        ...

    async def save_audit_run(self, run: AuditRun) -> None:
        """Upsert an audit run on ``run_id``."""
        ...

    async def add_audit_items(self, items: Sequence[AuditItem]) -> int:
        """Insert audited posts, ignoring any ``(run_id, request_id)`` already stored (a resumed
        or repeated audit); returns how many were new."""
        ...

    async def audit_items(self, run_id: str) -> list[AuditItem]:
        """A run's audited posts (request_id order)."""
        ...

    # -- LLM tier, review queue, training labels (issue 7) -------------------------------------

    async def write_late_results(self, batch: Sequence[ResultRecord]) -> int:
        """Upsert like ``write_results``, except over results a person already labelled
        (tier ``review``), which are kept. For answers that arrive after the result was first
        written (the LLM past a realtime deadline). Returns how many were written."""
        ...

    async def write_late_aspects(self, batch: Sequence[ResultRecord]) -> int:
        """Like ``write_late_results``, and each written result's stored aspect rows are
        replaced by the record's (same transaction): for per-aspect answers that arrive after
        the result was first written (an aspect escalation to the LLM past its deadline; the
        overall label / ``mixed`` verdict may change with them). A result a person labelled
        (tier ``review``) is kept whole, its aspect rows included. Returns how many results
        were written."""
        ...

    async def review_items(self, status: ReviewStatus, *, limit: int = 50) -> list[ReviewItem]:
        """``open``: results flagged ``needs_review``, oldest first; ``resolved``: results a
        person labelled, most recently labelled first."""
        ...

    async def resolve_review(self, request_id: str, label: AspectLabel,
                             reviewer: str) -> ReviewItem:
        """A person's ``label`` for a stored result: the result becomes tier ``review``
        (both tiers' opinions kept) and the label is stored as a training label (source
        ``review``), in one transaction. The same label again is a no-op (idempotent); a
        different label raises :class:`~sentiflow.stores.errors.ReviewConflictError`; an
        unknown id :class:`~sentiflow.stores.errors.ReviewNotFoundError`."""
        ...

    async def add_training_labels(self, labels: Sequence[TrainingLabel]) -> None:
        """Upsert retraining labels on ``(request_id, source)`` (audit labels, reviews)."""
        ...

    async def training_labels(self, since: datetime | None = None) -> list[TrainingLabel]:
        """Retraining labels created at or after ``since`` (all when None), oldest first."""
        ...

    async def add_llm_usage(self, usage: LLMUsage) -> None:
        """Add ``usage`` to the stored totals of its day (the LLM budget's persistence)."""
        ...

    async def llm_usage(self, day: date) -> LLMUsage:
        """The LLM spend recorded for ``day`` (zeros when none)."""
        ...

    async def close(self) -> None:
        """Flush and release the backend; later calls raise ``StorageClosedError``."""
        ...
