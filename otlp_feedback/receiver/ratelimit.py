"""Per-client token buckets, counted in feedback events, with a bounded number of buckets.

The receiver's guard calls ``RateLimiter.acquire(client, events)`` once a request's feedback
records are counted (after mapping, before validation). A bucket refills at ``events_per_s`` up
to ``burst``. A request is admitted when its bucket holds ``min(events, burst)`` tokens, and then
takes all ``events``: a request larger than the burst is admitted from a full bucket and leaves
it in debt, so the long-run rate holds and a big batch is never refused forever. When refused,
``RateLimited.retry_after`` is the time until the bucket holds enough; nothing is taken.

At most ``max_clients`` buckets are kept, least recently used out first; a forgotten client
starts again with a full bucket (generous by at most one burst, and memory stays bounded
whatever client ids or peer addresses arrive).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from otlp_feedback.config import ClientRateLimit
from otlp_feedback.errors import RateLimited


class TokenBucket:
    """One client's bucket. Not thread-safe on its own (``RateLimiter`` holds the lock)."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, events: int, now: float) -> float:
        """Take ``events`` tokens and return 0.0, or take none and return the seconds to wait."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        need = min(events, self.burst)
        if self.tokens >= need:
            self.tokens -= events
            return 0.0
        return (need - self.tokens) / self.rate


class RateLimiter:
    """Token buckets by client id. Thread-safe: one lock around a little arithmetic."""

    def __init__(
        self,
        default: ClientRateLimit,
        clients: Mapping[str, ClientRateLimit] | None = None,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = default
        self._clients = dict(clients or {})
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def limit_for(self, client: str) -> ClientRateLimit:
        return self._clients.get(client, self._default)

    def acquire(self, client: str, events: int) -> None:
        """Admit ``events`` for ``client`` or raise ``RateLimited`` carrying ``retry_after``."""
        if events <= 0:
            return
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(client)
            if bucket is None:
                limit = self.limit_for(client)
                bucket = self._buckets[client] = TokenBucket(limit.events_per_s, limit.burst, now)
                if len(self._buckets) > self._max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(client)
            wait = bucket.take(events, now)
        if wait > 0:
            raise RateLimited(
                f"rate limit exceeded: {events} events over the {bucket.rate:g} events/s "
                f"(burst {bucket.burst}) of client {client!r}; retry in {wait:.3f}s",
                retry_after=wait,
            )

    def __len__(self) -> int:
        """Buckets currently kept (at most ``max_clients``)."""
        return len(self._buckets)
