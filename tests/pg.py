"""PostgreSQL for tests: throw-away databases on the shared server, and private clusters.

Two ways to get a database, both cleaned up afterwards:

* :func:`temporary_database` / fixture :func:`postgres_dsn`: a uniquely named database on the
  machine's server (``SENTIFLOW_TEST_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432``,
  trust auth), dropped at teardown. Cheap (~60 ms); use it for everything that does not stop the
  server.
* :class:`PrivateCluster` / fixture :func:`private_pg`: a PostgreSQL 15 cluster of its own
  (``initdb`` in a temp dir, free port), for fault tests that stop, kill or restart the server
  without disturbing anyone else's. ~2-4 s to create.

Use from another test package by importing the fixtures into its ``conftest.py``::

    from tests.pg import (  # noqa: F401  (pytest fixtures)
        postgres_dsn, postgres_server, private_pg, private_pg_cluster)

    async def test_survives_restart(private_pg: PrivateCluster) -> None:
        dsn = private_pg.create_database()
        ...                      # open a store / node on dsn
        private_pg.restart()     # or .stop() ... .start(), or .kill() (crash: immediate mode)

Everything here is synchronous (subprocesses, or asyncpg in a helper thread with its own event
loop), so the fixtures work under either anyio backend and never touch the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.net import free_port

T = TypeVar("T")

SERVER_URL: Final = os.environ.get("SENTIFLOW_TEST_PG_URL",
                                   "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BIN: Final = Path(os.environ.get("SENTIFLOW_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop in a helper thread (safe to call from
    sync code while another loop, e.g. the test's, exists in this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def server_unavailable(url: str = SERVER_URL) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be used, or ``None`` when it can."""
    try:
        run_async(_admin(url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {url}: {exc}"
    return None


def create_database(url: str = SERVER_URL, prefix: str = "sentiflow_test") -> str:
    """Create a uniquely named, empty database; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    run_async(_admin(url, f'CREATE DATABASE "{name}"'))
    return with_database(url, name)


def drop_database(db_url: str) -> None:
    """Drop the database of ``db_url``, disconnecting whoever is still connected."""
    name = urlsplit(db_url).path.lstrip("/")
    run_async(_admin(with_database(db_url, "postgres"),
                     f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def temporary_database(url: str = SERVER_URL, prefix: str = "sentiflow_test") -> Iterator[str]:
    """A fresh database on the server at ``url`` for the ``with`` block; dropped afterwards."""
    db_url = create_database(url, prefix)
    try:
        yield db_url
    finally:
        drop_database(db_url)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the shared PostgreSQL server (skips the test when it is not reachable)."""
    reason = server_unavailable()
    if reason is not None:
        pytest.skip(reason)
    return SERVER_URL


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """URL of a fresh database on the shared server, dropped after the test."""
    with temporary_database(postgres_server) as url:
        yield url


# -- private clusters ------------------------------------------------------------------------


class PrivateCluster:
    """A PostgreSQL cluster in a temp dir that only its owner uses, on a free local port.

    ``initdb`` refuses to run as root, so when the tests run as root the cluster's files belong
    to the ``postgres`` system user and every server command runs through ``runuser``.
    Durability settings are relaxed (``fsync=off``): a stopped or killed server keeps what it
    committed as long as the machine stays up, which is all a fault test needs.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self._as_postgres = os.geteuid() == 0

    @classmethod
    def create(cls) -> PrivateCluster:
        """initdb a new cluster and start it."""
        root = Path(tempfile.mkdtemp(prefix="sentiflow-pg-"))
        cluster = cls(root, free_port())
        try:
            if cluster._as_postgres:
                shutil.chown(root, "postgres", "postgres")
            cluster._pg("initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust",
                        "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def url(self) -> str:
        """URL of the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        """Start the server (again) on the same port; returns once it accepts connections."""
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=40 "
                   "-c shared_buffers=16MB")
        self._pg("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60",
                 "-l", str(self.root / "server.log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnects clients, clean shutdown) or ``immediate``."""
        self._pg("pg_ctl", "stop", "-D", str(self.data), "-w", "-t", "60", "-m", mode)

    def kill(self) -> None:
        """Crash the server (immediate shutdown: no checkpoint, recovery at next start)."""
        self.stop("immediate")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        command = [str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data)]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30,
                              check=False).returncode == 0

    def create_database(self, prefix: str = "sentiflow_test") -> str:
        """A new empty database in this cluster; returns its URL."""
        return create_database(self.url, prefix)

    def destroy(self) -> None:
        """Stop the server (if running) and delete every file of the cluster."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.data.exists() and self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def private_cluster_unavailable() -> str | None:
    """Why a private cluster cannot be created here, or ``None``."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries in {PG_BIN} (set SENTIFLOW_TEST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses to run as root"
    return None


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started :class:`PrivateCluster` for the ``with`` block; destroyed afterwards."""
    cluster = PrivateCluster.create()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def private_pg_cluster() -> Iterator[PrivateCluster]:
    """One private cluster for the tests of a module (created once: initdb takes seconds)."""
    reason = private_cluster_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with private_cluster() as cluster:
        yield cluster


@pytest.fixture
def private_pg(private_pg_cluster: PrivateCluster) -> PrivateCluster:
    """The module's private cluster, running at the start of the test whatever the previous
    test did to it. Make a database per test with ``private_pg.create_database()``."""
    if not private_pg_cluster.running():
        private_pg_cluster.start()
    return private_pg_cluster
