"""Versioned PostgreSQL schema migrations, applied at store open under an advisory lock.

Migrations are the files ``sentiflow/stores/migrations/postgres/NNNN_name.sql`` (package data).
Each one is applied once, in version order, in its own transaction together with its row in
``schema_migrations`` (version, name, sha256 of the file, applied_at): a failing migration leaves
no trace and the next open retries it.

Concurrency: two nodes opening the same database at once must not both create the tables, so the
whole run holds a session-level advisory lock (``pg_advisory_lock``); the second node waits, then
finds everything applied. Migrations written by different helpers may land in any order, so any
file whose version is not yet recorded is applied, even below the highest applied version.

A migration that was applied and then edited is refused (checksum mismatch): the database would
otherwise silently differ from what the repository says. Add a new file instead.

Hand-written instead of a migration library (alembic, yoyo): those are synchronous or need
SQLAlchemy; this is ~100 lines on the asyncpg connection the store already has.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

import asyncpg

from sentiflow.stores.errors import StorageError

MIGRATIONS_PACKAGE: Final = "sentiflow.stores.migrations.postgres"
_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Advisory-lock key shared by every sentiflow node (a stable 63-bit value derived from a name).
LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"sentiflow.schema_migrations").digest()[:8], "big", signed=True)

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(StorageError):
    """The migration files are inconsistent with each other or with the database."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``package``, sorted by version (other files are ignored)."""
    found: dict[int, Migration] = {}
    for entry in files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version:04d}: "
                                 f"{found[version].name!r} and {match.group(2)!r}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def apply_migrations(conn: asyncpg.Connection,
                           migrations: list[Migration] | None = None) -> list[int]:
    """Bring the database up to date; returns the versions applied by this call.

    Raises :class:`MigrationError` for an edited migration and lets asyncpg errors through
    (the store maps them).
    """
    wanted = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {int(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}
        for migration in wanted:
            if migration.version in applied:
                name, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{name} was changed after it was "
                        "applied to this database; add a new migration instead of editing one")
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum)
            applied_now.append(migration.version)
    finally:
        # A lost connection releases the lock by itself; don't mask the original error.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
