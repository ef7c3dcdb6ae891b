"""Rejected records -> dead letters: JSON records on the dead-letter topic, and back.

A dead letter carries everything needed to replay the record once its cause is fixed (the event
name, the record, span and resource attributes with their types, body, time and ids) plus why it
was refused. Headers: ``reason``, ``carrier``, ``source_service``, ``event_type``,
``replay_count``. JSON keeps attribute types; bytes and non-finite floats are tagged
(``{"$bytes": base64}``, ``{"$float": "nan"}``) so the value is strict JSON.

What redaction covers (the string body, attributes the scrubbed fields are read from or whose
key matches ``redaction.attribute_keys``) is scrubbed, as its event would have been. An events
API record (carrier ``events_api``) is the event's JSON object as sent: its fields are
scrubbed by name (``comment``), and the entries of its ``attributes`` map by their own keys.

A letter always fits ``kafka.message_max_bytes``: a string value longer than the letter's cap
(``MAX_VALUE_CHARS``, then smaller caps until the letter fits) is cut by the cut rule
(``cutrule.cut_text``: the value is scrubbed within a bounded window, so a cut never costs
more than the cap nor leaves a fragment of an item) and tagged ``{"$truncated": text, "length":
original characters, "sha256": hex digest of the original UTF-8}``; if the smallest cap is not
enough, the attribute maps are dropped. ``"fitted": {"max_value_chars": cap,
"attributes_dropped": bool}`` says which cap the letter needed when it is not the first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otlp_feedback.cutrule import cut_text
from otlp_feedback.encoding.outbound import RECEIVER_HEADERS, OutboundRecord
from otlp_feedback.errors import InvalidRequest
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.mapping.attributes import AttrValue
from otlp_feedback.mapping.convention import SERVICE_KEY
from otlp_feedback.mapping.events_api import CARRIER as EVENTS_API
from otlp_feedback.mapping.records import SourceRecord
from otlp_feedback.validation.redaction import Redactor

FORMAT_VERSION = 1
MAX_VALUE_CHARS = 16_384  # per string value kept in a letter, unless it must be smaller
# Smaller caps tried, in order, when a letter does not fit at MAX_VALUE_CHARS.
_FIT_CAPS = (MAX_VALUE_CHARS, 4096, 1024, 256, 64)
_MAX_REASON_HEADER = 1000
EVENT_ATTRIBUTES = "attributes"
_MAX_SERVICE_HEADER = 256
# Kafka's per-record framing (lengths, varints, timestamps) beyond key, value and headers.
_RECORD_FRAMING_BYTES = 128

Scrub = Callable[[str], str] | None


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
        value = self.source.resource_attributes.get(SERVICE_KEY)
        return value if isinstance(value, str) else ""


def to_outbound(
    letter: DeadLetter, topic: str, redactor: Redactor, max_bytes: int
) -> OutboundRecord:
    """Encode ``letter`` (its source as sent) for ``topic``, scrubbed by ``redactor``, in at
    most ``max_bytes`` (``kafka.message_max_bytes``). The key is the event id so replays of
    one record stay together."""
    src = letter.source
    reason = redactor.redact_text(letter.reason)  # reasons quote scrubbed values; belt and braces
    headers = [
        # A small message_max_bytes (its floor is 1024) leaves the value room too.
        ("reason", cut_text(reason, min(_MAX_REASON_HEADER, max_bytes // 8)).encode()),
        ("carrier", src.carrier.encode()),
        ("source_service", cut_text(letter.service, _MAX_SERVICE_HEADER).encode()),
        ("event_type", src.event_type.encode()),
        ("replay_count", str(letter.replay_count).encode()),
        *RECEIVER_HEADERS,  # which receiver dead-lettered it, as on every event record
    ]
    key = letter.event_id.encode() if letter.event_id else None
    budget = (
        max_bytes
        - _RECORD_FRAMING_BYTES
        - len(key or b"")
        - sum(len(name) + len(value) for name, value in headers)
    )
    value = b""
    for attempt, (cap, keep_attributes) in enumerate(
        [*((cap, True) for cap in _FIT_CAPS), (_FIT_CAPS[-1], False)]
    ):
        body = _body(letter, reason, redactor, cap, keep_attributes)
        if attempt:
            body["fitted"] = {"max_value_chars": cap, "attributes_dropped": not keep_attributes}
        value = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        if len(value) <= budget:
            break
    return OutboundRecord(
        topic=topic,
        key=key,
        value=value,
        headers=headers,
        event_id=letter.event_id or "",
        event_type=src.event_type,
    )


def _body(
    letter: DeadLetter, reason: str, redactor: Redactor, cap: int, keep_attributes: bool
) -> dict[str, Any]:
    src = letter.source

    def attributes(values: Mapping[str, AttrValue]) -> dict[str, Any]:
        if not keep_attributes:
            return {}
        return {k: _tag(v, cap, redactor.letter_scrubber(k)) for k, v in values.items()}

    record = attributes(src.record_attributes)
    sent_attributes = src.record_attributes.get(EVENT_ATTRIBUTES)
    if keep_attributes and src.carrier == EVENTS_API and isinstance(sent_attributes, dict):
        # An events API record is the event's JSON: its ``attributes`` map nests the keys an
        # OTLP record has at the top, and each is scrubbed by its own key, as in the event.
        record[EVENT_ATTRIBUTES] = attributes(sent_attributes)

    body = src.body_text
    return {
        "format": FORMAT_VERSION,
        "reason": cut_text(reason, cap),
        "location": letter.location,
        "event_id": letter.event_id,
        "event_name": cut_text(src.event_name, cap),
        "event_type": src.event_type,
        "carrier": src.carrier,
        "attributes": record,
        "span_attributes": attributes(src.span_attributes),
        "resource_attributes": attributes(src.resource_attributes),
        "body": None if body is None else _tag(body, cap, redactor.letter_scrubber(None)),
        "time_unix_nano": src.time_ns,
        "trace_id": src.trace_id.hex(),
        "span_id": src.span_id.hex(),
        "replay_count": letter.replay_count,
    }


def from_value(value: bytes) -> DeadLetter:
    """Decode a dead letter. Raises ``InvalidRequest`` for anything that is not one."""
    return read_value(value)[0]


def read_value(value: bytes) -> tuple[DeadLetter, dict[str, Any]]:
    """``from_value``, with the letter's JSON body as stored (what ``dlq tail`` prints), from
    the one parse. Raises ``InvalidRequest`` for anything that is not a dead letter."""
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
        letter = DeadLetter(
            reason=str(body["reason"]),
            location=str(body["location"]),
            event_id=body.get("event_id"),
            source=source,
            replay_count=int(body.get("replay_count", 0)),
        )
        return letter, body
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"not a dead letter: {exc}") from exc


def _tag(value: AttrValue, cap: int, scrub: Scrub) -> Any:
    if isinstance(value, str):
        if len(value) > cap:
            return {
                "$truncated": cut_text(value, cap, scrub),
                "length": len(value),
                "sha256": hashlib.sha256(value.encode(errors="surrogatepass")).hexdigest(),
            }
        return scrub(value) if scrub is not None else value
    if isinstance(value, bytes):
        if len(value) > cap:
            digest = hashlib.sha256(value).hexdigest()
            return {"$truncated": "", "length": len(value), "sha256": digest}
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, dict):
        return {k: _tag(v, cap, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v, cap, scrub) for v in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$float"}:
            return float(value["$float"])
        if set(value) in ({"$truncated", "length"}, {"$truncated", "length", "sha256"}):
            return value["$truncated"]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value
