"""Open the result store that ``storage.results_url`` names.

The URL scheme picks the backend so that deployment is a configuration change:
``sqlite:////abs/path.db`` (embedded default) or ``postgresql://user@host:5432/db``
(``postgres://`` too).
"""

from __future__ import annotations

from typing import Literal

from sentiflow.stores.errors import UnsupportedStoreURLError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.pg_url import SCHEMES as POSTGRES_SCHEMES
from sentiflow.stores.sqlite import SQLiteResultStore, sqlite_path_from_url


async def open_result_store(
    url: str, *, sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL",
    sqlite_inline_budget_s: float = 0.0,
    pg_pool_size: int = 10, pg_connect_timeout_s: float = 10.0,
    pg_command_timeout_s: float = 30.0,
) -> ResultStore:
    """Open the store for ``url`` (already resolved to an absolute path by the settings).

    The ``sqlite_*`` options apply to SQLite URLs, the ``pg_*`` ones to PostgreSQL URLs
    (``storage.*`` settings of the same names).
    """
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        try:
            path = sqlite_path_from_url(url)
        except ValueError as exc:
            raise UnsupportedStoreURLError(str(exc)) from None
        return await SQLiteResultStore.open(path, synchronous=sqlite_synchronous,
                                            inline_budget_s=sqlite_inline_budget_s)
    if scheme in POSTGRES_SCHEMES:
        # Imported here: asyncpg is only loaded by nodes that use PostgreSQL.
        from sentiflow.stores.postgres import PostgresResultStore

        return await PostgresResultStore.open(
            url, pool_size=pg_pool_size, connect_timeout_s=pg_connect_timeout_s,
            command_timeout_s=pg_command_timeout_s)
    raise UnsupportedStoreURLError(f"no result store for URL scheme {scheme!r}")
