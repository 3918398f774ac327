"""The trend schema in ClickHouse SQL, versioned; the same statements run on a ClickHouse server
and on chDB (the embedded engine).

Tables (all in one database, ``sentiflow`` by default):

``trend_events``
    One row per classified post (the raw events): when it was received, where it came from, its
    final label and confidence, which model and tier produced it. MergeTree ordered by the
    filter columns then time, partitioned by month.
``trend_hourly`` + ``trend_hourly_mv``
    The rollup: a SummingMergeTree keyed by (hour, source, language, topic, sentiment) holding
    ``events`` and ``confidence_sum``, filled by a materialised view at every insert into
    ``trend_events``. Rows with the same key are summed by background merges, so readers always
    ``sum()`` with ``GROUP BY`` (never rely on a merge having happened). Daily and weekly
    answers are sums over hours. Its sort key serves time ranges; the ``by_filters``
    projection (migration 2) keeps a second copy sorted by (source, language, topic, hour),
    which the engine picks by itself for filtered queries (10-20x fewer rows read).
``trend_seen`` + ``trend_seen_mv``
    The ``request_id`` of every stored event, also filled by a materialised view in the same
    insert, in an EmbeddedRocksDB table (a key-value store: ``WHERE request_id IN (…)`` is one
    point look-up per id, ~15 ms for 2,048 ids over 10M stored, where a MergeTree ordered by
    the id reads a granule per id per part, 5-10x slower). The writer asks it which ids of a
    batch are already counted and skips them, which is what makes a replay not count twice
    (see docs/trends.md for the exact guarantee).
``trend_schema``
    The applied migrations (version, name, when); :func:`pending` says what is left to run.

Migrations are append-only: never edit an applied entry, add a new one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_SENTIMENT_ENUM: Final = "Enum8('negative' = 1, 'neutral' = 2, 'positive' = 3, 'mixed' = 4)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    #: Statements with ``{db}`` standing for the (validated) database name.
    statements: tuple[str, ...]


SCHEMA_TABLE: Final = """
CREATE TABLE IF NOT EXISTS {db}.trend_schema (
    version UInt32,
    name String,
    applied_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree ORDER BY version
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "events, hourly rollup, seen request ids", (
        f"""
        CREATE TABLE IF NOT EXISTS {{db}}.trend_events (
            request_id String,
            ts DateTime64(3, 'UTC'),
            source LowCardinality(String),
            language LowCardinality(String),
            topic LowCardinality(String),
            sentiment {_SENTIMENT_ENUM},
            confidence Float32,
            model_used LowCardinality(String),
            tier LowCardinality(String),
            needs_review Bool,
            inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (source, language, topic, ts)
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {{db}}.trend_hourly (
            hour DateTime('UTC'),
            source LowCardinality(String),
            language LowCardinality(String),
            topic LowCardinality(String),
            sentiment {_SENTIMENT_ENUM},
            events UInt64,
            confidence_sum Float64
        ) ENGINE = SummingMergeTree((events, confidence_sum))
        PARTITION BY toYYYYMM(hour)
        ORDER BY (hour, source, language, topic, sentiment)
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trend_hourly_mv TO {db}.trend_hourly AS
        SELECT toStartOfHour(ts) AS hour, source, language, topic, sentiment,
               count() AS events, sum(toFloat64(confidence)) AS confidence_sum
        FROM {db}.trend_events
        GROUP BY hour, source, language, topic, sentiment
        """,
        """
        CREATE TABLE IF NOT EXISTS {db}.trend_seen (
            request_id String
        ) ENGINE = EmbeddedRocksDB
        PRIMARY KEY request_id
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trend_seen_mv TO {db}.trend_seen AS
        SELECT request_id FROM {db}.trend_events
        """,
    )),
    Migration(2, "rollup projection ordered by the filter columns", (
        """
        ALTER TABLE {db}.trend_hourly
        MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'
        """,
        """
        ALTER TABLE {db}.trend_hourly
        ADD PROJECTION IF NOT EXISTS by_filters
        (SELECT * ORDER BY source, language, topic, hour, sentiment)
        """,
        """
        ALTER TABLE {db}.trend_hourly MATERIALIZE PROJECTION by_filters
        SETTINGS mutations_sync = 1
        """,
    )),
)


def check_database_name(name: str) -> str:
    """``name`` if it is a plain identifier (it is interpolated into DDL), else ValueError."""
    if not _IDENT.match(name):
        raise ValueError(f"database name {name!r} must match {_IDENT.pattern}")
    return name


def pending(applied: set[int], migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """The ``migrations`` not yet applied, in version order."""
    return sorted((m for m in migrations if m.version not in applied), key=lambda m: m.version)
