"""Dead letters keep everything needed to replay a record, and always fit Kafka."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from otlp_feedback.encoding.dead_letter import MAX_VALUE_CHARS, DeadLetter, from_value, to_outbound
from otlp_feedback.errors import InvalidRequest
from otlp_feedback.mapping.records import SourceRecord, raw_from_source

SOURCE = SourceRecord(
    event_name="feedback.user_feedback",
    event_type="user_feedback",
    carrier="span_event",
    record_attributes={
        "session.id": "s-1",
        "feedback.rating": 9,
        "blob": b"\x00\xff",
        "score": math.inf,
        "nested": {"a": [1, 2.5, True, None]},
    },
    span_attributes={"gen_ai.request.model": "m"},
    resource_attributes={"service.name": "shop"},
    body_text=None,
    time_ns=1_764_000_000_000_000_000,
    trace_id=b"\x01" * 16,
    span_id=b"\x02" * 8,
)


def test_a_dead_letter_round_trips_every_field_with_types() -> None:
    letter = DeadLetter("feedback.rating: too high", "spans[0].events[1]", "ev-1", SOURCE, 2)
    record = to_outbound(letter, "feedback.dlq")

    assert (record.topic, record.key, record.event_id) == ("feedback.dlq", b"ev-1", "ev-1")
    assert dict(record.headers) == {
        "reason": b"feedback.rating: too high",
        "carrier": b"span_event",
        "source_service": b"shop",
        "event_type": b"user_feedback",
        "replay_count": b"2",
    }
    json.loads(record.value)  # strict JSON: no NaN/Infinity literals
    assert b"Infinity" not in record.value
    assert from_value(record.value) == letter


def test_huge_values_are_cut_so_the_letter_stays_deliverable() -> None:
    huge = replace(SOURCE, record_attributes={"comment": "x" * 10**7})
    record = to_outbound(DeadLetter("too long", "log_records[0]", None, huge), "dlq")

    assert len(record.value) < 2 * MAX_VALUE_CHARS
    assert json.loads(record.value)["attributes"]["comment"]["length"] == 10**7
    assert from_value(record.value).source.record_attributes["comment"] == "x" * MAX_VALUE_CHARS


def test_replaying_a_letter_keeps_the_original_event_id() -> None:
    raw = raw_from_source(SOURCE, "spans[0].events[1]", "ev-1")
    assert raw.fields["event_id"] == "ev-1"
    assert raw.fields["session_id"] == "s-1" and raw.fields["trace_id"] == "01" * 16


@pytest.mark.parametrize("value", [b"not json", b"{}", b'{"event_type": "nope"}'])
def test_anything_else_is_not_a_dead_letter(value: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a dead letter"):
        from_value(value)
