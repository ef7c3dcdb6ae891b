"""Who is calling: bearer credentials in gRPC metadata or HTTP headers -> a ``Principal``.

Credentials arrive as ``authorization: Bearer <token>`` (gRPC metadata, or the HTTP header on the
OTLP/HTTP port and the events API), which is what OTel SDK exporters
send with ``headers={"authorization": "Bearer <token>"}`` or
``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>``. Two kinds, chosen by ``auth.mode``:

- static API keys, kept in the config only as SHA-256 hex digests, each naming a client id;
- JWTs, HS256 (shared secret) or RS256 (public key file): signature, ``exp``, ``iss`` and ``aud``
  are checked, the client id is ``sub``, and the required scope must be in ``scope``
  (space-separated) or ``scp`` (a list).

And, whatever ``auth.mode`` says, browser feedback tokens (``otlp_feedback.tokens``) once
``tokens.signing_key_id`` is set: a bearer whose JWT header says ``typ: feedback-token+jwt`` is
checked against ``tokens.keys`` only (never taken for an API key or an ``auth.jwt`` token), and
the ``Principal`` carries its claims (the scope its records are held to, its budget).

Scopes: a request needs ``feedback:write`` (sending; for JWTs ``auth.jwt.required_scope``) or
``feedback:mint`` (``POST /v1/feedback-tokens``). API keys have ``scopes`` (default
``["feedback:write"]``); JWTs their ``scope``/``scp`` claim; a feedback token writes only.
With ``auth.mode: none`` everyone writes, and nobody mints.

``Authenticator.authenticate`` is called by the Export handlers (through ``guard``) before the
request is decoded. It raises ``Unauthenticated`` for missing or bad credentials and
``PermissionDenied`` for a valid token without the scope; messages never repeat the credential.
Thread-safe (immutable after init).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from otlp_feedback.config import AuthConfig, JwtConfig, TokensConfig
from otlp_feedback.errors import ConfigError, PermissionDenied, Unauthenticated
from otlp_feedback.tokens import FeedbackToken, TokenVerifier

# A client id becomes a Kafka header and a metrics label: keep it a sane size.
_MAX_CLIENT_ID_LEN = 200


Scope = Literal["feedback:write", "feedback:mint"]
WRITE: Final = "feedback:write"
MINT: Final = "feedback:mint"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    client_id: str
    method: Literal["api_key", "jwt", "feedback_token"]
    token: FeedbackToken | None = None  # the claims, for a feedback token


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest stored in ``auth.api_keys[].key_sha256`` for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(headers: Iterable[tuple[str, str | bytes]]) -> str:
    """The token of the one ``authorization: Bearer <token>`` entry among ``headers`` (gRPC
    metadata or HTTP headers). Raises ``Unauthenticated``."""
    values = [value for key, value in headers if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated(
            "missing credentials: send 'authorization: Bearer <token>' "
            "(an HTTP header, or gRPC metadata)"
        )
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header (or gRPC metadata entry)")
    value = values[0]
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("the authorization scheme must be Bearer")
    token = token.strip()
    if not token:
        raise Unauthenticated("empty bearer token")
    return token


def feedback_bearer(headers: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The bearer of ``headers`` if it claims to be a feedback token (``TokenVerifier.is_token``,
    unverified), else None: no usable bearer, or another kind of credential."""
    try:
        token = bearer_token(headers)
    except Unauthenticated:
        return None
    return token if TokenVerifier.is_token(token) else None


class Authenticator:
    """Checks the credentials of one request against ``auth``."""

    def __init__(self, config: AuthConfig, tokens: TokensConfig | None = None) -> None:
        """Raises ``ConfigError`` if the JWT public key file cannot be read or is not RSA."""
        self.mode = config.mode
        use_keys = config.mode in ("api_key", "any")
        use_jwt = config.mode in ("jwt", "any")
        self._key_by_hash = {k.key_sha256: k for k in config.api_keys} if use_keys else {}
        self._jwt = _JwtVerifier(config.jwt) if use_jwt else None
        verifier = TokenVerifier(tokens) if tokens is not None and tokens.enabled else None
        self._tokens = verifier

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def authenticate(
        self, headers: Iterable[tuple[str, str | bytes]], scope: Scope = WRITE
    ) -> Principal | None:
        """The caller, or None when ``auth.mode`` is ``none`` and the request carries no
        feedback token (everyone is let in to write). ``scope``: what the request does.

        Raises ``Unauthenticated`` or ``PermissionDenied``.
        """
        if self.mode == "none":
            # A feedback token is checked as one; anything else is let in as before.
            token = feedback_bearer(headers) if self._tokens is not None else None
            if token is None:
                if scope != WRITE:
                    raise PermissionDenied(f"{scope} needs an authenticated caller (auth.mode)")
                return None
        else:
            token = bearer_token(headers)
        if self._tokens is not None and self._tokens.is_token(token):
            if scope != WRITE:
                raise PermissionDenied(f"a feedback token cannot be used for {scope}")
            claims = self._tokens.verify(token)
            return Principal(claims.client_id, "feedback_token", claims)
        if self._key_by_hash:
            # Looking up the digest (not the key) leaks nothing useful through timing: a caller
            # cannot steer the digest of what it sends towards a stored one.
            key = self._key_by_hash.get(hash_api_key(token))
            if key is not None:
                if scope not in key.scopes:
                    raise PermissionDenied(
                        f"API key of {key.client_id!r} lacks the scope {scope!r}"
                    )
                return Principal(key.client_id, "api_key")
            if self._jwt is None or token.count(".") != 2:
                raise Unauthenticated("unknown API key")
        assert self._jwt is not None  # mode jwt, or mode any with a JWT-shaped token
        return self._jwt.verify(token, scope)


class _JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self._algorithm = config.algorithm
        self._key: str | RSAPublicKey = (
            config.secret.get_secret_value()
            if config.secret is not None
            else _load_rsa_public_key(config)
        )
        assert config.issuer is not None and config.audience is not None  # config checks it
        self._issuer = config.issuer
        self._audience = config.audience
        self._scope = config.required_scope
        self._leeway = config.leeway_s

    def verify(self, token: str, scope: Scope = WRITE) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],  # pinned: no "alg: none", no HS/RS confusion
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            # PyJWT's messages ("Signature has expired", "Invalid issuer") never quote the token.
            raise Unauthenticated(f"invalid token: {exc}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_CLIENT_ID_LEN:
            raise Unauthenticated(f"invalid token: sub must be 1-{_MAX_CLIENT_ID_LEN} characters")
        needed = self._scope if scope == WRITE else scope
        if needed not in _scopes(claims):
            raise PermissionDenied(f"token of {subject!r} lacks the scope {needed!r}")
        return Principal(subject, "jwt")


def _scopes(claims: dict[str, Any]) -> set[str]:
    """Scopes from ``scope`` (RFC 8693: space-separated) and ``scp`` (a list, or a string)."""
    found: set[str] = set()
    for claim in (claims.get("scope"), claims.get("scp")):
        if isinstance(claim, str):
            found.update(claim.split())
        elif isinstance(claim, list):
            found.update(s for s in claim if isinstance(s, str))
    return found


def _load_rsa_public_key(config: JwtConfig) -> RSAPublicKey:
    path = config.public_key_file
    assert path is not None
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"auth.jwt.public_key_file: cannot load {path}: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"auth.jwt.public_key_file: {path} is not an RSA public key (RS256)")
    return key
