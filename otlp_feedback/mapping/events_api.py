"""The events API's typed JSON -> ``RawFeedback``: one event as a web developer writes it.

``POST /api/v1/events`` (``receiver/events_api.py``) takes one event or a list as plain JSON,
``{"event_type": "user_feedback", "session_id": "s-1", "thumbs": "down"}``; this module maps
each to the ``RawFeedback`` an OTLP record would have become, and the pipeline takes it from
there (``Pipeline.export_events``: admission, validation, redaction, dead letters, Kafka).

The contract, per event (what a sender may set is data: ``sender_fields``):

- ``event_type`` names the model (``events.EVENT_MODELS``); without a known one there is no
  event to validate, so the door refuses it (``Refused``: no dead letter, as a record that is
  not feedback has none);
- the type's own fields (its model's, which its newest schema mirrors) and the envelope fields a
  sender knows (``SENDER_ENVELOPE``) are taken as sent; JSON ``null`` is absent, as an empty
  OTLP value is; types are the models' to check (strict: ``"4"`` is not a rating);
- the fields the receiver owns (``RECEIVER_OWNED``) and unknown fields make the event invalid,
  each named; so does a ``timestamp`` that is not RFC 3339 with an offset, an id that is not
  W3C hex, ``attributes`` that are not an object. These are the record's ``problems``: the
  validator rejects it, and it is dead-lettered like any invalid record;
- ``event_id`` is the idempotency key when sent, else the content hash OTLP records get
  (``records.deterministic_event_id``, over the event's canonical JSON): a retried POST
  yields the same id.

The record's source (what a dead letter keeps and ``dlq replay`` maps again,
``raw_from_source``) is the event as sent: its JSON object as the record's attributes, its
``service`` as the resource's ``service.name`` (the letter's ``source_service`` header), carrier
``events_api``. Rejections name the JSON fields (``session_id``, not ``session.id``).

Pure functions: no clock, no I/O, no config.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from otlp_feedback.cutrule import CUT_MARGIN, cut_text
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, Carrier, EventType, FeedbackEvent
from otlp_feedback.mapping.records import (
    Context,
    RawFeedback,
    SourceRecord,
    deterministic_event_id,
)

CARRIER: Final[Carrier] = "events_api"
TYPE_FIELD: Final = "event_type"
# Envelope fields a sender knows; the rest of the envelope is the receiver's.
SENDER_ENVELOPE: Final = frozenset(
    {
        "event_id",
        "timestamp",
        "session_id",
        "user_id",
        "request_id",
        "trace_id",
        "span_id",
        "service",
        "environment",
        "attributes",
    }
)
RECEIVER_OWNED: Final = frozenset({"received_at", "client_id", "redacted_fields", "carrier"})
assert FeedbackEvent.model_fields.keys() == SENDER_ENVELOPE | RECEIVER_OWNED, (
    "every envelope field is either the sender's or the receiver's"
)


def sender_fields(event_type: EventType) -> frozenset[str]:
    """What a sender may set on an event of ``event_type`` (besides ``event_type``)."""
    return _SENDER_FIELDS[event_type]


_SENDER_FIELDS: dict[EventType, frozenset[str]] = {
    event_type: SENDER_ENVELOPE | (model.model_fields.keys() - FeedbackEvent.model_fields.keys())
    for event_type, model in EVENT_MODELS.items()
}
# Rejections name a field as the sender sent it: the JSON name, for every field of the model.
_NAMED_AS_SENT: dict[EventType, dict[str, str]] = {
    event_type: {name: name for name in model.model_fields}
    for event_type, model in EVENT_MODELS.items()
}
_HEX = frozenset(string.hexdigits)
# How much of a value (and of an unknown field's name) a problem quotes.
_SHOWN, _SHOWN_NAME = 60, 100
_ID_DIGITS: Final = {"trace_id": 32, "span_id": 16}  # W3C trace context, as OTLP's ids
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution  # timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Refused:
    """An item the door cannot make a record of (not an object, no known ``event_type``)."""

    event_type: str | None
    reason: str


def location_of(index: int) -> str:
    """Where item ``index`` sits in the request body (a rejection's and a dead letter's)."""
    return f"events[{index}]"


def map_event(item: object, location: str) -> RawFeedback | Refused:
    """One JSON value of the body -> the record to validate, or ``Refused``. Never raises.

    Without a ``timestamp`` the record's time is 0: the event is timed when it is received
    (the validator's rule for every record), and so is a replayed dead letter of it.
    """
    if not isinstance(item, dict):
        return Refused(None, f"an event must be a JSON object, got {_json_type(item)}")
    event_type = item.get(TYPE_FIELD)
    if event_type is None:
        return Refused(None, f"{TYPE_FIELD} is required: one of {', '.join(EVENT_TYPES)}")
    if not isinstance(event_type, str) or event_type not in EVENT_MODELS:
        shown = cut_text(event_type, _SHOWN) if isinstance(event_type, str) else None
        return Refused(
            shown,
            f"unknown {TYPE_FIELD} {_shown(event_type)}: one of {', '.join(EVENT_TYPES)}",
        )
    return _record(event_type, item, location)


def _record(event_type: EventType, item: dict[str, Any], location: str) -> RawFeedback:
    allowed = _SENDER_FIELDS[event_type]
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for name, value in item.items():
        if name == TYPE_FIELD:
            continue
        if name in RECEIVER_OWNED:
            problems.append(f"{name} is set by the receiver, not by the sender")
        elif name not in allowed:
            problems.append(f"unknown field {_shown(name, _SHOWN_NAME)} for {event_type}")
        elif value is not None:  # null is absent
            fields[name] = value

    time_ns = 0
    stamp = fields.pop("timestamp", None)
    if stamp is not None:
        parsed = _timestamp_ns(stamp)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            time_ns = parsed
    ids = {name: _id(name, fields, problems) for name in _ID_DIGITS}
    attributes = fields.get("attributes", {})
    if not isinstance(attributes, dict):
        problems.append(f"attributes: expected a JSON object, got {_json_type(attributes)}")
        attributes = {}
    fields["attributes"] = attributes
    # The model's rule (its data), said here in JSON names: the validator's own message names
    # the OTLP attribute keys, which this sender never wrote.
    needs = EVENT_MODELS[event_type].needs_one_of
    if needs and not any(name in fields for name in needs):
        problems.append(f"{event_type} needs at least one of {', '.join(needs)}")

    content = _canonical(item)
    if content is None:
        # JSON can escape half a surrogate pair ("\ud83d"), which is no Unicode text: Avro
        # (UTF-8) cannot write it. Refused here, it is dead-lettered (letters escape it).
        problems.append("a string holds an unpaired surrogate escape (\\uD800-\\uDFFF)")
        content = json.dumps(item, sort_keys=True).encode()
    service = fields.get("service")
    if "event_id" not in fields:
        fields["event_id"] = deterministic_event_id(
            event_type.encode(),
            service.encode() if isinstance(service, str) else b"",
            ids["trace_id"],
            ids["span_id"],
            content,
        )
    fields["carrier"] = CARRIER
    resource = {"service.name": service} if isinstance(service, str) else {}
    return RawFeedback(
        event_type,
        CARRIER,
        fields,
        time_ns,
        location=location,
        event_name=event_type,
        announced_type=event_type,
        record_attributes=item,
        context=Context(resource, {}, ids["trace_id"], ids["span_id"]),
        body_text=None,
        explicit_keys=_NAMED_AS_SENT[event_type],
        problems=problems or None,
    )


def raw_from_source(source: SourceRecord, location: str, event_id: str | None) -> RawFeedback:
    """Map a dead letter of this door again (``dlq replay``), keeping its event id."""
    item = dict(source.record_attributes)
    if event_id:
        item["event_id"] = event_id
    mapped = map_event(item, location)
    if isinstance(mapped, Refused):  # a letter is only written for a known event type
        raise ValueError(f"not an events API record: {mapped.reason}")
    return mapped


def _shown(value: object, limit: int | None = None) -> str:
    """A value the sender sent, as a problem quotes it: JSON, cut by the cut rule (never in
    the middle of a token, so no fragment of an e-mail address or phone number is left for the
    scrubbing of the reason to miss: ``Validator`` scrubs every problem whole)."""
    limit = limit or _SHOWN
    if isinstance(value, str):  # bounded cost, whatever the length sent
        value = value[: limit + CUT_MARGIN]
    return cut_text(json.dumps(value), limit)


def _timestamp_ns(value: object) -> int | str:
    """RFC 3339 text -> ns since the epoch; else the problem, as a rejection states it."""
    expected = "timestamp: expected RFC 3339 text with an offset, e.g. 2026-12-04T20:15:00.250Z"
    if not isinstance(value, str):
        return f"{expected}, got {_json_type(value)}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"{expected}, got {_shown(value)}"
    if parsed.tzinfo is None:
        return f"{expected} (no offset in {_shown(value)})"
    # Integer arithmetic: microseconds exactly, as the Avro field keeps them.
    return (parsed - _EPOCH) // _MICROSECOND * 1000


def _id(name: str, fields: dict[str, Any], problems: list[str]) -> bytes:
    """A W3C hex id (``trace_id``/``span_id``), lower-cased in ``fields``; its bytes for the
    record's context (b"" when absent or unusable)."""
    value = fields.get(name)
    if value is None:
        return b""
    digits = _ID_DIGITS[name]
    if not isinstance(value, str) or len(value) != digits or not _HEX.issuperset(value):
        shown = f"{len(value)} characters" if isinstance(value, str) else _json_type(value)
        problems.append(f"{name}: expected {digits} hex digits (W3C trace context), got {shown}")
        return b""
    fields[name] = value.lower()
    return bytes.fromhex(value)


def _canonical(item: dict[str, Any]) -> bytes | None:
    """The event's content as UTF-8, independent of key order and whitespace: what its id
    hashes. None if a string is not Unicode text (an unpaired surrogate)."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _json_type(value: object) -> str:
    """What a JSON value is, as a rejection names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
