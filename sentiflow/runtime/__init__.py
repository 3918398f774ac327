"""Actor core: actors, refs, bounded mailboxes, the actor system and introspection.

Knows nothing about sentiment; backend-neutral (anyio: asyncio and trio). Read in this order:
``actor`` (what you write), ``ref`` (how you send), ``mailbox`` (where it waits), ``cell`` (the
loop and the lifecycle), ``system`` (the registry and the task group), ``snapshot``/``metrics``.
"""

from sentiflow.runtime.actor import Actor, ActorContext
from sentiflow.runtime.cell import ActorCell, OnCrash, Parent
from sentiflow.runtime.deadletters import (
    DeadLetter,
    DeadLetterHandler,
    DeadLetterReason,
    log_dead_letter,
)
from sentiflow.runtime.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    InvalidName,
    MailboxClosed,
    MailboxFull,
    NameTaken,
    NotInActor,
    SystemNotRunning,
)
from sentiflow.runtime.mailbox import Mailbox, Priority
from sentiflow.runtime.metrics import (
    LATENCY_BOUNDS,
    SIZE_BOUNDS,
    Counter,
    Gauge,
    GaugeSnapshot,
    Histogram,
    HistogramSnapshot,
    Metrics,
    MetricSnapshot,
)
from sentiflow.runtime.offload import Offloader
from sentiflow.runtime.ref import ActorRef
from sentiflow.runtime.reply import DeferredReply
from sentiflow.runtime.snapshot import (
    ActorSnapshot,
    ActorState,
    ErrorInfo,
    NodeSnapshot,
    SupervisorSnapshot,
    SystemSnapshot,
)
from sentiflow.runtime.system import ActorSystem, Node, child_path

__all__ = [
    "LATENCY_BOUNDS", "SIZE_BOUNDS", "Actor", "ActorCell", "ActorContext", "ActorCrashed",
    "ActorError", "ActorNotFound", "ActorRef", "ActorSnapshot", "ActorState", "ActorStopped",
    "ActorSystem", "AskTimeout", "Counter", "DeadLetter", "DeadLetterHandler",
    "DeadLetterReason", "DeferredReply", "ErrorInfo", "Gauge", "GaugeSnapshot", "Histogram",
    "HistogramSnapshot", "InvalidName", "Mailbox", "MailboxClosed", "MailboxFull",
    "MetricSnapshot", "Metrics", "NameTaken", "Node", "NodeSnapshot", "NotInActor", "Offloader",
    "OnCrash", "Parent", "Priority", "SupervisorSnapshot",
    "SystemNotRunning", "SystemSnapshot", "child_path", "log_dead_letter",
]
