"""``run_root``: run a supervision tree as the life of the process.

It returns only after an orderly shutdown (a signal, when ``handle_signals``), and raises
``SupervisorGaveUp`` when the root exceeds its restart intensity, so that ``anyio.run(main)``
exits with a non-zero status and systemd restarts the node. While the tree is healthy it calls
``heartbeat()`` every ``heartbeat_interval`` seconds (the systemd watchdog hangs off it).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import anyio

from sentiflow.runtime import ActorSystem
from sentiflow.supervisors.spec import SupervisorSpec
from sentiflow.supervisors.supervisor import Supervisor, start_supervisor

log = logging.getLogger("sentiflow.supervisors")


async def run_root(system: ActorSystem, spec: SupervisorSpec, *, name: str = "root",
                   heartbeat: Callable[[], object] | None = None,
                   heartbeat_interval: float = 1.0,
                   on_started: Callable[[Supervisor], object] | None = None,
                   handle_signals: bool = False) -> None:
    """Start the root supervisor at ``/<name>`` and supervise until it stops.

    ``on_started(root)`` runs once every child has started (readiness: sd_notify READY=1).
    ``handle_signals``: SIGTERM / SIGINT trigger an orderly shutdown (reverse order, drained),
    after which this returns normally. Raises ``SupervisorGaveUp`` or ``ChildStartFailed``.
    """
    root = await start_supervisor(system, spec, name=name)
    if on_started is not None:
        on_started(root)
    async with anyio.create_task_group() as tg:
        if heartbeat is not None:
            tg.start_soon(_beat, root, heartbeat, heartbeat_interval)
        if handle_signals:
            tg.start_soon(_stop_on_signal, root)
        gave_up = await root.wait()
        tg.cancel_scope.cancel()
    if gave_up is not None:
        raise gave_up


async def _beat(root: Supervisor, heartbeat: Callable[[], object], interval: float) -> None:
    while True:
        if root.healthy:
            heartbeat()
        await anyio.sleep(interval)


async def _stop_on_signal(root: Supervisor) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.warning("signal %s: shutting down %s", signum, root.path)
            await root.shutdown()
            return
