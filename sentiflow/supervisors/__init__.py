"""Erlang/OTP-style supervisors: child specs, strategies, restart types and intensity.

Read ``spec`` (what you declare), then ``supervisor`` (what happens on failure), then ``root``.
"""

from sentiflow.supervisors.root import run_root
from sentiflow.supervisors.spec import (
    ActorFactory,
    Backoff,
    ChildSpec,
    InvalidSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)
from sentiflow.supervisors.supervisor import (
    ChildStartFailed,
    Supervisor,
    SupervisorGaveUp,
    start_supervisor,
)

__all__ = [
    "ActorFactory", "Backoff", "ChildSpec", "ChildStartFailed", "InvalidSpec", "Restart",
    "Strategy", "Supervisor", "SupervisorGaveUp", "SupervisorSpec", "run_root",
    "start_supervisor",
]
