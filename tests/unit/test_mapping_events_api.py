"""The events API's mapping: typed JSON -> ``RawFeedback`` (``mapping/events_api.py``), as tables.

Each case is what a web developer sends and what the record becomes (or why the door or the
validator refuses it). Validation itself is the validator's; where a table says "rejected" the
record carries the problem and the validator turns it into the rejection (checked at the end).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from otlp_feedback.config import RedactionConfig, ValidationConfig
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, FeedbackEvent, UserFeedback
from otlp_feedback.mapping.events_api import (
    RECEIVER_OWNED,
    SENDER_ENVELOPE,
    Refused,
    location_of,
    map_event,
    raw_from_source,
    sender_fields,
)
from otlp_feedback.mapping.records import RawFeedback, deterministic_event_id
from otlp_feedback.validation import Rejection, Validator
from otlp_feedback.validation.redaction import Redactor

RECEIVED_NS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
THUMBS_DOWN: dict[str, Any] = {"event_type": "user_feedback", "session_id": "s-1", "thumbs": "down"}
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def mapped(item: object, index: int = 0) -> RawFeedback:
    raw = map_event(item, location_of(index))
    assert isinstance(raw, RawFeedback), raw
    return raw


def validated(item: object) -> FeedbackEvent | Rejection:
    received = datetime.fromtimestamp(RECEIVED_NS / 1e9, UTC)
    redactor = Redactor(RedactionConfig())
    return Validator(ValidationConfig()).validate(mapped(item), RECEIVED_NS, received, redactor)


def accepted(item: object) -> FeedbackEvent:
    event = validated(item)
    assert isinstance(event, FeedbackEvent), event
    return event


def reason(item: object) -> str:
    rejection = validated(item)
    assert isinstance(rejection, Rejection), rejection
    return rejection.reason


# --- what the door refuses (no record: no event type to validate against) ---------------------

REFUSED = {
    "a string": ("thumbs down", None, "an event must be a JSON object, got a string"),
    "a number": (3, None, "an event must be a JSON object, got a number"),
    "null": (None, None, "an event must be a JSON object, got null"),
    "an array": ([THUMBS_DOWN], None, "an event must be a JSON object, got an array"),
    "no event_type": ({"session_id": "s"}, None, "event_type is required: one of user_feedback"),
    "an unknown event_type": (
        {"event_type": "feedback.user"},
        "feedback.user",
        'unknown event_type "feedback.user": one of user_feedback, performance_metrics',
    ),
    "event_type not a string": (
        {"event_type": 1},
        None,
        "unknown event_type 1: one of user_feedback",
    ),
}


@pytest.mark.parametrize(("item", "event_type", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_an_item_without_a_known_event_type_is_refused_at_the_door(
    item: object, event_type: str | None, expected: str
) -> None:
    refused = map_event(item, location_of(0))
    assert isinstance(refused, Refused)
    assert refused.event_type == event_type
    assert refused.reason.startswith(expected)


# --- the fields a sender may set --------------------------------------------------------------


def test_the_sender_sets_its_types_own_fields_and_the_envelope_it_knows() -> None:
    for event_type, model in EVENT_MODELS.items():
        own = model.model_fields.keys() - FeedbackEvent.model_fields.keys()
        assert sender_fields(event_type) == SENDER_ENVELOPE | own
        assert not sender_fields(event_type) & RECEIVER_OWNED


def test_every_field_sent_reaches_the_event_as_sent() -> None:
    sent = {
        **THUMBS_DOWN,
        "event_id": "fb-42",
        "timestamp": "2025-11-24T15:59:58.250Z",
        "user_id": "u-7",
        "request_id": "req-9",
        "trace_id": TRACE_ID.upper(),  # W3C ids are lower-case: taken, lower-cased
        "span_id": SPAN_ID,
        "service": "checkout-web",
        "environment": "prod",
        "attributes": {"page": "/cart", "experiment": 3},
        "rating": 2,
        "comment": "the total is wrong",
        "tags": ["pricing", "cart"],
    }
    event = accepted(sent)
    assert isinstance(event, UserFeedback)
    assert event.model_dump() == {
        "event_id": "fb-42",
        "timestamp": datetime(2025, 11, 24, 15, 59, 58, 250000, tzinfo=UTC),
        "received_at": datetime(2025, 11, 24, 16, 0, tzinfo=UTC),
        "carrier": "events_api",
        "service": "checkout-web",
        "environment": "prod",
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "request_id": "req-9",
        "session_id": "s-1",
        "user_id": "u-7",
        "attributes": {"page": "/cart", "experiment": "3"},  # as OTLP attributes: text
        "client_id": None,
        "redacted_fields": [],
        "rating": 2.0,
        "thumbs": "down",
        "comment": "the total is wrong",
        "tags": ["pricing", "cart"],
    }


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_carrier_is_the_events_api_for_every_type(event_type: str) -> None:
    raw = mapped({"event_type": event_type})
    assert raw.carrier == raw.fields["carrier"] == "events_api"


def test_json_null_is_an_absent_field() -> None:
    event = accepted({**THUMBS_DOWN, "comment": None, "user_id": None, "timestamp": None})
    assert isinstance(event, UserFeedback)
    assert (event.comment, event.user_id) == (None, None)
    assert event.timestamp == event.received_at


def test_without_a_timestamp_the_event_is_timed_when_received() -> None:
    assert mapped(THUMBS_DOWN).time_ns == 0  # the validator's rule: the receive time
    event = accepted(THUMBS_DOWN)
    assert event.timestamp == event.received_at


@pytest.mark.parametrize(
    ("sent", "ns"),
    [
        ("2025-11-24T15:59:58Z", RECEIVED_NS - 2_000_000_000),
        ("2025-11-24T15:59:58.123456Z", RECEIVED_NS - 1_876_544_000),
        ("2025-11-24T17:59:58+02:00", RECEIVED_NS - 2_000_000_000),
    ],
    ids=["Z", "microseconds", "an offset"],
)
def test_a_timestamp_is_rfc_3339_with_an_offset(sent: str, ns: int) -> None:
    assert mapped({**THUMBS_DOWN, "timestamp": sent}).time_ns == ns


# --- rejections, each naming what was sent ----------------------------------------------------


@pytest.mark.parametrize("owned", sorted(RECEIVER_OWNED))
def test_a_field_the_receiver_owns_is_rejected_by_name(owned: str) -> None:
    assert (
        reason({**THUMBS_DOWN, owned: "x"}) == f"{owned} is set by the receiver, not by the sender"
    )


def test_every_owned_and_unknown_field_is_named_in_one_reason() -> None:
    sent = {**THUMBS_DOWN, "carrier": "log_record", "client_id": "admin", "thumb": "up"}
    assert reason(sent) == (
        "carrier is set by the receiver, not by the sender; "
        "client_id is set by the receiver, not by the sender; "
        'unknown field "thumb" for user_feedback'
    )


REJECTED = {
    "a field of another type": (
        {**THUMBS_DOWN, "latency_ms": 12},
        'unknown field "latency_ms" for user_feedback',
    ),
    "an OTLP attribute key": (
        {**THUMBS_DOWN, "feedback.comment": "x"},
        'unknown field "feedback.comment" for user_feedback',
    ),
    "a rating as text": (
        {**THUMBS_DOWN, "rating": "4"},
        "rating: expected a number (double or int), got a string ('4')",
    ),
    "a rating out of range": (
        {**THUMBS_DOWN, "rating": 7},
        "rating: Input should be less than or equal to 5 (got 7)",
    ),
    "thumbs not up or down": (
        {**THUMBS_DOWN, "thumbs": "sideways"},
        "thumbs: Input should be 'up' or 'down' (got 'sideways')",
    ),
    "a required field missing": (
        {"event_type": "user_feedback", "thumbs": "up"},
        "session_id is required",
    ),
    "none of rating, thumbs, comment": (
        {"event_type": "user_feedback", "session_id": "s"},
        "user_feedback needs at least one of rating, thumbs, comment",
    ),
    "tags not a list": (
        {**THUMBS_DOWN, "tags": "a,b"},
        "tags: expected an array of strings, got a string ('a,b')",
    ),
    "a timestamp as a number": (
        {**THUMBS_DOWN, "timestamp": 1764000000},
        "timestamp: expected RFC 3339 text with an offset, e.g. 2026-12-04T20:15:00.250Z, "
        "got a number",
    ),
    "a timestamp that is not a date": (
        {**THUMBS_DOWN, "timestamp": "yesterday"},
        "timestamp: expected RFC 3339 text with an offset, e.g. 2026-12-04T20:15:00.250Z, "
        'got "yesterday"',
    ),
    "a timestamp without an offset": (
        {**THUMBS_DOWN, "timestamp": "2025-11-24T15:59:58"},
        "timestamp: expected RFC 3339 text with an offset, e.g. 2026-12-04T20:15:00.250Z "
        '(no offset in "2025-11-24T15:59:58")',
    ),
    "a timestamp far in the future": (
        {**THUMBS_DOWN, "timestamp": "2026-11-24T16:00:00Z"},
        "timestamp 2026-11-24T16:00:00+00:00 is too far in the future",
    ),
    "a trace id that is not hex": (
        {**THUMBS_DOWN, "trace_id": "not-a-trace-id"},
        "trace_id: expected 32 hex digits (W3C trace context), got 14 characters",
    ),
    "a span id as a number": (
        {**THUMBS_DOWN, "span_id": 12},
        "span_id: expected 16 hex digits (W3C trace context), got a number",
    ),
    "attributes not an object": (
        {**THUMBS_DOWN, "attributes": ["a"]},
        "attributes: expected a JSON object, got an array",
    ),
    "an unpaired surrogate": (
        {**THUMBS_DOWN, "comment": "bad \ud83d"},
        "a string holds an unpaired surrogate escape (\\uD800-\\uDFFF)",
    ),
    "an event id too long": (
        {**THUMBS_DOWN, "event_id": "x" * 129},
        "event_id: String should have at most 128 characters",
    ),
}


@pytest.mark.parametrize(("sent", "expected"), REJECTED.values(), ids=REJECTED.keys())
def test_an_unusable_event_is_rejected_naming_the_json_field(sent: Any, expected: str) -> None:
    assert reason(sent).startswith(expected)


def test_an_int_where_text_is_expected_is_its_decimal_text_as_over_otlp() -> None:
    event = accepted({**THUMBS_DOWN, "user_id": 42})
    assert event.user_id == "42"


# --- event ids --------------------------------------------------------------------------------


def test_an_event_id_sent_is_the_idempotency_key() -> None:
    assert mapped({**THUMBS_DOWN, "event_id": "fb-1"}).fields["event_id"] == "fb-1"


def test_without_one_the_id_is_the_content_hash_of_otlp_records() -> None:
    sent = {**THUMBS_DOWN, "service": "web", "trace_id": TRACE_ID, "span_id": SPAN_ID}
    canonical = json.dumps(sent, sort_keys=True, separators=(",", ":")).encode()
    expected = deterministic_event_id(
        b"user_feedback", b"web", bytes.fromhex(TRACE_ID), bytes.fromhex(SPAN_ID), canonical
    )
    assert mapped(sent).fields["event_id"] == expected


def test_a_retried_event_gets_the_same_id_whatever_its_key_order() -> None:
    reordered = dict(reversed(list(THUMBS_DOWN.items())))
    assert mapped(THUMBS_DOWN).fields["event_id"] == mapped(reordered).fields["event_id"]
    assert mapped(THUMBS_DOWN, 0).fields["event_id"] == mapped(THUMBS_DOWN, 5).fields["event_id"]


def test_different_content_gets_a_different_id() -> None:
    other = {**THUMBS_DOWN, "thumbs": "up"}
    assert mapped(THUMBS_DOWN).fields["event_id"] != mapped(other).fields["event_id"]


# --- the source a dead letter keeps -----------------------------------------------------------


def test_the_source_is_the_event_as_sent() -> None:
    sent = {**THUMBS_DOWN, "service": "web", "trace_id": TRACE_ID, "carrier": "x"}
    source = mapped(sent, 3).source
    assert source.record_attributes == sent
    assert source.resource_attributes == {"service.name": "web"}  # the letter's source_service
    assert source.span_attributes == {}
    assert (source.event_name, source.event_type, source.carrier) == (
        "user_feedback",
        "user_feedback",
        "events_api",
    )
    assert (source.trace_id, source.span_id) == (bytes.fromhex(TRACE_ID), b"")
    assert source.time_ns == 0
    assert mapped({**sent, "timestamp": "2025-11-24T16:00:00Z"}).source.time_ns == RECEIVED_NS
    assert mapped(sent, 3).location == "events[3]"


def test_a_replayed_letter_maps_to_the_same_record_with_its_id_and_time() -> None:
    original = mapped({**THUMBS_DOWN, "rating": 9, "timestamp": "2025-11-24T15:00:00Z"})
    again = raw_from_source(original.source, "dlq:0:17", "fb-original")
    assert again.fields == {**original.fields, "event_id": "fb-original"}
    assert (again.time_ns, again.carrier, again.location) == (
        original.time_ns,
        "events_api",
        "dlq:0:17",
    )
