"""The contract every sink keeps.

``deliver`` returns only when every record is confirmed by the destination, or raises:
``DeliveryTimeout``/``SinkUnavailable`` (retryable: the caller answers UNAVAILABLE so the client
retries) or ``DeliveryFailed`` (permanent, naming the records refused).

Lifecycle, as in the OTel Collector: ``start`` returns quickly, even with the destination down
(what needs it, e.g. creating topics, is retried in the background, ``backoff.retry_until``);
``shutdown`` is idempotent, safe before ``start``, interrupts those retries and any wait on
the destination at once, and flushes within its deadline; ``force_flush(timeout) -> bool``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from otlp_feedback.encoding.outbound import OutboundRecord


class Sink(Protocol):
    def start(self) -> None: ...

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        """Block until all ``records`` are confirmed, or raise (see module docstring)."""
        ...

    def force_flush(self, timeout: float) -> bool: ...

    def shutdown(self, timeout: float) -> None: ...
