"""The real OTel Python SDK exporter follows the delay our RetryInfo advises.

The receiver runs in-process (``run_receiver``) with a sink that refuses the first delivery with a
retryable error; a real ``OTLPLogExporter`` exports to it. The SDK's own first backoff is
``2**0 * uniform(0.8, 1.2)`` (at most 1.2 s); we advise 2.5 s. A retry that reaches the receiver
2.5 s or more after the refused attempt can only come from our RetryInfo, which the SDK reads
from the ``google.rpc.retryinfo-bin`` trailer alone. Only a lower bound is asserted: the SDK
sleeps on an Event with a timeout, which never returns early, so the test cannot flake on a slow
machine. No broker is needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from harness import sdk_log_records
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs.export import (
    LogRecordExportResult,
)

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import BackpressureError, RetryableError, SinkUnavailable
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import run_receiver

pytestmark = pytest.mark.integration

ADVISED_DELAY_S = 2.5
SDK_FIRST_BACKOFF_MAX_S = 1.2  # 2**0 * uniform(0.8, 1.2) in OTLPExporterMixin._export


class RefusesTheFirstDelivery(InMemorySink):
    """Raises ``refusal`` on the first ``deliver``, confirms after; notes when each one came."""

    def __init__(self, refusal: RetryableError) -> None:
        super().__init__()
        self.attempts: list[float] = []  # time.monotonic() at each deliver
        self._refusal = refusal

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        self.attempts.append(time.monotonic())
        if len(self.attempts) == 1:
            raise self._refusal
        super().deliver(records, timeout)


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(SinkUnavailable("broker down", retry_after=ADVISED_DELAY_S), id="UNAVAILABLE"),
        pytest.param(
            BackpressureError("budget full", retry_after=ADVISED_DELAY_S), id="RESOURCE_EXHAUSTED"
        ),
    ],
)
def test_the_python_sdk_waits_the_advised_retry_delay_before_resending(
    refusal: RetryableError,
) -> None:
    assert SDK_FIRST_BACKOFF_MAX_S < ADVISED_DELAY_S  # else the SDK's own backoff could pass
    records = sdk_log_records("sess-retry")
    sink = RefusesTheFirstDelivery(refusal)
    with run_receiver(sink=sink) as app:
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{app.port}", insecure=True, timeout=10)
        try:
            result = exporter.export(records)
        finally:
            exporter.shutdown()
    assert result == LogRecordExportResult.SUCCESS
    assert len(sink.attempts) == 2  # refused once, then accepted
    assert [record.event_type for record in sink.records] == ["user_feedback"]
    refused_at, retried_at = sink.attempts
    assert retried_at - refused_at >= ADVISED_DELAY_S
