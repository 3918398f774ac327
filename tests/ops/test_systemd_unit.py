"""deploy/systemd/sentiflow@.service: valid for systemd, and saying what ops promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentiflow.config.settings import OpsSettings

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "sentiflow@.service"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="needs systemd-analyze (systemd)")


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on an instance of the template, with ExecStart pointing at
    this environment's ``sentiflow`` (verify checks that the binary exists)."""
    here = Path(sys.executable).parent / "sentiflow"
    unit = tmp_path / "sentiflow@gpu0.service"
    unit.write_text(text.replace("/opt/sentiflow/.venv/bin/sentiflow", str(here)))
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)


@needs_systemd
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_systemd
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSec=thirty\nRestartt=always")
    result = verify(tmp_path, broken)
    assert "Failed to parse sec value" in result.stderr
    assert "Unknown key" in result.stderr


def test_unit_promises() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert "%i" in d["ExecStart"][0]
    watchdog = int(d["WatchdogSec"][0])
    assert watchdog >= 10
    # The drain must finish before systemd's SIGKILL.
    assert int(d["TimeoutStopSec"][0]) > OpsSettings().drain_timeout_s
    for hardening in ("DynamicUser", "NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert d[hardening] == ["yes"], hardening
    assert d["ProtectSystem"] == ["strict"]
    assert "AF_UNIX" in d["RestrictAddressFamilies"][0]  # sd_notify needs it
