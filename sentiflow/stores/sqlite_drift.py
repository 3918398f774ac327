"""SQLite tables of the drift loop: drift snapshots, model versions, audit runs and items.

A mixin of :class:`~sentiflow.stores.sqlite.SQLiteResultStore` (it uses the store's
``_read`` / ``_write`` transaction helpers). Records are stored whole as msgspec JSON in a
``body`` column, with the columns that queries filter or sort on beside it: these records are
small, read rarely and by key, and their nested parts (per-language histograms) would otherwise
need child tables for no query that wants them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar

import msgspec

from sentiflow.stores.records import AuditItem, AuditRun, DriftSnapshot, ModelVersionRecord

T = TypeVar("T")

#: Appended to ``sqlite.MIGRATIONS`` (drift snapshots, model versions, audit runs).
DRIFT_MIGRATION: Final = """
    CREATE TABLE drift_snapshots (
        snapshot_id          TEXT PRIMARY KEY,
        day                  TEXT NOT NULL,
        model_version        TEXT NOT NULL,
        timestamp_us         INTEGER NOT NULL,
        final                INTEGER NOT NULL,
        drift_score          REAL NOT NULL,
        low_confidence_pct   REAL NOT NULL,
        retraining_triggered INTEGER NOT NULL,
        body                 BLOB NOT NULL
    );
    CREATE INDEX drift_snapshots_day ON drift_snapshots (day, timestamp_us);
    CREATE TABLE model_versions (
        version_id     TEXT PRIMARY KEY,
        status         TEXT NOT NULL,
        f1_score       REAL NOT NULL,
        created_at_us  INTEGER NOT NULL,
        promoted_at_us INTEGER,
        body           BLOB NOT NULL
    );
    CREATE TABLE audit_runs (
        run_id TEXT PRIMARY KEY,
        day    TEXT NOT NULL,
        status TEXT NOT NULL,
        body   BLOB NOT NULL
    );
    CREATE TABLE audit_items (
        run_id     TEXT NOT NULL,
        request_id TEXT NOT NULL,
        language   TEXT NOT NULL,
        fast_label TEXT NOT NULL,
        llm_label  TEXT NOT NULL,
        agreed     INTEGER NOT NULL,
        at_us      INTEGER NOT NULL,
        PRIMARY KEY (run_id, request_id)
    ) WITHOUT ROWID
"""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ENC: Final = msgspec.json.Encoder()


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class DriftStoreMixin:
    """Drift, model-version and audit methods of the ``ResultStore`` protocol on SQLite."""

    if TYPE_CHECKING:
        async def _write(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T: ...

    async def write_drift_snapshot(self, snapshot: DriftSnapshot) -> None:
        row = (snapshot.snapshot_id, snapshot.day.isoformat(), snapshot.model_version,
               _us(snapshot.timestamp), int(snapshot.final), snapshot.drift_score,
               snapshot.low_confidence_pct, int(snapshot.retraining_triggered),
               _ENC.encode(snapshot))

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO drift_snapshots (snapshot_id, day, model_version, timestamp_us, "
                "final, drift_score, low_confidence_pct, retraining_triggered, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (snapshot_id) DO UPDATE SET "
                "day = excluded.day, model_version = excluded.model_version, "
                "timestamp_us = excluded.timestamp_us, final = excluded.final, "
                "drift_score = excluded.drift_score, "
                "low_confidence_pct = excluded.low_confidence_pct, "
                "retraining_triggered = excluded.retraining_triggered, body = excluded.body",
                row)

        await self._write(f"writing drift snapshot {snapshot.snapshot_id!r}", body)

    async def drift_snapshots(self, *, since: date | None = None,
                              until: date | None = None) -> list[DriftSnapshot]:
        low = since.isoformat() if since else "0000-00-00"
        high = until.isoformat() if until else "9999-99-99"
        decode = msgspec.json.Decoder(DriftSnapshot).decode

        def body(conn: sqlite3.Connection) -> list[DriftSnapshot]:
            rows = conn.execute("SELECT body FROM drift_snapshots WHERE day >= ? AND day <= ? "
                                "ORDER BY day, timestamp_us", (low, high)).fetchall()
            return [decode(r[0]) for r in rows]

        return await self._read("reading drift snapshots", body)

    async def record_model_version(self, record: ModelVersionRecord) -> None:
        row = (record.version_id, record.status, record.f1_score, _us(record.created_at),
               _us(record.promoted_at) if record.promoted_at else None, _ENC.encode(record))

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO model_versions (version_id, status, f1_score, created_at_us, "
                "promoted_at_us, body) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version_id) DO "
                "UPDATE SET status = excluded.status, f1_score = excluded.f1_score, "
                "created_at_us = excluded.created_at_us, "
                "promoted_at_us = excluded.promoted_at_us, body = excluded.body", row)

        await self._write(f"recording model version {record.version_id!r}", body)

    async def model_versions(self) -> list[ModelVersionRecord]:
        decode = msgspec.json.Decoder(ModelVersionRecord).decode

        def body(conn: sqlite3.Connection) -> list[ModelVersionRecord]:
            rows = conn.execute("SELECT body FROM model_versions "
                                "ORDER BY created_at_us, version_id").fetchall()
            return [decode(r[0]) for r in rows]

        return await self._read("reading model versions", body)

    async def get_audit_run(self, run_id: str) -> AuditRun | None:
        decode = msgspec.json.Decoder(AuditRun).decode

        def body(conn: sqlite3.Connection) -> AuditRun | None:
            row = conn.execute("SELECT body FROM audit_runs WHERE run_id = ?",
                               (run_id,)).fetchone()
            return decode(row[0]) if row else None

        return await self._read(f"reading audit run {run_id!r}", body)

    async def save_audit_run(self, run: AuditRun) -> None:
        row = (run.run_id, run.day.isoformat(), run.status, _ENC.encode(run))

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO audit_runs (run_id, day, status, body) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (run_id) DO UPDATE SET day = excluded.day, "
                         "status = excluded.status, body = excluded.body", row)

        await self._write(f"saving audit run {run.run_id!r}", body)

    async def add_audit_items(self, items: Sequence[AuditItem]) -> int:
        if not items:
            return 0
        rows = [(i.run_id, i.request_id, i.language, i.fast_label, i.llm_label, int(i.agreed),
                 _us(i.at)) for i in items]

        def body(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO audit_items (run_id, request_id, language, fast_label, llm_label, "
                "agreed, at_us) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, request_id) DO NOTHING", rows)
            return conn.total_changes - before

        return await self._write(f"adding {len(items)} audit items", body)

    async def audit_items(self, run_id: str) -> list[AuditItem]:
        def body(conn: sqlite3.Connection) -> list[AuditItem]:
            rows = conn.execute(
                "SELECT run_id, request_id, language, fast_label, llm_label, agreed, at_us "
                "FROM audit_items WHERE run_id = ? ORDER BY request_id", (run_id,)).fetchall()
            return [AuditItem(run_id=r[0], request_id=r[1], language=r[2], fast_label=r[3],
                              llm_label=r[4], agreed=bool(r[5]), at=_from_us(r[6]))
                    for r in rows]

        return await self._read(f"reading audit items of {run_id!r}", body)
