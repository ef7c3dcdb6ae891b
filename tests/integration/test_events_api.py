"""The events API (``POST /api/v1/events``) against the real broker and registry, driven by curl:
the README's examples run as written (one event; a list mixing good and bad), and one event
carrying every field a sender may set, each read back from Kafka with confluent-kafka's
AvroDeserializer and the registry, field by field, with the dead letters of the bad ones."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import read_raw

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.mapping.records import deterministic_event_id

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def readme_examples() -> list[tuple[str, str]]:
    """The events API section's ``sh`` blocks: (the curl command, the answer its ``# `` line
    shows)."""
    text = README.read_text()
    section = text.split("## The events API", 1)[1].split("\n## ", 1)[0]
    examples = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        command, _, shown = block.rstrip("\n").rpartition("\n# ")
        examples.append((command, shown))
    assert len(examples) == 2, "the README's events API section changed: update this test"
    return examples


def run_curl(command: str, port: int) -> str:
    """``command`` as the README writes it, aimed at this test's port."""
    assert "localhost:4318" in command
    done = subprocess.run(
        ["bash", "-c", command.replace("localhost:4318", f"127.0.0.1:{port}")],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode()


def content_id(event_type: str, sent: dict[str, Any], service: str = "") -> str:
    """The id an event sent without ``event_id`` gets: the OTLP records' content hash over its
    canonical JSON."""
    canonical = json.dumps(sent, sort_keys=True, separators=(",", ":")).encode()
    ids = (bytes.fromhex(sent.get("trace_id", "")), bytes.fromhex(sent.get("span_id", "")))
    return deterministic_event_id(event_type.encode(), service.encode(), *ids, canonical)


def test_the_readme_examples_run_as_written_and_reach_kafka_field_by_field(
    app: FeedbackApp, settings: Settings, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    (one, one_shown), (mixed, mixed_shown) = readme_examples()
    assert json.loads(run_curl(one, app.http_port)) == json.loads(one_shown)
    assert json.loads(run_curl(mixed, app.http_port)) == json.loads(mixed_shown)

    records = sorted(kafka_reader(2), key=lambda r: r["value"]["session_id"])
    assert len(records) == 2  # nothing of the bad ones reached an event topic
    first, second = records
    sent = {
        "event_type": "user_feedback",
        "session_id": "s-1",
        "thumbs": "down",
        "comment": "the total is wrong",
    }
    for record, session in ((first, "s-1"), (second, "s-2")):
        assert record["topic"] == settings.kafka.topic_for("user_feedback")
        assert record["key"] == session.encode()
        assert record["headers"]["event_type"] == b"user_feedback"
        assert record["headers"]["event_id"] == record["value"]["event_id"].encode()
        assert "client_id" not in record["headers"]  # auth is off
        v = record["value"]
        assert v["timestamp"] == v["received_at"]  # none sent: the receive time
        assert datetime.now(UTC) - v["received_at"] < timedelta(minutes=10)
    expected_first = {
        "event_id": content_id("user_feedback", sent),
        "carrier": "events_api",
        "service": None,
        "environment": None,
        "trace_id": None,
        "span_id": None,
        "request_id": None,
        "session_id": "s-1",
        "user_id": None,
        "attributes": {},
        "client_id": None,
        "redacted_fields": [],
        "rating": None,
        "thumbs": "down",
        "comment": "the total is wrong",
        "tags": [],
    }
    expected_second = {
        **expected_first,
        "event_id": "fb-2",
        "session_id": "s-2",
        "rating": 4.5,
        "thumbs": None,
        "comment": None,
        "tags": ["pricing"],
    }
    for record, expected in ((first, expected_first), (second, expected_second)):
        times = {k: record["value"][k] for k in ("timestamp", "received_at")}
        assert record["value"] == {**expected, **times}

    assert settings.kafka.dlq_topic is not None
    letters = read_raw(settings, settings.kafka.dlq_topic, 2)
    by_type = {dict(m.headers())["event_type"]: m for m in letters}
    rating = json.loads(by_type[b"user_feedback"].value())
    carrier = json.loads(by_type[b"performance_metrics"].value())
    assert dict(by_type[b"user_feedback"].headers())["carrier"] == b"events_api"
    assert (rating["location"], rating["carrier"]) == ("events[1]", "events_api")
    assert rating["reason"] == "rating: expected a number (double or int), got a string ('5')"
    assert rating["attributes"] == {
        "event_type": "user_feedback",
        "session_id": "s-3",
        "rating": "5",
    }
    assert carrier["reason"] == "carrier is set by the receiver, not by the sender"
    assert carrier["attributes"]["carrier"] == "log_record"


def test_one_event_with_every_field_a_sender_may_set_reaches_kafka_as_sent(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    sent_at = datetime.now(UTC).replace(microsecond=250_000) - timedelta(minutes=1)
    event = {
        "event_type": "user_feedback",
        "event_id": "fb-every-field",
        "timestamp": sent_at.isoformat().replace("+00:00", "Z"),
        "session_id": "s-9",
        "user_id": 42,  # an int where text goes: its decimal text, as over OTLP
        "request_id": "chatcmpl-7",
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "service": "checkout-web",
        "environment": "prod",
        "attributes": {"page": "/cart", "ab_bucket": 3, "user_message": "mail jane@example.com"},
        "rating": 1,
        "thumbs": "down",
        "comment": "write to jane.doe@example.com",
        "tags": ["pricing", "cart"],
    }
    command = (
        f"curl -sS -X POST 127.0.0.1:{app.http_port}/api/v1/events "
        "-H 'Content-Type: application/json' --data-binary @-"
    )
    done = subprocess.run(
        ["bash", "-c", command],
        input=json.dumps(event).encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == {"accepted": 1, "rejected": []}
    (record,) = kafka_reader(1)

    assert record["key"] == b"s-9"
    assert record["headers"]["trace_id"] == TRACE_ID.encode()
    assert record["headers"]["redacted"] == b"comment,attributes.user_message"
    v = record["value"]
    assert datetime.now(UTC) - v["received_at"] < timedelta(minutes=10)
    assert v == {
        "event_id": "fb-every-field",
        "timestamp": sent_at,
        "received_at": v["received_at"],
        "carrier": "events_api",
        "service": "checkout-web",
        "environment": "prod",
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "request_id": "chatcmpl-7",
        "session_id": "s-9",
        "user_id": "42",
        "attributes": {"page": "/cart", "ab_bucket": "3", "user_message": "mail [EMAIL]"},
        "client_id": None,
        "redacted_fields": ["comment", "attributes.user_message"],
        "rating": 1.0,
        "thumbs": "down",
        "comment": "write to [EMAIL]",
        "tags": ["pricing", "cart"],
    }
