"""Admission control for both transports: authenticate, then rate-limit; audit every refusal.

Each door (``ExportService`` for gRPC, ``receiver/http.py`` for OTLP/HTTP and the events API)
calls ``RequestGuard.check(headers, peer, method)`` with what every transport has: the request's
header pairs (gRPC metadata, HTTP headers; names lower-case, every entry kept) and the peer as
gRPC spells it (``ipv4:1.2.3.4:5678``). It does so before it decodes a request
(``Unauthenticated``/``PermissionDenied`` end the request there) and passes the ``Caller`` to the
pipeline as the request's ``Admission`` (``pipeline.admission``): the pipeline's admission step
calls ``Caller.admit`` once, with the number of feedback records the request carries, before
validating them (``RateLimited`` refuses the request whole, with RetryInfo). Per-token event
budgets (browser tokens) belong here too, in ``RequestGuard.admit``.

Rate-limit buckets are keyed by the authenticated client id; without authentication by the
peer's IP address (``peer:<ip>``), or ``anonymous`` when the peer has none. The metrics label of
unauthenticated traffic is always ``anonymous``, so the label set stays as small as the set of
configured clients. Thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from otlp_feedback.config import AuthConfig, ClientRateLimit, Settings
from otlp_feedback.errors import PermissionDenied, RateLimited, Unauthenticated
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.receiver.audit import AuditLog
from otlp_feedback.receiver.auth import Authenticator
from otlp_feedback.receiver.ratelimit import RateLimiter

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent one request, and the admission check for its events (a ``pipeline.Admission``)."""

    client_id: str | None  # authenticated client id; None when auth.mode is none
    peer: str  # as gRPC reports it, e.g. "ipv4:10.0.0.7:51234"
    method: str
    guard: RequestGuard

    @property
    def bucket(self) -> str:
        return self.client_id if self.client_id is not None else _peer_bucket(self.peer)

    def admit(self, events: int) -> None:
        """Raises ``RateLimited`` (audited and counted) when over the caller's limit."""
        self.guard.admit(self, events)


class RequestGuard:
    """Authenticator + rate limiter + audit log, shared by all worker threads."""

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter | None,
        audit: AuditLog,
        telemetry: Telemetry,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self._audit = audit
        self._rate_limited = telemetry.rate_limited

    @classmethod
    def from_settings(cls, settings: Settings, telemetry: Telemetry) -> RequestGuard:
        """Raises ``ConfigError`` if a JWT public key cannot be loaded."""
        cfg = settings.rate_limit
        limiter = (
            RateLimiter(
                ClientRateLimit(events_per_s=cfg.events_per_s, burst=cfg.burst),
                settings.client_rate_limits(),
                cfg.max_clients,
            )
            if cfg.enabled
            else None
        )
        return cls(Authenticator(settings.auth), limiter, AuditLog(), telemetry)

    @classmethod
    def open(cls, telemetry: Telemetry) -> RequestGuard:
        """No authentication and no rate limit (what ``auth.mode: none`` without limits does)."""
        return cls(Authenticator(AuthConfig()), None, AuditLog(), telemetry)

    def check(self, headers: Iterable[tuple[str, str | bytes]], peer: str, method: str) -> Caller:
        """Authenticate the request sent with ``headers`` from ``peer`` to ``method`` (an RPC
        or an HTTP path). Raises ``Unauthenticated``/``PermissionDenied`` (audited)."""
        try:
            principal = self.authenticator.authenticate(headers)
        except Unauthenticated as exc:
            self._audit.refused(
                "unauthenticated", client=None, peer=peer, method=method, reason=str(exc)
            )
            raise
        except PermissionDenied as exc:
            self._audit.refused(
                "permission_denied", client=None, peer=peer, method=method, reason=str(exc)
            )
            raise
        client_id = principal.client_id if principal is not None else None
        return Caller(client_id, peer, method, self)

    def admit(self, caller: Caller, events: int) -> None:
        if self.limiter is None:
            return
        try:
            self.limiter.acquire(caller.bucket, events)
        except RateLimited as exc:
            self._rate_limited.labels(caller.client_id or ANONYMOUS).inc()
            self._audit.refused(
                "rate_limited",
                client=caller.client_id,
                peer=caller.peer,
                method=caller.method,
                reason=str(exc),
                events=events,
                retry_after_s=round(exc.retry_after or 0.0, 3),
            )
            raise


def _peer_bucket(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``peer:1.2.3.4``; ``ipv6:[::1]:5678`` -> ``peer:::1``. The port
    is dropped: each connection has its own, and a client may open many."""
    family, _, address = peer.partition(":")
    if family not in ("ipv4", "ipv6") or not address:
        return ANONYMOUS
    host = unquote(address).rpartition(":")[0].strip("[]")  # recent gRPC: ipv6:%5B::1%5D:5678
    return f"peer:{host}" if host else ANONYMOUS
