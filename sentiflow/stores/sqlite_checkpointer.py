"""SQLite checkpoints in a thread of the store's own, not inside a commit on the event loop.

SQLite runs an automatic checkpoint inside the ``COMMIT`` that takes the WAL past 1,000 pages: it
copies the WAL into the database and fsyncs both, 5-50 ms that stall the event loop whenever that
commit is one of the result writes run there (sentiflow/stores/sqlite.py). With it on, the node
measured p95 35-92 ms at 833 requests/s with ``synchronous=FULL`` and 100 writes over budget per
20 s; with this checkpointer 16-22 ms (bench/bench_api.py, same run). The writer connection turns
it off (``wal_autocheckpoint=0``) and a daemon thread checkpoints (``PASSIVE``: never blocks
readers or the writer) on a connection of its own once a second after writes. Checkpoints keep
their durability: SQLite fsyncs the WAL before and the database after each one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("sentiflow.stores.sqlite")


class WalCheckpointer:
    """Checkpoints the WAL from a daemon thread with its own connection, ``interval_s`` after
    writes were announced with :meth:`wrote` (a flag: no lock, no syscall on the write path)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *,
                 interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._conn = connect()
        self._pending = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer",
                                        daemon=True)
        #: Completed checkpoints (tests and introspection).
        self.checkpoints = 0
        self._thread.start()

    def wrote(self) -> None:
        self._pending = True

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress) and close its connection."""
        self._stop.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._pending:
                continue
            self._pending = False
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # retried at the next interval; the WAL just grows
                log.warning("WAL checkpoint failed (retried in %.1f s): %s", self.interval_s,
                            exc)
                self._pending = True
            else:
                self.checkpoints += 1
