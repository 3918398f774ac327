"""Open the result store that ``storage.results_url`` names.

The URL scheme picks the backend so that deployment is a configuration change:
``sqlite:////abs/path.db`` (embedded default) today, ``postgresql://…`` with issue 6.
"""

from __future__ import annotations

from typing import Literal

from sentiflow.stores.errors import UnsupportedStoreURLError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.sqlite import SQLiteResultStore, sqlite_path_from_url


async def open_result_store(
    url: str, *, sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
) -> ResultStore:
    """Open the store for ``url`` (already resolved to an absolute path by the settings)."""
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        try:
            path = sqlite_path_from_url(url)
        except ValueError as exc:
            raise UnsupportedStoreURLError(str(exc)) from None
        return await SQLiteResultStore.open(path, synchronous=sqlite_synchronous)
    if scheme in ("postgresql", "postgres"):
        raise UnsupportedStoreURLError(
            "the PostgreSQL result store is not built yet (issue 6); use a sqlite:// URL")
    raise UnsupportedStoreURLError(f"no result store for URL scheme {scheme!r}")
