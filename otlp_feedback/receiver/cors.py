"""CORS for the OTLP/HTTP port, so a web page on another origin may send feedback.

``receiver.http.cors`` (``CorsConfig``) lists the origins allowed: exact ones
(``https://app.example.com``, ``http://localhost:3000``) and one-level-or-deeper wildcards
(``https://*.example.com``: any subdomain of ``example.com`` over https on the default port,
never ``example.com`` itself). Empty (the default) turns CORS off: no CORS header is ever
written and ``OPTIONS`` is a 405 like any other method, exactly as before.

What the port answers, once an origin is allowed (the Fetch standard's CORS protocol):

- a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered
  204 by the event loop, before any worker, guard or pipeline sees it, with the allowed method
  (POST), the allowed request headers and ``Access-Control-Max-Age``; a preflight from an origin
  not allowed is 403 with no CORS header, so the browser never sends the request;
- every other answer to an allowed origin (errors included, so a page can read a 401 or a 429)
  carries ``Access-Control-Allow-Origin: <that origin>``, ``Vary: Origin`` and exposes
  ``Retry-After``; to any other origin, no CORS header (the browser hides the answer).

No credentials mode: ``Access-Control-Allow-Credentials`` is never sent, so a browser sends no
cookies and the page authenticates with ``Authorization: Bearer`` (a feedback token) only. CORS
is a browser's rule, not access control: a request from a disallowed origin is still
authenticated and processed as any non-browser client's would be (curl sends no Origin).

Pure and immutable: ``CorsPolicy`` is built once from the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from otlp_feedback.config import ORIGIN, CorsConfig

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: str | None


def parse_origin(origin: str) -> _Origin | None:
    """``scheme://host[:port]`` as its parts, or None if ``origin`` is not one (``null``,
    paths, userinfo, other schemes). Case-insensitive, as origins are."""
    match = ORIGIN.match(origin.strip().lower())
    if match is None:
        return None
    return _Origin(match[1], match[2], match[3])


class CorsPolicy:
    """Which origins may read this port's answers, and the headers that say so."""

    def __init__(self, config: CorsConfig) -> None:
        exact: set[str] = set()
        wildcards: list[_Origin] = []
        for entry in config.allowed_origins:
            if "://*." in entry:
                parsed = parse_origin(entry.replace("://*.", "://", 1))
                assert parsed is not None  # the config checked it
                wildcards.append(parsed)
            else:
                exact.add(entry)
        self._exact = frozenset(exact)
        self._wildcards = tuple(wildcards)
        self.enabled = bool(config.allowed_origins)
        self._preflight: tuple[Header, ...] = (
            (b"access-control-allow-methods", b"POST"),
            (b"access-control-allow-headers", ", ".join(config.allowed_headers).encode()),
            (b"access-control-max-age", str(config.max_age_s).encode()),
        )

    def allows(self, origin: str | None) -> bool:
        """Whether a page on ``origin`` (the request's ``Origin`` header) may read answers."""
        if not self.enabled or not origin:
            return False
        if origin in self._exact:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        for pattern in self._wildcards:
            if parsed.scheme != pattern.scheme or parsed.port != pattern.port:
                continue
            # One or more whole labels, then the pattern's domain: a suffix match on
            # "." + domain, so "example.com.attacker.net" and "badexample.com" never pass.
            if parsed.host.endswith("." + pattern.host) and not parsed.host.startswith("["):
                return True
        return False

    def headers(self, origin: str | None) -> list[Header]:
        """The CORS headers of an ordinary answer to a request from ``origin`` (none when it is
        not allowed). ``Vary: Origin`` because the answer differs by origin (caches)."""
        if not self.allows(origin):
            return []
        assert origin is not None
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", b"Retry-After"),
            (b"vary", b"Origin"),
        ]

    def preflight_headers(self, origin: str | None) -> list[Header] | None:
        """The headers of a 204 preflight answer, or None when ``origin`` is not allowed."""
        if not self.allows(origin):
            return None
        return [*self.headers(origin), *self._preflight]
