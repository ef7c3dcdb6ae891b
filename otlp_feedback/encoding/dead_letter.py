"""Rejected records -> dead letters: JSON records on the dead-letter topic, and back.

A dead letter carries everything needed to replay the record once its cause is fixed (the event
name, the record, span and resource attributes with their types, body, time and ids) plus why it
was refused. Headers: ``reason``, ``carrier``, ``source_service``, ``event_type``,
``replay_count``. JSON keeps attribute types; bytes and non-finite floats are tagged
(``{"$bytes": base64}``, ``{"$float": "nan"}``) so the value is strict JSON, and values over
``MAX_VALUE_CHARS`` are cut (``{"$truncated": prefix, "length": n}``) so the letter fits Kafka.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import InvalidRequest
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.mapping.attributes import AttrValue
from otlp_feedback.mapping.records import SourceRecord

FORMAT_VERSION = 1
MAX_VALUE_CHARS = 16_384  # per attribute value kept in a letter
_MAX_REASON_HEADER = 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused record, as stored on the dead-letter topic."""

    reason: str
    location: str
    event_id: str | None
    source: SourceRecord
    replay_count: int = 0

    @property
    def service(self) -> str:
        value = self.source.resource_attributes.get("service.name")
        return value if isinstance(value, str) else ""


def to_outbound(letter: DeadLetter, topic: str) -> OutboundRecord:
    """Encode ``letter`` for ``topic``; the key is the event id so replays stay together."""
    src = letter.source
    body = {
        "format": FORMAT_VERSION,
        "reason": letter.reason,
        "location": letter.location,
        "event_id": letter.event_id,
        "event_name": src.event_name,
        "event_type": src.event_type,
        "carrier": src.carrier,
        "attributes": _tag(src.record_attributes),
        "span_attributes": _tag(src.span_attributes),
        "resource_attributes": _tag(src.resource_attributes),
        "body": src.body_text,
        "time_unix_nano": src.time_ns,
        "trace_id": src.trace_id.hex(),
        "span_id": src.span_id.hex(),
        "replay_count": letter.replay_count,
    }
    headers = [
        ("reason", letter.reason[:_MAX_REASON_HEADER].encode()),
        ("carrier", src.carrier.encode()),
        ("source_service", letter.service.encode()),
        ("event_type", src.event_type.encode()),
        ("replay_count", str(letter.replay_count).encode()),
    ]
    return OutboundRecord(
        topic=topic,
        key=letter.event_id.encode() if letter.event_id else None,
        value=json.dumps(body, separators=(",", ":"), allow_nan=False).encode(),
        headers=headers,
        event_id=letter.event_id or "",
        event_type=src.event_type,
    )


def from_value(value: bytes) -> DeadLetter:
    """Decode a dead letter. Raises ``InvalidRequest`` for anything that is not one."""
    try:
        body = json.loads(value)
        event_type = body["event_type"]
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        source = SourceRecord(
            event_name=str(body["event_name"]),
            event_type=event_type,
            carrier=body["carrier"],
            record_attributes=_untag(body["attributes"]),
            span_attributes=_untag(body["span_attributes"]),
            resource_attributes=_untag(body["resource_attributes"]),
            body_text=body.get("body"),
            time_ns=int(body["time_unix_nano"]),
            trace_id=bytes.fromhex(body["trace_id"]),
            span_id=bytes.fromhex(body["span_id"]),
        )
        return DeadLetter(
            reason=str(body["reason"]),
            location=str(body["location"]),
            event_id=body.get("event_id"),
            source=source,
            replay_count=int(body.get("replay_count", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"not a dead letter: {exc}") from exc


def _tag(value: AttrValue) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        # A huge value is often why the record was refused; keep the letter deliverable.
        return {"$truncated": value[:MAX_VALUE_CHARS], "length": len(value)}
    if isinstance(value, bytes):
        if len(value) > MAX_VALUE_CHARS:
            return {"$truncated": "", "length": len(value)}
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$float"}:
            return float(value["$float"])
        if set(value) == {"$truncated", "length"}:
            return value["$truncated"]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value
