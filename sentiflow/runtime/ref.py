"""``ActorRef``: the address of an actor slot. Stable across restarts; cheap to pass around.

Four ways to send, by how long the caller may wait:

============  ======================================  =====================================
call          when the mailbox is full                 typical caller
============  ======================================  =====================================
``tell``      waits for room (backpressure)            pipeline stages, Kafka reader
``try_tell``  returns False at once                    fire-and-forget metrics, best effort
``offer``     waits up to ``timeout``, ``MailboxFull``  the API path (-> 503 + Retry-After)
``ask``       waits; whole call bounded by timeout     request / reply
============  ======================================  =====================================

All raise ``ActorStopped`` once the actor is stopped for good (or stopping: draining).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from sentiflow.runtime.errors import AskTimeout, MailboxFull
from sentiflow.runtime.mailbox import Priority
from sentiflow.runtime.reply import DeferredReply

if TYPE_CHECKING:
    from sentiflow.runtime.cell import ActorCell

M = TypeVar("M")

NORMAL = Priority.NORMAL


class ActorRef(Generic[M]):
    __slots__ = ("_cell", "_mailbox", "path")

    def __init__(self, cell: ActorCell[M]) -> None:
        self._cell = cell
        self._mailbox = cell.mailbox
        self.path = cell.path

    def __repr__(self) -> str:
        return f"<ActorRef {self.path}>"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stopped(self) -> bool:
        """True once the actor is stopping or stopped for good (sends raise ``ActorStopped``)."""
        return self._mailbox.closed

    @property
    def mailbox_depth(self) -> int:
        return len(self._mailbox)

    async def tell(self, message: M, *, priority: Priority = NORMAL) -> None:
        """Send without a reply; waits while the mailbox is full."""
        mailbox = self._mailbox
        if mailbox._size < mailbox.capacity and not mailbox._waiting and not mailbox._closed:
            mailbox._lanes[priority].append((message, None, priority))  # inlined try_put
            mailbox._size += 1
            if mailbox._getter is not None:
                mailbox.wake()
            return
        await mailbox.put((message, None, priority), priority)

    def try_tell(self, message: M, *, priority: Priority = NORMAL) -> bool:
        """Send if there is room right now; never waits. False means the mailbox is full."""
        return self._mailbox.try_put((message, None, priority), priority)

    async def offer(self, message: M, *, timeout: float,  # noqa: ASYNC109 (part of the API)
                    priority: Priority = NORMAL) -> None:
        """Send, waiting at most ``timeout`` seconds for room; raises ``MailboxFull``."""
        envelope = (message, None, priority)
        if self._mailbox.try_put(envelope, priority):
            return
        with anyio.move_on_after(timeout):
            await self._mailbox.put(envelope, priority)
            return
        raise MailboxFull(self.path, self._mailbox.capacity, timeout)

    async def ask(self, message: M, *, timeout: float = 5.0,  # noqa: ASYNC109 (part of the API)
                  priority: Priority = NORMAL) -> Any:
        """Send and wait for the reply: ``receive``'s return value or a deferred reply.

        ``timeout`` bounds the whole call (waiting for room included): ``AskTimeout``.
        ``ActorCrashed`` (with ``.cause``) as soon as processing this message crashed the actor.
        ``ActorStopped`` if the actor is stopped, or stops before answering.
        """
        reply = DeferredReply(self._mailbox._event())
        try:
            with anyio.move_on_after(timeout):
                await self._mailbox.put((message, reply, priority), priority)
                return await reply.wait()
        except BaseException:
            reply._abandoned = True  # cancelled from outside: the actor may skip the work
            raise
        if reply.done:  # answered at the very moment the timeout fired: prefer the answer
            return await reply.wait()
        reply._abandoned = True
        raise AskTimeout(self.path, timeout)
