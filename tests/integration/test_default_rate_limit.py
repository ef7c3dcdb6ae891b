"""The default rate limit never throttles an unauthenticated sender (issue 14 item 1): a
sidecar or collector gateway with ``auth.mode: none`` sends everything from one address, and
the old default (1,000 events/s, burst 2,000 per peer address) refused it. The records read
back also carry the receiver's lineage headers (item 11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.encoding.outbound import RECEIVER_HEADERS

pytestmark = pytest.mark.integration

EVENTS = 3000  # over the old default's burst of 2,000 from one address


def test_the_sdk_sends_3000_events_at_once_without_auth_and_all_reach_kafka(
    settings: Settings, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    assert settings.auth.mode == "none" and settings.rate_limit.anonymous is None  # the defaults
    with FeedbackApp(settings) as app:
        provider = LoggerProvider(resource=Resource.create({"service.name": "gateway"}))
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{app.port}", insecure=True)
        # Room for every event in the SDK's queue: none is dropped before it is sent.
        provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, max_queue_size=EVENTS, max_export_batch_size=500)
        )
        logger = provider.get_logger("load")
        for n in range(EVENTS):
            logger.emit(
                event_name="feedback.user_feedback",
                attributes={"event.id": f"burst-{n}", "session.id": "s", "feedback.rating": 5},
            )
        assert provider.force_flush(120_000)
        provider.shutdown()
        metrics = app.telemetry.exposition().decode()
    # Not one request was refused (the SDK would have waited and retried, hiding it).
    assert "otlp_feedback_rate_limited_total{" not in metrics
    records = kafka_reader(EVENTS, timeout=60)
    assert {r["value"]["event_id"] for r in records} == {f"burst-{n}" for n in range(EVENTS)}
    # Lineage (issue 14 item 11): every record names the receiver run and version that wrote it,
    # here through the native path (SDK log records) and a real broker.
    assert {tuple(list(r["headers"].items())[-2:]) for r in records} == {RECEIVER_HEADERS}
