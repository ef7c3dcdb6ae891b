"""The audit log: one JSON line per refused Export (authentication failure, permission denial,
rate-limit hit, a feedback token's spent budget) and per feedback token minted over HTTP, on
the ``otlp_feedback.audit`` logger, kept apart from the application log.

``configure_audit_logging(config)`` (called by the CLI next to ``configure_logging``) gives that
logger its own handler, appending to ``audit.path`` or else writing to its own stderr stream,
and stops propagation: audit lines never mix into the application log, and the application's
``log_level`` never drops them. Without it (tests, embedding) the lines propagate like any log.

A line looks like::

    {"ts": "2026-01-05T10:00:00.123456+00:00", "event": "unauthenticated", "client": null,
     "peer": "ipv4:10.0.0.7:51234",
     "method": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
     "reason": "invalid token: Signature has expired"}

(one line in the file; wrapped here).

Reasons come from ``Unauthenticated``/``PermissionDenied``/``RateLimited`` messages, which never
quote a credential. A feedback token is named by ``"token": "<key id>:<12 hex of its SHA-256>"``
(``tokens.fingerprint``), never whole.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler

from otlp_feedback.config import AuditConfig
from otlp_feedback.errors import ConfigError

AUDIT_LOGGER = "otlp_feedback.audit"


class AuditLog:
    """Writes audit entries. Thread-safe (``logging`` is); never raises into the caller."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)
        self._clock = clock

    def refused(
        self,
        event: str,
        *,
        client: str | None,
        peer: str,
        method: str,
        reason: str,
        **extra: object,
    ) -> None:
        """Record one refused request. ``event``: unauthenticated | permission_denied |
        rate_limited | budget_spent; ``extra`` adds fields (e.g. ``events``, ``retry_after_s``)."""
        self._write(event, client=client, peer=peer, method=method, reason=reason, **extra)

    def minted(self, *, client: str | None, peer: str, method: str, **extra: object) -> None:
        """Record one feedback token minted (``extra``: its fingerprint, expiry, budget)."""
        self._write("token_minted", client=client, peer=peer, method=method, **extra)

    def _write(self, event: str, **fields: object) -> None:
        """One line: the time, the event, then ``fields`` in the order given."""
        entry = {"ts": datetime.fromtimestamp(self._clock(), UTC).isoformat(), "event": event}
        self._logger.warning(json.dumps({**entry, **fields}, default=str))


def configure_audit_logging(config: AuditConfig) -> logging.Handler:
    """Give the audit logger its own handler (replacing an earlier one) and stop propagation.

    Raises ``ConfigError`` if ``audit.path`` cannot be opened for appending.
    """
    handler: logging.Handler
    if not config.enabled:
        handler = logging.NullHandler()
    elif config.path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            # Watched: a log rotator may move the file away; the next line reopens the path.
            handler = WatchedFileHandler(config.path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"audit.path: cannot open {config.path}: {exc}") from exc
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(AUDIT_LOGGER)
    for old in logger.handlers:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
