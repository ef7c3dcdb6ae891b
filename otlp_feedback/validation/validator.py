"""Turn mapped feedback into typed events, or reject it with a reason a person can act on.

Called by the pipeline once per feedback record. The reason names the attribute the sender
used (``feedback.rating``), not our field name, because that is what the sender can fix.

Input limits applied before the models see the record (``validation.*``): strings in event
fields longer than ``max_string_length`` are rejected; ``attributes`` keeps at most
``max_attributes`` entries, each value truncated to ``max_attribute_value_len``; control
characters (C0/C1 controls but tab and newline, DEL, bidi formatting, line/paragraph separators,
BOM) are kept, stripped or rejected per ``control_characters``, in fields and attributes alike.
Thread-safe: holds no mutable state.
"""

from __future__ import annotations

import json
import re
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from otlp_feedback.config import ValidationConfig
from otlp_feedback.cutrule import CUT_MARGIN
from otlp_feedback.events import EVENT_MODELS, Carrier, EventType, FeedbackEvent
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.attributes import AttrValue
from otlp_feedback.mapping.records import RawFeedback, SourceRecord
from otlp_feedback.validation.redaction import Redactor

_NS_PER_DAY = 86_400 * 10**9
# A reason echoes what the sender sent; clipped, so that a huge key or value cannot blow up the
# partial_success message (and the response past the client's receive limit).
_MAX_SHOWN_KEY = 100
_MAX_SHOWN_VALUE = 60
# Per event type: two types may read one field name from different keys (latency_ms).
_FIELD_TO_KEY: dict[EventType, dict[str, str]] = {
    event_type: {
        field: keys[0] for table in (conv.ENVELOPE_KEYS, fields) for field, keys in table.items()
    }
    for event_type, fields in conv.FIELD_KEYS.items()
}
# Characters that rewrite a terminal or reorder displayed text rather than carry content.
# Tab and newline are content; ZWJ and other format characters used by emoji are kept.
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


class _Unacceptable(ValueError):
    """A string the limits refuse; the message is the whole rejection reason."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A feedback record that will not become an event, and why."""

    event_type: EventType
    carrier: Carrier
    location: str
    reason: str
    source: SourceRecord
    event_id: str | None = None
    # Coarse class for metrics: invalid | encoding | too_large | kafka_refused.
    category: str = "invalid"

    @classmethod
    def of(cls, raw: RawFeedback, reason: str, category: str = "invalid") -> Rejection:
        event_id = raw.fields.get("event_id")
        return cls(
            raw.event_type,
            raw.carrier,
            raw.location,
            reason,
            raw.source,
            event_id if isinstance(event_id, str) else None,
            category,
        )

    @property
    def source_attributes(self) -> dict[str, AttrValue]:
        return self.source.record_attributes

    def describe(self) -> str:
        return f"{self.location} ({self.event_type}): {self.reason}"


def window_ns(limits: ValidationConfig) -> tuple[int, int]:
    """How far ahead of and behind the receive time an event's timestamp may be, in ns."""
    return int(limits.max_future_skew_s * 1e9), int(limits.max_age_days * _NS_PER_DAY)


class Validator:
    """Checks one record at a time against the typed event models and the configured limits."""

    def __init__(self, limits: ValidationConfig) -> None:
        self._limits = limits
        self._max_future_ns, self._max_age_ns = window_ns(limits)
        # Finds a control character to handle; None when they are kept as sent.
        self._control = None if limits.control_characters == "keep" else CONTROL_CHARACTERS.search

    def validate(
        self, raw: RawFeedback, received_at_ns: int, received_at: datetime, redactor: Redactor
    ) -> FeedbackEvent | Rejection:
        """The typed event, or a ``Rejection``; never raises for bad content.

        ``redactor`` (the request's rules) quotes values in reasons (``Redactor.quote``) and
        says which attribute values the redaction stage will cut after scrubbing.
        """
        if raw.problems:
            # The mapping's problems may quote what was sent (the events API's do): scrubbed
            # here, as every value a reason quotes is, before they reach the sender or a log.
            return Rejection.of(raw, redactor.redact_text("; ".join(raw.problems)))
        time_ns = raw.time_ns or received_at_ns
        if time_ns > received_at_ns + self._max_future_ns:
            return Rejection.of(raw, f"timestamp {_iso(time_ns)} is too far in the future")
        if time_ns < received_at_ns - self._max_age_ns:
            return Rejection.of(
                raw,
                f"timestamp {_iso(time_ns)} is older than {self._limits.max_age_days:g} days",
            )
        fields = raw.fields
        try:
            fields["attributes"] = self._stringify(fields.get("attributes", {}), redactor)
            self._sanitise_fields(raw)
        except _Unacceptable as exc:
            return Rejection.of(raw, str(exc))
        fields["timestamp"] = datetime.fromtimestamp(time_ns / 1e9, UTC)
        fields["received_at"] = received_at
        try:
            return EVENT_MODELS[raw.event_type].model_validate(fields)
        except ValidationError as exc:
            return Rejection.of(raw, _explain(exc, raw, redactor))

    def _stringify(self, attributes: dict[str, AttrValue], redactor: Redactor) -> dict[str, str]:
        limit = self._limits.max_attribute_value_len
        control = self._control
        out: dict[str, str] = {}
        for key, value in attributes.items():
            if len(out) >= self._limits.max_attributes:
                break
            text = value if type(value) is str else _to_text(value)
            if len(text) > limit:
                # A value redaction covers keeps the cut rule's window: the redaction stage
                # scrubs it whole, then cuts it to the limit (Redactor.redact_event).
                covered = redactor.enabled and redactor.scrubs_attribute(key)
                text = text[: limit + CUT_MARGIN] if covered else text[:limit]
            # isprintable() is False for every character CONTROL_CHARACTERS matches (and for
            # some it keeps, e.g. tab): a cheap pre-check before the regex (hot path).
            if (
                control is not None
                and not (key.isprintable() and text.isprintable())
                and (control(key) or control(text))
            ):
                try:
                    key, text = self._clean(key), self._clean(text)
                except _ControlCharacter as exc:
                    raise _Unacceptable(f"{_clip(key, _MAX_SHOWN_KEY)}: {exc}") from None
            out[key] = text
        return out

    def _sanitise_fields(self, raw: RawFeedback) -> None:
        """Apply the length limit and control-character policy to every string of every field
        (list items, map keys and values too), in place. Raises ``_Unacceptable``."""
        fields = raw.fields
        limit = self._limits.max_string_length
        keep = self._control is None
        checked = self._checked
        for name, value in fields.items():
            kind = type(value)
            if kind is str:
                # The common case, inline: a short string without control characters.
                if len(value) > limit or not (keep or value.isprintable()):
                    fields[name] = checked(value, raw, name)
            elif kind is list:
                if any(type(v) is str for v in value):
                    fields[name] = [checked(v, raw, name) if type(v) is str else v for v in value]
            elif kind is dict and value and name != "attributes":  # attributes: see _stringify
                fields[name] = {
                    checked(k, raw, f"{name}.{k}"): (
                        checked(v, raw, f"{name}.{k}") if type(v) is str else v
                    )
                    for k, v in value.items()
                }

    def _checked(self, text: str, raw: RawFeedback, field: str) -> str:
        limit = self._limits.max_string_length
        if len(text) > limit:
            raise _Unacceptable(
                f"{self._key(raw, field)}: {len(text)} characters, over the {limit}-character "
                "limit (validation.max_string_length)"
            )
        if text.isprintable():
            return text
        try:
            return self._clean(text)
        except _ControlCharacter as exc:
            raise _Unacceptable(f"{self._key(raw, field)}: {exc}") from None

    def _clean(self, text: str) -> str:
        """``text`` per the control-character policy. Raises ``_ControlCharacter`` (reject)."""
        policy = self._limits.control_characters
        if policy == "keep" or (found := CONTROL_CHARACTERS.search(text)) is None:
            return text
        if policy == "strip":
            return CONTROL_CHARACTERS.sub("", text)
        raise _ControlCharacter(found.group())

    @staticmethod
    def _key(raw: RawFeedback, field: str) -> str:
        """The attribute key a field was read from, as a rejection names it."""
        return _clip(_key_of(raw, field), _MAX_SHOWN_KEY)


class _ControlCharacter(ValueError):
    def __init__(self, char: str) -> None:
        super().__init__(
            f"control character U+{ord(char):04X} is not allowed "
            "(validation.control_characters: reject)"
        )


def _explain(exc: ValidationError, raw: RawFeedback, redactor: Redactor) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = err["loc"]
        field = str(loc[0]) if loc else "?"
        # The key the mapper read the value from, else the convention's first key for the field.
        key = _clip(
            (len(loc) > 1 and raw.keys.get(f"{field}.{loc[1]}")) or _key_of(raw, field),
            _MAX_SHOWN_KEY,
        )
        if err["type"] == "missing":
            parts.append(f"{key} is required")
            continue
        if err["type"] == "needs_one_of":
            names = EVENT_MODELS[raw.event_type].needs_one_of
            keys = ", ".join(_FIELD_TO_KEY[raw.event_type].get(n, n) for n in names)
            parts.append(f"{raw.event_type} needs at least one of {keys}")
            continue
        if err["type"] == "sum_fields":
            # The model's message, in the sender's keys: "gen_ai.usage.total_tokens 30 is not
            # gen_ai.usage.input_tokens 10 + gen_ai.usage.output_tokens 15 (= 25)".
            ctx = err.get("ctx") or {}
            total, *summed = (
                f"{_clip(_key_of(raw, name), _MAX_SHOWN_KEY)} {number}"
                for name, number in ctx["numbers"].items()
            )
            parts.append(f"{total} is not {' + '.join(summed)} (= {ctx['expected']})")
            continue
        expected = _EXPECTED.get(err["type"])
        if expected is not None:
            # A strict type mismatch: say what the field takes and which OTLP type was sent.
            if len(loc) == 1 and field in EVENT_MODELS[raw.event_type].text_fields:
                expected = "a string or an int"
            elif len(loc) > 1 and isinstance(loc[1], int):
                key = f"{key}[{loc[1]}]"  # an array item
            value = err.get("input")
            shown = redactor.quote(value, _MAX_SHOWN_VALUE)
            parts.append(f"{key}: expected {expected}, got {_otlp_type(value)} ({shown})")
            continue
        shown = redactor.quote(err.get("input"), _MAX_SHOWN_VALUE)
        parts.append(f"{key}: {err['msg']} (got {shown})")
    return "; ".join(parts)


def _key_of(raw: RawFeedback, field: str) -> str:
    """The key the mapper read ``field`` from, else the convention's first key for it."""
    return raw.keys.get(field) or _FIELD_TO_KEY[raw.event_type].get(field, field)


# Strict type errors -> what the field takes (README, "Accepted value types").
_EXPECTED = {
    "string_type": "a string",
    "float_type": "a number (double or int)",
    "int_type": "an int",
    "bool_type": "a bool",
    "list_type": "an array of strings",
    "dict_type": "a key/value list",
}


# The ``AnyValue`` case each mapped Python type comes from (bool before int: a bool is an int).
_OTLP_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a bool"),
    (int, "an int"),
    (float, "a double"),
    (str, "a string"),
    (bytes, "bytes"),
    (list, "an array"),
    (dict, "a key/value list"),
)


def _otlp_type(value: AttrValue) -> str:
    """The ``AnyValue`` case a mapped value came from, as a rejection names it."""
    for kind, name in _OTLP_TYPES:
        if isinstance(value, kind):
            return name
    return "an empty value" if value is None else type(value).__name__


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(time_ns: int) -> str:
    try:
        return datetime.fromtimestamp(time_ns / 1e9, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{time_ns} ns since epoch"


def _to_text(value: AttrValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return b64encode(value).decode()
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> str:
    if isinstance(value, bytes):
        return b64encode(value).decode()
    return str(value)
