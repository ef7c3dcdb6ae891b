"""Dead letters keep everything needed to replay a record, never quote PII, and always fit
Kafka."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace

import pytest

from otlp_feedback.config import RedactionConfig
from otlp_feedback.encoding.dead_letter import MAX_VALUE_CHARS, DeadLetter, from_value, to_outbound
from otlp_feedback.encoding.outbound import RECEIVER_HEADERS
from otlp_feedback.errors import InvalidRequest
from otlp_feedback.mapping.attributes import AttrValue
from otlp_feedback.mapping.records import SourceRecord, raw_from_source
from otlp_feedback.validation.redaction import Redactor

REDACTOR = Redactor(RedactionConfig())
MAX_BYTES = 1_000_000
CARD = "4111 1111 1111 1111"

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
    record = to_outbound(letter, "feedback.dlq", REDACTOR, MAX_BYTES)

    assert (record.topic, record.key, record.event_id) == ("feedback.dlq", b"ev-1", "ev-1")
    assert dict(record.headers) == {
        "reason": b"feedback.rating: too high",
        "carrier": b"span_event",
        "source_service": b"shop",
        "event_type": b"user_feedback",
        "replay_count": b"2",
        **dict(RECEIVER_HEADERS),
    }
    json.loads(record.value)  # strict JSON: no NaN/Infinity literals
    assert b"Infinity" not in record.value
    assert from_value(record.value) == letter


def test_huge_values_are_cut_so_the_letter_stays_deliverable() -> None:
    huge = replace(SOURCE, record_attributes={"comment": "x" * 10**7})
    record = to_outbound(
        DeadLetter("too long", "log_records[0]", None, huge), "dlq", REDACTOR, MAX_BYTES
    )

    assert len(record.value) < 2 * MAX_VALUE_CHARS
    cut = json.loads(record.value)["attributes"]["comment"]
    assert cut["length"] == 10**7
    assert cut["sha256"] == hashlib.sha256(b"x" * 10**7).hexdigest()
    # One token longer than the margin holds no item: it is kept as cut.
    assert from_value(record.value).source.record_attributes["comment"] == "x" * MAX_VALUE_CHARS


@pytest.mark.parametrize("offset", range(0, len(CARD) + 2))
def test_a_cut_through_a_card_number_leaves_no_fragment_of_it(offset: int) -> None:
    # The cut falls at every position of the card: the window is scrubbed before the cut.
    text = "y" * (MAX_VALUE_CHARS - offset) + " " + CARD + " and more " + "z" * 40_000
    for where in ("body", "comment"):
        src = replace(SOURCE, body_text=text if where == "body" else None,
                      record_attributes={"feedback.comment": text})  # fmt: skip
        record = to_outbound(DeadLetter("r", "l", None, src), "dlq", REDACTOR, MAX_BYTES)
        assert b"4111" not in record.value and b"1111" not in record.value


def test_values_redaction_does_not_cover_are_kept_as_sent() -> None:
    src = replace(SOURCE, record_attributes={"order": CARD, "feedback.comment": CARD})
    record = to_outbound(DeadLetter("r", "l", None, src), "dlq", REDACTOR, MAX_BYTES)
    attributes = from_value(record.value).source.record_attributes
    assert attributes == {"order": CARD, "feedback.comment": "[CARD]"}


@pytest.mark.parametrize("max_bytes", [1024, 4096, 50_000, 1_000_000])
@pytest.mark.parametrize("shape", ["one huge value", "many values", "huge key set"])
def test_a_dead_letter_always_fits_message_max_bytes(max_bytes: int, shape: str) -> None:
    attributes: dict[str, AttrValue] = {
        "one huge value": {"comment": "word " * 3_000_000},
        "many values": {f"k{i}": "v" * 20_000 for i in range(100)},
        "huge key set": {f"key-{i:06d}": i for i in range(50_000)},
    }[shape]
    src = replace(SOURCE, record_attributes=attributes, body_text="b" * 10**6)
    record = to_outbound(
        DeadLetter("reason " * 300, "log_records[0]", "ev-1", src), "dlq", REDACTOR, max_bytes
    )
    size = (
        len(record.value) + len(record.key or b"") + sum(len(k) + len(v) for k, v in record.headers)
    )
    assert size <= max_bytes
    body = json.loads(record.value)
    assert body["body"]["length"] == 10**6  # the letter says what was cut
    letter = from_value(record.value)  # and is still a letter dlq replay can read
    assert letter.event_id == "ev-1"
    if "fitted" in body:
        assert (
            body["fitted"]["max_value_chars"] < MAX_VALUE_CHARS
            or body["fitted"]["attributes_dropped"]
        )


def test_replaying_a_letter_keeps_the_original_event_id() -> None:
    raw = raw_from_source(SOURCE, "spans[0].events[1]", "ev-1")
    assert raw.fields["event_id"] == "ev-1"
    assert raw.fields["session_id"] == "s-1" and raw.fields["trace_id"] == "01" * 16


@pytest.mark.parametrize("value", [b"not json", b"{}", b'{"event_type": "nope"}'])
def test_anything_else_is_not_a_dead_letter(value: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a dead letter"):
        from_value(value)
