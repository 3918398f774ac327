"""PostgreSQL side of the drift loop (issue 9): drift snapshots, model versions, audit runs and
items, and the day-long result scans they read. Schema: migrations/postgres/0003_drift.sql.

A mixin of :class:`~sentiflow.stores.postgres.PostgresResultStore` (it runs its bodies through
the store's ``_run`` transaction helper). Same semantics as :mod:`sentiflow.stores.sqlite_drift`:
snapshots, versions and runs are stored whole as msgspec JSON (``jsonb``) beside the columns
that queries filter and sort on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from sentiflow.stores.pg_bulk import SELECT_RESULT, Conn, record_from_row, utc
from sentiflow.stores.records import (
    AuditItem,
    AuditRun,
    DriftSnapshot,
    ModelVersionRecord,
    ResultRecord,
)

T = TypeVar("T")

_ENC: Final = msgspec.json.Encoder()


def _json(value: msgspec.Struct) -> str:
    return _ENC.encode(value).decode()


class PgDriftMixin:
    """Drift, model-version, audit and result-scan methods of ``ResultStore`` on PostgreSQL."""

    if TYPE_CHECKING:
        async def _run(self, what: str, body: Callable[[Conn], Awaitable[T]], *,
                       readonly: bool = False, isolation: Any = "read_committed") -> T: ...

    async def write_drift_snapshot(self, snapshot: DriftSnapshot) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                'INSERT INTO drift_snapshots (snapshot_id, day, model_version, "timestamp", '
                "final, drift_score, low_confidence_pct, retraining_triggered, body) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) "
                "ON CONFLICT (snapshot_id) DO UPDATE SET day = EXCLUDED.day, "
                'model_version = EXCLUDED.model_version, "timestamp" = EXCLUDED."timestamp", '
                "final = EXCLUDED.final, drift_score = EXCLUDED.drift_score, "
                "low_confidence_pct = EXCLUDED.low_confidence_pct, "
                "retraining_triggered = EXCLUDED.retraining_triggered, body = EXCLUDED.body",
                snapshot.snapshot_id, snapshot.day, snapshot.model_version,
                utc(snapshot.timestamp), snapshot.final, snapshot.drift_score,
                snapshot.low_confidence_pct, snapshot.retraining_triggered, _json(snapshot))

        await self._run(f"writing drift snapshot {snapshot.snapshot_id!r}", body)

    async def drift_snapshots(self, *, since: date | None = None,
                              until: date | None = None) -> list[DriftSnapshot]:
        decode = msgspec.json.Decoder(DriftSnapshot).decode

        async def body(conn: Conn) -> list[DriftSnapshot]:
            rows = await conn.fetch(
                "SELECT body::text FROM drift_snapshots "
                "WHERE ($1::date IS NULL OR day >= $1) AND ($2::date IS NULL OR day <= $2) "
                'ORDER BY day, "timestamp"', since, until)
            return [decode(r[0]) for r in rows]

        return await self._run("reading drift snapshots", body, readonly=True)

    async def record_model_version(self, record: ModelVersionRecord) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO model_versions (version_id, status, f1_score, created_at, "
                "promoted_at, body) VALUES ($1, $2, $3, $4, $5, $6::jsonb) "
                "ON CONFLICT (version_id) DO UPDATE SET status = EXCLUDED.status, "
                "f1_score = EXCLUDED.f1_score, created_at = EXCLUDED.created_at, "
                "promoted_at = EXCLUDED.promoted_at, body = EXCLUDED.body",
                record.version_id, record.status, record.f1_score, utc(record.created_at),
                utc(record.promoted_at) if record.promoted_at else None, _json(record))

        await self._run(f"recording model version {record.version_id!r}", body)

    async def model_versions(self) -> list[ModelVersionRecord]:
        decode = msgspec.json.Decoder(ModelVersionRecord).decode

        async def body(conn: Conn) -> list[ModelVersionRecord]:
            rows = await conn.fetch("SELECT body::text FROM model_versions "
                                    "ORDER BY created_at, version_id")
            return [decode(r[0]) for r in rows]

        return await self._run("reading model versions", body, readonly=True)

    async def iter_results(self, start: datetime, end: datetime, *, page_size: int = 500
                           ) -> AsyncIterator[list[ResultRecord]]:
        """Results created in ``[start, end)`` in pages (keyset on created_at, request_id).
        Aspects are not loaded: the readers of whole days (audit, drift) do not use them."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        key: tuple[datetime, str] = (utc(start), "")  # request ids are never empty
        stop = utc(end)
        query = (f"SELECT {SELECT_RESULT} FROM results r "
                 "WHERE (r.created_at, r.request_id) > ($1, $2) AND r.created_at < $3 "
                 "ORDER BY r.created_at, r.request_id LIMIT $4")
        while True:
            async def body(conn: Conn, key: tuple[datetime, str] = key) -> list[Any]:
                return list(await conn.fetch(query, *key, stop, page_size))

            rows = await self._run("reading results by day", body, readonly=True)
            if not rows:
                return
            records = [record_from_row(r, ()) for r in rows]
            yield records
            last = records[-1].result
            key = (last.created_at, last.request_id)

    async def get_audit_run(self, run_id: str) -> AuditRun | None:
        decode = msgspec.json.Decoder(AuditRun).decode

        async def body(conn: Conn) -> AuditRun | None:
            raw = await conn.fetchval("SELECT body::text FROM audit_runs WHERE run_id = $1",
                                      run_id)
            return decode(raw) if raw is not None else None

        return await self._run(f"reading audit run {run_id!r}", body, readonly=True)

    async def save_audit_run(self, run: AuditRun) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO audit_runs (run_id, day, status, body) VALUES ($1, $2, $3, $4::jsonb) "
                "ON CONFLICT (run_id) DO UPDATE SET day = EXCLUDED.day, "
                "status = EXCLUDED.status, body = EXCLUDED.body",
                run.run_id, run.day, run.status, _json(run))

        await self._run(f"saving audit run {run.run_id!r}", body)

    async def add_audit_items(self, items: Sequence[AuditItem]) -> int:
        if not items:
            return 0
        rows = [(i.run_id, i.request_id, i.language, i.fast_label, i.llm_label, i.agreed,
                 utc(i.at)) for i in items]
        cols = [list(c) for c in zip(*rows, strict=True)]

        async def body(conn: Conn) -> int:
            status = await conn.execute(
                "INSERT INTO audit_items (run_id, request_id, language, fast_label, llm_label, "
                "agreed, at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
                "$4::text[], $5::text[], $6::boolean[], $7::timestamptz[]) "
                "ON CONFLICT (run_id, request_id) DO NOTHING", *cols)
            return int(status.rsplit(" ", 1)[-1])

        return await self._run(f"adding {len(items)} audit items", body)

    async def audit_items(self, run_id: str) -> list[AuditItem]:
        async def body(conn: Conn) -> list[AuditItem]:
            rows = await conn.fetch(
                "SELECT run_id, request_id, language, fast_label, llm_label, agreed, at "
                "FROM audit_items WHERE run_id = $1 ORDER BY request_id", run_id)
            return [AuditItem(run_id=r[0], request_id=r[1], language=r[2], fast_label=r[3],
                              llm_label=r[4], agreed=r[5], at=r[6]) for r in rows]

        return await self._run(f"reading audit items of {run_id!r}", body, readonly=True)
