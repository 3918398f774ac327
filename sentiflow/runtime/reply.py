"""The reply slot of an ``ask``; also the handle an actor keeps to answer later (deferred reply).

Like gen_server's ``{noreply, State}`` + ``gen_server:reply(From, Reply)``: a micro-batching
actor calls ``self.context.defer_reply()`` inside ``receive``, returns, and later calls
``handle.send(value)`` or ``handle.fail(exc)`` from any task on the same event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentiflow.runtime.mailbox import _Event


class DeferredReply:
    """Completes an ``ask`` exactly once. ``send``/``fail`` return False when it was already
    completed (e.g. the runtime failed it because the actor crashed) or nobody waits for it."""

    __slots__ = ("_abandoned", "_deferred", "_done", "_error", "_event", "_owner", "_value")

    def __init__(self, event: _Event | None = None) -> None:
        """``event`` wakes the asker (the backend's native Event); None: nobody waits."""
        self._event = event
        wants_reply = event is not None
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = not wants_reply
        self._abandoned = False
        self._deferred = False  # the actor took over answering (defer_reply)
        self._owner: set[DeferredReply] | None = None

    @classmethod
    def waitable(cls) -> DeferredReply:
        """A reply someone will ``wait()`` for, created outside ``ask`` (e.g. a submission
        that travels through several stages and is completed by the last). Must be called
        on the event loop that will wait for it."""
        from sentiflow.runtime.mailbox import native_event_factory

        return cls(native_event_factory()())

    @property
    def done(self) -> bool:
        """True once a reply or an error was delivered (or for a tell, always)."""
        return self._done

    @property
    def abandoned(self) -> bool:
        """True when the asker gave up (timeout or cancellation): the work may be skipped."""
        return self._abandoned or self._event is None

    def send(self, value: Any) -> bool:
        """Deliver ``value`` as the ask's result."""
        if self._done:
            return False
        self._value = value
        self._complete()
        return True

    def fail(self, error: BaseException) -> bool:
        """Make the ask raise ``error``."""
        if self._done:
            return False
        self._error = error
        self._complete()
        return True

    def _complete(self) -> None:
        self._done = True
        if self._owner is not None:
            self._owner.discard(self)
            self._owner = None
        assert self._event is not None
        self._event.set()

    async def wait(self) -> Any:
        """Wait for the outcome (used by ``ActorRef.ask``)."""
        assert self._event is not None
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value
