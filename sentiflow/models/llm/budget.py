"""The LLM tier's daily budget: a dollar cap per UTC day and a cap on the escalated share.

Spending is *reserved* before a call (a high estimate: the prompt's estimated tokens plus the
completion's ``max_tokens``) and *settled* with the actual usage after it. A reservation is
granted only when the day's settled spend plus open reservations plus this estimate stays under
the cap, so however many calls are in flight the day never ends above the cap (while the
estimate bounds the actual cost; by at most one request's estimation error otherwise). When
even the settled spend plus one estimate would pass the cap, escalation ends for the rest of the
UTC day (``on_exhausted`` fires once: the alert): the day stops within one request of the cap.

The share cap is a running ratio: posts admitted to the LLM today over posts routed today
(the router reports every post). It is not checked until ``share_min_posts`` posts were routed,
so a cold start is not refused. After a restart the node restores the day's spend from the store
(:meth:`DailyBudget.restore`); the share's counts start again (documented in docs/llm.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum


class BudgetRefusal(StrEnum):
    """Why the budget refused; the value is the result's ``review_reason``."""

    EXHAUSTED = "llm_budget"
    SHARE_CAP = "llm_share_cap"


@dataclass(frozen=True, slots=True)
class Reservation:
    day: date
    amount: float


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DailyBudget:
    """Not thread-safe; one event loop owns it (all escalators share one instance)."""

    def __init__(self, daily_cap_usd: float, *, max_share: float = 1.0, share_min_posts: int = 0,
                 clock: Callable[[], datetime] = _utcnow,
                 on_exhausted: Callable[[date, float], None] | None = None) -> None:
        if daily_cap_usd < 0 or not 0.0 <= max_share <= 1.0:
            raise ValueError("daily_cap_usd must be >= 0 and max_share in [0, 1]")
        self.cap = daily_cap_usd
        self.max_share = max_share
        self.share_min_posts = share_min_posts
        self._clock = clock
        self._on_exhausted = on_exhausted
        self.day = clock().date()
        self._reset()

    def _reset(self) -> None:
        self.spent = 0.0
        self.reserved = 0.0
        self.routed = 0
        self.escalated = 0
        self.exhausted = False

    def _roll(self) -> None:
        today = self._clock().date()
        if today != self.day:
            self.day = today
            self._reset()

    def restore(self, day: date, spent: float) -> None:
        """Take the spend already recorded for ``day`` (at start, from the store)."""
        self._roll()
        if day == self.day:
            self.spent = max(self.spent, spent)
            if self.spent >= self.cap:
                self._exhaust()

    def observe_routed(self, posts: int) -> None:
        """``posts`` more posts went through the router (the share's denominator)."""
        self._roll()
        self.routed += posts

    def admit(self, posts: int) -> BudgetRefusal | None:
        """May ``posts`` more low-confidence posts be escalated? Counts them when yes."""
        self._roll()
        if self.exhausted:
            return BudgetRefusal.EXHAUSTED
        if (self.routed >= max(self.share_min_posts, 1)
                and (self.escalated + posts) / self.routed > self.max_share):
            return BudgetRefusal.SHARE_CAP
        self.escalated += posts
        return None

    def reserve(self, estimate_usd: float) -> Reservation | None:
        """Hold ``estimate_usd`` for one call, or None. When it does not fit even with no
        call in flight, escalation ends for the day (:attr:`exhausted`); when it does not fit
        only because of the calls in flight, None without exhausting: the caller waits for
        one of them to settle (their actual cost is usually below the estimate) and asks
        again."""
        self._roll()
        if self.exhausted:
            return None
        if self.spent + estimate_usd > self.cap:
            self._exhaust()
            return None
        if self.spent + self.reserved + estimate_usd > self.cap:
            return None
        self.reserved += estimate_usd
        return Reservation(self.day, estimate_usd)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace ``reservation`` with what the call cost (a call of an earlier day is not
        counted against today)."""
        self._roll()
        if reservation.day != self.day:
            return
        self.reserved = max(0.0, self.reserved - reservation.amount)
        self.spent += actual_usd
        if self.spent >= self.cap:
            self._exhaust()

    def release(self, reservation: Reservation) -> None:
        """The call spent nothing (refused before the server billed it)."""
        self._roll()
        if reservation.day == self.day:
            self.reserved = max(0.0, self.reserved - reservation.amount)

    def _exhaust(self) -> None:
        if not self.exhausted:
            self.exhausted = True
            if self._on_exhausted is not None:
                self._on_exhausted(self.day, self.spent)
