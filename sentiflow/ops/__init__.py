"""Operations: systemd notify + watchdog heartbeat, structured logs, console frames, fault
injection (docs/operations.md). Import the submodules; nothing here has an event loop of its
own except :class:`~sentiflow.ops.watchdog.Heartbeat`'s ``run``, which the node drives."""
