"""Each feedback token's event budget and small rate limit, kept per receiver process.

The guard's admission (``RequestGuard.admit``) calls ``TokenLedger.acquire(token, events)``
once per request a feedback token sends, with the request's count of feedback records (those
its scope will refuse included: they cost the receiver the same). A request is admitted whole
or refused whole, taking nothing when refused:

- over the token's budget (``max`` claim: events in all, over its lifetime) -> ``PermissionDenied``
  (403 / PERMISSION_DENIED: final, a client must not retry it);
- over the token's own bucket (``tokens.rate_limit``) -> ``RateLimited`` with ``retry_after``.

**Per process.** Each receiver process keeps its own ledger, so with N processes (or pods)
behind a load balancer a token may send up to N times its budget and rate; its expiry is the
hard bound, which is why ``tokens.max_ttl_s`` keeps tokens short-lived. The ledger outlives
config reloads (the app hands it to each new guard). At most ``tokens.max_tracked`` tokens are
kept: when full, expired ones go first, then the least recently used (which would start again
with a full budget: size it over the tokens alive at once). The expired are found through a heap
by expiry, not a scan: a full ledger is the steady state under many short-lived tokens, and the
lock is every token-carrying request's.

Thread-safe: one lock around a little arithmetic.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from otlp_feedback.config import ClientRateLimit
from otlp_feedback.errors import PermissionDenied, RateLimited
from otlp_feedback.receiver.ratelimit import TokenBucket
from otlp_feedback.tokens import FeedbackToken


@dataclass(slots=True)
class _Entry:
    used: int
    bucket: TokenBucket
    expires_at: int


class TokenLedger:
    """Budgets and buckets by token id."""

    def __init__(
        self,
        limit: ClientRateLimit,
        max_tracked: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._limit = limit
        self._max_tracked = max_tracked
        self._clock = clock
        self._wall = wall
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        # (expires_at, token id), a min-heap over the entries; may still hold ids since
        # dropped as least recently used (rebuilt when those are half of it).
        self._expiries: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def configure(self, limit: ClientRateLimit, max_tracked: int) -> None:
        """New limits (a reload); tokens already seen keep their bucket and what they used."""
        with self._lock:
            self._limit, self._max_tracked = limit, max_tracked

    def used(self, token_id: str) -> int:
        """Events admitted so far for ``token_id`` (0 if unknown)."""
        with self._lock:
            entry = self._entries.get(token_id)
            return entry.used if entry is not None else 0

    def acquire(self, token: FeedbackToken, events: int) -> None:
        """Admit ``events`` for ``token`` or raise (taking nothing): ``PermissionDenied``
        over its budget, ``RateLimited`` over its bucket."""
        if events <= 0:
            return
        with self._lock:
            now = self._clock()
            entry = self._entries.get(token.token_id)
            if entry is None:
                bucket = TokenBucket(self._limit.events_per_s, self._limit.burst, now)
                entry = self._entries[token.token_id] = _Entry(0, bucket, token.expires_at)
                heapq.heappush(self._expiries, (token.expires_at, token.token_id))
                if len(self._entries) > self._max_tracked:
                    self._evict()
            else:
                self._entries.move_to_end(token.token_id)
            used = entry.used
            if used + events > token.max_events:
                raise PermissionDenied(
                    f"feedback token {token.fingerprint} has an event budget of "
                    f"{token.max_events}: {used} used, {events} more asked"
                )
            wait = entry.bucket.take(events, now)
            if wait == 0.0:
                entry.used = used + events
                return
            rate, burst = entry.bucket.rate, entry.bucket.burst
        raise RateLimited(
            f"rate limit exceeded: {events} events over the {rate:g} events/s (burst {burst}) "
            f"of feedback token {token.fingerprint}; retry in {wait:.3f}s",
            retry_after=wait,
        )

    def _evict(self) -> None:
        """Over ``max_tracked``: drop the expired, else the least recently used. Lock held."""
        wall = self._wall()
        entries, expiries = self._entries, self._expiries
        while expiries and expiries[0][0] < wall:
            tid = heapq.heappop(expiries)[1]
            entry = entries.get(tid)
            if entry is not None and entry.expires_at < wall:  # not a later entry of that id
                del entries[tid]
        while len(entries) > self._max_tracked:
            entries.popitem(last=False)
        if len(expiries) > 2 * len(entries):
            self._expiries = [(e.expires_at, tid) for tid, e in entries.items()]
            heapq.heapify(self._expiries)

    def __len__(self) -> int:
        return len(self._entries)
