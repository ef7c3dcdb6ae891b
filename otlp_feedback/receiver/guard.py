"""Admission control for both transports: authenticate, then rate-limit; audit every refusal.

Each door (``ExportService`` for gRPC, ``receiver/http.py`` for OTLP/HTTP and the events API)
calls ``RequestGuard.check(headers, peer, method)`` with what every transport has: the request's
header pairs (gRPC metadata, HTTP headers; names lower-case, every entry kept) and the peer as
gRPC spells it (``ipv4:1.2.3.4:5678``). It does so before it decodes a request
(``Unauthenticated``/``PermissionDenied`` end the request there) and passes the ``Caller`` to the
pipeline as the request's ``Admission`` (``pipeline.admission``): the pipeline's admission step
calls ``Caller.admit`` once, with the number of feedback records the request carries, before
validating them (``RateLimited`` refuses the request whole, with RetryInfo).

A request sent with a feedback token (``otlp_feedback.tokens``) has the token's claims on its
``Caller``: ``RequestGuard.admit`` also charges the token's own budget and bucket
(``budgets.TokenLedger``, kept per process), and ``Caller.scope`` is what the pipeline's
process stage holds each of its records to (``FeedbackToken.refusal``). Audit lines name a
feedback token by its fingerprint (key id + 12 hex digits of its SHA-256), never whole.

Rate limits apply to authenticated callers (API keys, JWTs, feedback tokens), keyed by client
id (``limiter``). Unauthenticated requests (``auth.mode: none``) are limited only when
``rate_limit.anonymous`` is set (``anonymous``), keyed by the peer's IP address (``peer:<ip>``,
or ``anonymous`` when the peer has none): by default a sidecar or a collector gateway, which
sends everything from one address, is never throttled. The metrics label of unauthenticated
traffic is always ``anonymous``, so the label set stays as small as the set of configured
clients. ``from_settings`` logs one line saying what is limited. Thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from otlp_feedback.config import AuthConfig, ClientRateLimit, Settings, TokensConfig
from otlp_feedback.errors import PermissionDenied, RateLimited, Unauthenticated
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.receiver.audit import AuditLog
from otlp_feedback.receiver.auth import WRITE, Authenticator, Scope, feedback_bearer
from otlp_feedback.receiver.budgets import TokenLedger
from otlp_feedback.receiver.ratelimit import RateLimiter
from otlp_feedback.tokens import FeedbackToken, fingerprint

ANONYMOUS = "anonymous"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent one request, and the admission check for its events (a ``pipeline.Admission``)."""

    client_id: str | None  # authenticated client id; None when auth.mode is none
    peer: str  # as gRPC reports it, e.g. "ipv4:10.0.0.7:51234"
    method: str
    guard: RequestGuard
    token: FeedbackToken | None = None  # a feedback token's claims, when it sent one

    @property
    def scope(self) -> FeedbackToken | None:
        """The rule each record is held to (the pipeline's ``RecordScope``), if any."""
        return self.token

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
        ledger: TokenLedger | None = None,
        tokens: TokensConfig | None = None,
        anonymous: RateLimiter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter  # authenticated callers, by client id
        self.anonymous = anonymous  # unauthenticated callers, by peer address
        self.tokens = tokens or TokensConfig()  # what /v1/feedback-tokens mints with
        self.ledger = ledger or TokenLedger(self.tokens.rate_limit, self.tokens.max_tracked)
        self.audit = audit
        self._rate_limited = telemetry.rate_limited

    @classmethod
    def from_settings(
        cls, settings: Settings, telemetry: Telemetry, ledger: TokenLedger | None = None
    ) -> RequestGuard:
        """Raises ``ConfigError`` if a JWT public key cannot be loaded. ``ledger``: the token
        budgets to keep (a reload passes the old guard's, reconfigured), else a new one."""
        tokens = settings.tokens
        if ledger is not None:  # what tokens spent so far stays; the limits are the new ones
            ledger.configure(tokens.rate_limit, tokens.max_tracked)
        cfg = settings.rate_limit
        limiter = anonymous = None
        if cfg.enabled:
            limiter = RateLimiter(
                ClientRateLimit(events_per_s=cfg.events_per_s, burst=cfg.burst),
                settings.client_rate_limits(),
                cfg.max_clients,
            )
            if cfg.anonymous is not None:
                anonymous = RateLimiter(cfg.anonymous, None, cfg.max_clients)
        log.info("%s", describe_limits(settings))
        authenticator = Authenticator(settings.auth, tokens)
        return cls(authenticator, limiter, AuditLog(), telemetry, ledger, tokens, anonymous)

    @classmethod
    def open(cls, telemetry: Telemetry) -> RequestGuard:
        """No authentication and no rate limit (what ``auth.mode: none`` without limits does)."""
        return cls(Authenticator(AuthConfig()), None, AuditLog(), telemetry)

    def check(
        self,
        headers: Iterable[tuple[str, str | bytes]],
        peer: str,
        method: str,
        scope: Scope = WRITE,
    ) -> Caller:
        """Authenticate the request sent with ``headers`` from ``peer`` to ``method`` (an RPC
        or an HTTP path) for ``scope`` (sending, by default; ``feedback:mint`` to mint).
        Raises ``Unauthenticated``/``PermissionDenied`` (audited)."""
        try:
            principal = self.authenticator.authenticate(headers, scope)
        except (Unauthenticated, PermissionDenied) as exc:
            event = "unauthenticated" if isinstance(exc, Unauthenticated) else "permission_denied"
            self.audit.refused(
                event,
                client=None,
                peer=peer,
                method=method,
                reason=str(exc),
                **_token_named(headers),
            )
            raise
        if principal is None:
            return Caller(None, peer, method, self)
        return Caller(principal.client_id, peer, method, self, principal.token)

    def admit(self, caller: Caller, events: int) -> None:
        """The client's rate limit, then (for a feedback token) the token's budget and bucket.
        Raises ``RateLimited`` or ``PermissionDenied`` (audited and counted)."""
        token = caller.token
        try:
            limiter = self.limiter if caller.client_id is not None else self.anonymous
            if limiter is not None:
                limiter.acquire(caller.bucket, events)
            if token is not None:
                self.ledger.acquire(token, events)
        except (RateLimited, PermissionDenied) as exc:
            # PermissionDenied: a feedback token's spent budget (final); else a bucket is empty.
            event = "budget_spent"
            extra: dict[str, object] = {}
            if isinstance(exc, RateLimited):
                event = "rate_limited"
                self._rate_limited.labels(caller.client_id or ANONYMOUS).inc()
                extra["retry_after_s"] = round(exc.retry_after or 0.0, 3)
            if token is not None:
                extra["token"] = token.fingerprint
            self.audit.refused(
                event,
                client=caller.client_id,
                peer=caller.peer,
                method=caller.method,
                reason=str(exc),
                events=events,
                **extra,
            )
            raise


def describe_limits(settings: Settings) -> str:
    """The one line start-up (and each reload) logs: what is rate-limited, and by how much."""
    cfg, token = settings.rate_limit, settings.tokens.rate_limit
    tokens = f"feedback tokens: {token.events_per_s:g} events/s (burst {token.burst}) each"
    if not cfg.enabled:
        return f"rate limits: off (rate_limit.enabled: false); {tokens}"
    own = settings.client_rate_limits()
    clients = f"authenticated clients: {cfg.events_per_s:g} events/s (burst {cfg.burst}) each" + (
        f", {len(own)} with their own" if own else ""
    )
    peers = (
        f"unauthenticated peers: {cfg.anonymous.events_per_s:g} events/s "
        f"(burst {cfg.anonymous.burst}) per address"
        if cfg.anonymous is not None
        else "unauthenticated peers: not limited (set rate_limit.anonymous to limit them)"
    )
    return f"rate limits: {clients}; {peers}; {tokens}"


def _token_named(headers: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    """``{"token": fingerprint}`` when the request's bearer is a feedback token: refusals of
    one name it (never whole); API keys and other JWTs are named by nothing but the reason."""
    token = feedback_bearer(headers)
    return {"token": fingerprint(token)} if token is not None else {}


def _peer_bucket(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``peer:1.2.3.4``; ``ipv6:[::1]:5678`` -> ``peer:::1``. The port
    is dropped: each connection has its own, and a client may open many."""
    family, _, address = peer.partition(":")
    if family not in ("ipv4", "ipv6") or not address:
        return ANONYMOUS
    host = unquote(address).rpartition(":")[0].strip("[]")  # recent gRPC: ipv6:%5B::1%5D:5678
    return f"peer:{host}" if host else ANONYMOUS
