"""A local S3-compatible server for tests: moto's server mode, in a subprocess on a free port.

tansu's only durable storage engine in this build is an object store (``s3://``); pointing it
at this server gives a broker whose topics, records, consumer groups and committed offsets
survive a broker restart (the S3 server keeps running and keeps its objects in memory), which is
what the broker-restart fault test needs. moto is used rather than MinIO because it installs
from PyPI (a dev dependency); it runs in its own process so that its request handling does not
compete with the node under test for the test process's GIL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.net import free_port

REGION = "us-east-1"
ACCESS_KEY = "sentiflow-test"
SECRET_KEY = "sentiflow-test-secret"  # moto accepts any credentials


class S3Server:
    """``moto.server`` on ``127.0.0.1:port``; ``env()`` is what an object_store client
    (tansu) needs to reach it."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for tansu's S3 storage engine (object_store's ``AmazonS3Builder::
        from_env``): path-style requests to this endpoint over plain HTTP."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            # tansu coordinates through conditional PUTs (If-Match / If-None-Match on ETags)
            "AWS_CONDITIONAL_PUT": "etag",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.endpoint}/", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("moto server did not start listening")

    def create_bucket(self, name: str) -> None:
        """S3 CreateBucket (moto does not check signatures, so a plain PUT is the API call)."""
        response = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        response.raise_for_status()

    def object_count(self, bucket: str) -> int:
        """Objects in ``bucket`` (ListObjectsV2, first 1000): proof that the broker really
        writes to this server."""
        response = httpx.get(f"{self.endpoint}/{bucket}", params={"list-type": "2"}, timeout=10)
        response.raise_for_status()
        return response.text.count("<Key>")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def running_s3(log_path: Path | None = None) -> Iterator[S3Server]:
    server = S3Server(log_path=log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def moto_available() -> str | None:
    """Why the moto server cannot be used, or None when it can."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] not installed ({exc}); pip install 'moto[server]>=5.1,<6'"
    return None
