"""A sink that keeps records in a list: the test double for unit tests (no broker needed)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import SinkUnavailable


class InMemorySink:
    """Confirms every record at once. Set ``fail_with`` to make ``deliver`` raise instead."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []
        self.fail_with: Exception | None = None
        self.started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self.started = True

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        if not self.started:
            raise SinkUnavailable("sink not started")
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.records.extend(records)

    def force_flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float) -> None:
        self.started = False

    def __enter__(self) -> InMemorySink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(1.0)
