"""Browser feedback tokens: short-lived, scoped credentials a backend mints for one web page.

A page cannot hold an API key. The backend that renders it mints a token scoped to that page's
conversation (``mint``, the CLI's ``tokens mint``, or ``POST /v1/feedback-tokens``) and the
page sends feedback with ``Authorization: Bearer <token>`` over OTLP/HTTP or the events API.

**Format: a JWT (RFC 7519) signed HS256, made and checked with PyJWT** (already our JWT
dependency for ``auth.jwt``). Why not a format of our own: a JWT's header carries the key id
(``kid``) that rotation needs, its ``exp`` check and its constant-time signature check are
PyJWT's, well reviewed, and a backend in any language can inspect one with a stock library.
Pinned so one is never mistaken for another JWT: the header's ``typ`` is
``feedback-token+jwt`` (explicit typing, RFC 8725 3.11), ``aud`` is ``otlp-feedback:feedback``,
the algorithm list is ``["HS256"]`` only (no ``none``, no RS/HS confusion), and the keys are
``tokens.keys``, never ``auth.jwt``'s.

Claims::

    sub    the client id the token acts for (the events' client_id, rate-limit bucket)
    jti    a random id: the token's own budget and rate limit are kept under it
    iat, exp    issued and expiry (required; exp - iat <= tokens.max_ttl_s)
    evt    the event types it may send (default ["user_feedback"])
    sid, tid    the session id and/or trace id (32 lower-case hex) every event must carry
    max    the most events it may send, in all

Each event a token sends must be of one of ``evt``, and carry ``sid`` as its session id and
``tid`` as its trace id when the token names them (``FeedbackToken.refusal``, which the
pipeline's process stage asks per record: other records of the request still go through).

Rotation: every key in ``tokens.keys`` verifies; ``tokens.signing_key_id`` signs. Add a key and
SIGHUP, sign with it and SIGHUP, remove the old one once its tokens have expired and SIGHUP.

Secrets: a token is a bearer credential; logs and audit lines name it by ``fingerprint``
(its key id and 12 hex digits of its SHA-256), never whole. Pure functions and immutable
objects; thread-safe.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from otlp_feedback.config import TokensConfig
from otlp_feedback.errors import ConfigError, Unauthenticated
from otlp_feedback.events import EVENT_TYPES, FeedbackEvent

TOKEN_TYPE = "feedback-token+jwt"
AUDIENCE = "otlp-feedback:feedback"
ALGORITHM = "HS256"
DEFAULT_EVENT_TYPES = ("user_feedback",)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_ID_LEN = 200


@dataclass(frozen=True, slots=True)
class FeedbackToken:
    """A verified token's claims: who it acts for and what it may send."""

    token_id: str
    key_id: str
    client_id: str
    event_types: frozenset[str]
    session_id: str | None
    trace_id: str | None
    expires_at: int  # Unix seconds
    max_events: int
    fingerprint: str

    def refusal(self, event: FeedbackEvent) -> str | None:
        """Why ``event`` is outside this token's scope, or None when it is inside. The one
        scope rule (the pipeline's ``RecordScope``), asked of every record a token sends."""
        if event.event_type not in self.event_types:
            allowed = ", ".join(sorted(self.event_types))
            return (
                f"out of the feedback token's scope: event type {event.event_type} "
                f"(allowed: {allowed})"
            )
        if self.session_id is not None and event.session_id != self.session_id:
            return "out of the feedback token's scope: the event's session id is not the token's"
        if self.trace_id is not None and event.trace_id != self.trace_id:
            return "out of the feedback token's scope: the event's trace id is not the token's"
        return None


def fingerprint(token: str) -> str:
    """How logs name a token: its key id (when readable) and 12 hex digits of its SHA-256."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        kid = None
    return _fingerprint(kid, token)


def _fingerprint(kid: object, token: str) -> str:
    """``fingerprint`` with the header's ``kid`` already read (``verify`` has it)."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:12]
    return f"{kid if isinstance(kid, str) and len(kid) <= 64 else '?'}:{digest}"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h`` -> seconds. Raises ``ValueError``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: a number of s, m or h (e.g. 15m)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def mint(
    config: TokensConfig,
    *,
    client_id: str,
    session_id: str | None = None,
    trace_id: str | None = None,
    event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
    ttl_s: float | None = None,
    max_events: int | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """A token for ``client_id`` bound to ``session_id`` and/or ``trace_id`` (one at least),
    signed with ``tokens.signing_key_id``. ``ttl_s`` defaults to ``tokens.default_ttl_s`` and
    may not exceed ``tokens.max_ttl_s``; ``max_events`` to ``tokens.default_max_events``, at
    most ``tokens.max_events_limit``.

    Raises ``ConfigError`` when no signing key is configured, ``ValueError`` for a request
    outside those bounds (the message names the bound). Thread-safe.
    """
    if config.signing_key_id is None:
        raise ConfigError("tokens.signing_key_id is not set: no key to sign feedback tokens with")
    types = sorted(set(event_types))
    unknown = [t for t in types if t not in EVENT_TYPES]
    if not types or unknown:
        raise ValueError(
            f"event types must be some of {', '.join(EVENT_TYPES)}; got {unknown or 'none'}"
        )
    if not client_id or len(client_id) > _MAX_ID_LEN:
        raise ValueError(f"client_id must be 1-{_MAX_ID_LEN} characters")
    if session_id is None and trace_id is None:
        raise ValueError("a feedback token is bound to a session id, a trace id, or both")
    if session_id is not None and not 0 < len(session_id) <= _MAX_ID_LEN:
        raise ValueError(f"session_id must be 1-{_MAX_ID_LEN} characters")
    if trace_id is not None:
        trace_id = trace_id.lower()
        if not _TRACE_ID.match(trace_id) or trace_id == "0" * 32:
            raise ValueError("trace_id must be 32 hex digits, not all zero")
    ttl = config.default_ttl_s if ttl_s is None else ttl_s
    if not 0 < ttl <= config.max_ttl_s:
        raise ValueError(f"ttl must be over 0 and at most {config.max_ttl_s:g}s (tokens.max_ttl_s)")
    budget = config.default_max_events if max_events is None else max_events
    if not 1 <= budget <= config.max_events_limit:
        raise ValueError(
            f"max_events must be 1-{config.max_events_limit} (tokens.max_events_limit)"
        )
    now = int(clock())
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "sub": client_id,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + max(1, int(ttl)),
        "evt": types,
        "max": budget,
    }
    if session_id is not None:
        claims["sid"] = session_id
    if trace_id is not None:
        claims["tid"] = trace_id
    key_id = config.signing_key_id
    secret = config.keys[key_id].get_secret_value()
    return jwt.encode(
        claims, secret, algorithm=ALGORITHM, headers={"kid": key_id, "typ": TOKEN_TYPE}
    )


class TokenVerifier:
    """Checks feedback tokens against ``tokens.keys``. Immutable; a reload builds a new one."""

    def __init__(self, config: TokensConfig) -> None:
        self.enabled = config.enabled
        self._keys: Mapping[str, str] = {k: v.get_secret_value() for k, v in config.keys.items()}
        self._max_ttl = config.max_ttl_s
        self._max_events = config.max_events_limit

    @staticmethod
    def is_token(token: str) -> bool:
        """Whether ``token`` claims to be a feedback token (its header's ``typ``; unverified:
        it only chooses which check the token gets)."""
        if token.count(".") != 2:
            return False
        try:
            return jwt.get_unverified_header(token).get("typ") == TOKEN_TYPE
        except jwt.PyJWTError:
            return False

    def verify(self, token: str) -> FeedbackToken:
        """The token's claims. Raises ``Unauthenticated`` (expired, forged, unknown key id,
        malformed); messages never quote the token."""
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if not isinstance(kid, str) or kid not in self._keys:
                raise Unauthenticated("invalid feedback token: unknown key id")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys[kid],
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "sub", "jti", "evt", "max"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid feedback token: {exc}") from exc
        return self._claims(claims, kid, token)

    def _claims(self, claims: dict[str, Any], kid: str, token: str) -> FeedbackToken:
        # Signed by us, so malformed claims mean a bug or a leaked key: refuse all the same.
        sub, jti, evt, budget = claims["sub"], claims["jti"], claims["evt"], claims["max"]
        sid, tid = claims.get("sid"), claims.get("tid")
        exp, iat = claims["exp"], claims["iat"]
        well_formed = (
            isinstance(sub, str)
            and 0 < len(sub) <= _MAX_ID_LEN
            and isinstance(jti, str)
            and isinstance(evt, list)
            and all(isinstance(t, str) for t in evt)
            and type(budget) is int
            and 1 <= budget <= self._max_events
            and (sid is None or isinstance(sid, str))
            and (tid is None or isinstance(tid, str))
            and (sid is not None or tid is not None)
            and isinstance(exp, int)
            and isinstance(iat, int)
        )
        if not well_formed:
            raise Unauthenticated("invalid feedback token: malformed claims")
        if exp - iat > self._max_ttl:
            raise Unauthenticated("invalid feedback token: lifetime over tokens.max_ttl_s")
        return FeedbackToken(
            token_id=jti,
            key_id=kid,
            client_id=sub,
            event_types=frozenset(evt),
            session_id=sid,
            trace_id=tid,
            expires_at=exp,
            max_events=budget,
            fingerprint=_fingerprint(kid, token),
        )
