"""Errors of the actor runtime, as types, so that callers can react to each one precisely.

``ActorError`` is the common base. The API layer maps ``MailboxFull`` to 503 + Retry-After,
``AskTimeout`` to 504, ``ActorStopped`` / ``ActorCrashed`` to 503 or 500.
Names state the event (``AskTimeout``, ``ActorCrashed``), as Erlang's exit reasons do, rather
than carry an "Error" suffix: hence the N818 exemptions.
"""

from __future__ import annotations


class ActorError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ActorStopped(ActorError):  # noqa: N818
    """The actor is stopped (or stopped before answering); the message was not processed."""

    def __init__(self, path: str, detail: str = "actor is stopped") -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path


class MailboxClosed(ActorStopped):
    """The mailbox no longer accepts messages because its actor is stopping or stopped."""


class MailboxFull(ActorError):  # noqa: N818
    """``offer`` could not enqueue within its timeout: the actor is saturated (HTTP 503)."""

    def __init__(self, path: str, capacity: int, timeout: float) -> None:
        super().__init__(f"{path}: mailbox full (capacity {capacity}) for {timeout:g} s")
        self.path = path
        self.capacity = capacity
        self.timeout = timeout


class AskTimeout(ActorError, TimeoutError):  # noqa: N818
    """``ask`` got no reply within its timeout. The message may still be processed later."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"{path}: no reply within {timeout:g} s")
        self.path = path
        self.timeout = timeout


class ActorCrashed(ActorError):  # noqa: N818
    """Processing the asked message crashed the actor; ``cause`` is the original exception.

    Raised to the asker promptly (it never has to wait for its timeout). Also raised for
    deferred replies that were still outstanding when their actor instance crashed.
    """

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"{path}: crashed with {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


class ActorNotFound(ActorError, LookupError):  # noqa: N818
    """No actor is registered under this path."""


class InvalidName(ActorError, ValueError):  # noqa: N818
    """An actor or child name is empty or contains '/'."""


class NameTaken(ActorError, ValueError):  # noqa: N818
    """Another actor or supervisor already uses this path."""


class SystemNotRunning(ActorError):  # noqa: N818
    """The ActorSystem is used outside its ``async with`` block."""


class NotInActor(ActorError):  # noqa: N818
    """An ``ActorContext`` operation that needs a running actor instance was used without one."""
