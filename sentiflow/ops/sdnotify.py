"""systemd's notify protocol: READY=1, WATCHDOG=1, STOPPING=1, STATUS=... datagrams.

The protocol is one ``AF_UNIX`` datagram of ``KEY=VALUE`` lines to the socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). It is written here
rather than taken from the ``sdnotify`` package because that package is unmaintained since 2017,
untyped, and swallows every error, while the whole protocol is one ``sendto``.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so the node runs the same under
``make run``, in tests and as a service.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("sentiflow.ops.sdnotify")


class SystemdNotifier:
    """Sends notify messages to systemd when it is listening; silent otherwise."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        #: ``WatchdogSec`` of the unit in microseconds, when the watchdog is on for this process.
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, pid: int | None = None
                 ) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` like sd_notify(3) and
        sd_watchdog_enabled(3): the watchdog applies only to the PID systemd named, if any."""
        env = os.environ if env is None else env
        pid = os.getpid() if pid is None else pid
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        if raw.isdigit() and int(raw) > 0:
            owner = env.get("WATCHDOG_PID", "")
            if not owner or (owner.isdigit() and int(owner) == pid):
                usec = int(raw)
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1: half the unit's WatchdogSec, as sd_watchdog_enabled(3)
        recommends; ``None`` when the watchdog is off."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); True when a datagram was sent.

        A failure is logged once and never raised: losing systemd must not stop the node (the
        watchdog, if any, then restarts it, which is the right outcome).
        """
        if self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop: if the receiver stops reading, drop the ping
                # (a missed WATCHDOG=1 is what should happen to a node nobody listens to).
                self._sock.setblocking(False)
            self._sock.sendto(payload, target)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str = "ready") -> bool:
        return self.notify(ready=1, status=status)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self, status: str = "draining") -> bool:
        return self.notify(stopping=1, status=status)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
