"""ClickHouse backends (clickhouse-connect: a server over HTTP, or chDB embedded in-process).

Only the trend store lives here today; results go to SQLite / PostgreSQL.
"""

from sentiflow.stores.clickhouse.schema import MIGRATIONS, Migration
from sentiflow.stores.clickhouse.store import ClickHouseTrendStore, client_factory, migrate

__all__ = ["MIGRATIONS", "ClickHouseTrendStore", "Migration", "client_factory", "migrate"]
