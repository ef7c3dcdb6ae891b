"""End to end against the real broker and registry: PII seeded into feedback never reaches
Kafka, in event topics or the dead-letter topic, in values or headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from harness import read_raw
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
US_PHONE = "(415) 555-2671"
CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"
IP = "203.0.113.7"
SEEDED = [EMAIL, PHONE, US_PHONE, CARD, CARD.replace(" ", ""), SSN, IP]


def leaks(raw_bytes: list[bytes]) -> list[str]:
    return [seed for seed in SEEDED for blob in raw_bytes if seed.encode() in blob]


def test_no_seeded_email_phone_card_ssn_or_ip_reaches_kafka(
    app: FeedbackApp,
    settings: Settings,
    kafka_reader: Callable[[int], list[dict[str, Any]]],
) -> None:
    records = [
        make_log_record(
            "feedback.user_feedback",
            {
                "session.id": "s-1",
                "feedback.rating": 1,
                "app.user_message": f"my card is {CARD}, call {US_PHONE}",
                "app.search_query": f"ssn {SSN} from {IP}",
                "app.order_id": "1234567890123",  # not PII, and not a free-text key
            },
            body=f"Call me on {PHONE} or mail {EMAIL}",
        ),
        make_log_record(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.4,
                "gen_ai.evaluation.explanation": f"{EMAIL} asked about card {CARD}",
            },
        ),
        # Rejected (no session.id): dead-lettered with the record as sent, minus the PII.
        make_log_record(
            "feedback.user_feedback", {"feedback.comment": f"{EMAIL} / {PHONE} / {SSN}"}
        ),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        response = LogsServiceStub(channel).Export(logs_request(records), timeout=30)
    assert response.partial_success.rejected_log_records == 1

    events = kafka_reader(2)
    assert settings.kafka.dlq_topic is not None
    (letter,) = read_raw(settings, settings.kafka.dlq_topic, 1)

    blobs = [e["raw"] for e in events] + [letter.value()]
    blobs += [value for e in events for value in e["headers"].values()]
    blobs += [value for _, value in letter.headers() or []]
    assert not leaks(blobs)

    by_type = {e["headers"]["event_type"]: e for e in events}
    feedback = by_type[b"user_feedback"]
    assert feedback["value"]["comment"] == "Call me on [PHONE] or mail [EMAIL]"
    assert feedback["value"]["attributes"] == {
        "app.user_message": "my card is [CARD], call [PHONE]",
        "app.search_query": "ssn [SSN] from [IP]",
        "app.order_id": "1234567890123",
    }
    assert feedback["headers"]["redacted"] == (
        b"comment,attributes.app.user_message,attributes.app.search_query"
    )
    assert feedback["value"]["redacted_fields"] == [
        "comment", "attributes.app.user_message", "attributes.app.search_query"
    ]  # fmt: skip
    evaluation = by_type[b"model_response"]
    assert evaluation["value"]["explanation"] == "[EMAIL] asked about card [CARD]"
    assert evaluation["headers"]["redacted"] == b"explanation"
    assert evaluation["value"]["redacted_fields"] == ["explanation"]
    assert b"[EMAIL] / [PHONE] / [SSN]" in letter.value()
