"""sd_notify datagrams and structured logs."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiflow.ops.logs import (
    MAX_LOGGED_IDS,
    JsonFormatter,
    configure_logging,
    post_fields,
    request_id_from,
    request_scope,
)
from sentiflow.ops.sdnotify import SystemdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(1)
    yield sock
    sock.close()


def test_messages_reach_the_socket(listener: socket.socket) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": listener.getsockname()})
    assert notifier.enabled
    assert notifier.ready("serving")
    assert listener.recv(100) == b"READY=1\nSTATUS=serving"
    assert notifier.watchdog()
    assert listener.recv(100) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert listener.recv(100) == b"STOPPING=1\nSTATUS=draining"
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"sentiflow-test-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1)
    try:
        assert SystemdNotifier(f"@{name}").watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_dead_socket_is_reported_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.WARNING):
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


@pytest.mark.parametrize(("env", "interval"), [
    ({"WATCHDOG_USEC": "10000000"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "42"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "43"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "junk"}, None),
])
def test_watchdog_interval_is_half_of_watchdog_sec(env: dict[str, str],
                                                   interval: float | None) -> None:
    assert SystemdNotifier.from_env(env, pid=42).watchdog_interval == interval


def test_json_log_lines_carry_the_request_id() -> None:
    buffer = io.StringIO()
    handler = configure_logging("INFO", "json", stream=buffer)
    try:
        log = logging.getLogger("sentiflow.test")
        with request_scope("req-123"):
            log.info("classified %d posts", 3, extra={"posts": 3})
        log.warning("outside")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second, third = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert first["msg"] == "classified 3 posts"
    assert first["request_id"] == "req-123"
    assert first["posts"] == 3
    assert first["level"] == "INFO"
    assert first["logger"] == "sentiflow.test"
    assert first["ts"].endswith("+00:00")
    assert second["request_id"] == "-"
    assert "ValueError: boom" in third["exc"]


def test_text_format_names_the_request() -> None:
    buffer = io.StringIO()
    handler = configure_logging("INFO", "text", stream=buffer)
    try:
        with request_scope("abc"):
            logging.getLogger("x").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "[abc]: hello" in buffer.getvalue()


def test_json_formatter_survives_unserialisable_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.thing = object()
    assert json.loads(JsonFormatter().format(record))["thing"].startswith("<object")


@pytest.mark.parametrize(("header", "kept"), [
    ("abc-123_x.y:z", True), ("", False), (None, False), ("a" * 129, False),
    ("bad id", False), ("new\nline", False), ("<script>", False),
])
def test_request_id_header_is_validated(header: str | None, kept: bool) -> None:
    value = request_id_from(header)
    assert (value == header) is kept
    assert 1 <= len(value) <= 128


def test_post_fields_name_one_post_or_several() -> None:
    buffer = io.StringIO()
    handler = configure_logging("INFO", "json", stream=buffer)
    ids = [f"p{i}" for i in range(MAX_LOGGED_IDS + 5)]
    try:
        log = logging.getLogger("sentiflow.test")
        with request_scope("http-1"):  # an explicit post id wins over the request's
            log.warning("one", extra=post_fields(["p0"], batch_id="b1", attempt=2))
            log.warning("many", extra=post_fields(ids))
        log.warning("job", extra=post_fields((), batch_id="b2"))
    finally:
        logging.getLogger().removeHandler(handler)
    one, many, job = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert (one["request_id"], one["batch_id"], one["attempt"]) == ("p0", "b1", 2)
    assert "request_ids" not in one
    assert many["request_id"] == "http-1"
    assert many["request_ids"] == ids[:MAX_LOGGED_IDS]
    assert many["posts"] == len(ids)
    assert (job["request_id"], job["batch_id"]) == ("-", "b2")
    assert "posts" not in job
