"""Shared by the log and trace mappers: turn one feedback carrier's attributes into ``RawFeedback``.

``RawFeedback.fields`` holds the event's fields by model field name with values as sent (not yet
type-checked; ``validation`` does that). Precedence: record attributes win over span attributes,
which win over resource attributes; a key/value body counts as record attributes of lower
priority than the record's own.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from otlp_feedback.events import Carrier, EventType
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.attributes import AttrValue

# A fixed namespace so that ids are stable across processes and releases.
EVENT_ID_NAMESPACE = uuid.UUID("6f0e3c1c-6c2b-5a8e-9a51-0f1eedbac4a1")
_NS_BYTES = EVENT_ID_NAMESPACE.bytes
# Per event type: (field, keys) for the envelope then the type's own fields, in that order.
_FIELD_PLAN: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    event_type: (*conv.ENVELOPE_KEYS.items(), *keys.items())
    for event_type, keys in conv.FIELD_KEYS.items()
}


@dataclass(slots=True, frozen=True)
class SourceRecord:
    """Everything the mapper read for one record, so a dead letter can be replayed later."""

    event_name: str
    event_type: EventType  # as announced by the event name, before refinement
    carrier: Carrier
    record_attributes: dict[str, AttrValue]
    span_attributes: dict[str, AttrValue]
    resource_attributes: dict[str, AttrValue]
    body_text: str | None
    time_ns: int
    trace_id: bytes
    span_id: bytes


@dataclass(slots=True)
class RawFeedback:
    """One feedback record found in a request, before validation."""

    event_type: EventType
    carrier: Carrier
    location: str  # e.g. "resource_logs[0].scope_logs[1].log_records[7]", for error messages
    fields: dict[str, Any]
    time_ns: int
    source: SourceRecord
    # Problems the mapper already knows make the record invalid (validation reports them).
    problems: list[str] = field(default_factory=list)

    @property
    def source_attributes(self) -> dict[str, AttrValue]:
        """The record's own attributes as sent."""
        return self.source.record_attributes

    # The attribute key each field was read from ("custom_scores.tone" for a map entry), so that
    # a rejection names what the sender sent (e.g. gen_ai.evaluation.score.value, not rating).
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class MappedRequest:
    """What a request held: feedback to validate, and how many records were not feedback."""

    feedback: list[RawFeedback] = field(default_factory=list)
    ignored: int = 0


@dataclass(slots=True, frozen=True)
class Context:
    """What the enclosing resource and span contribute to each record."""

    resource_attributes: dict[str, AttrValue]
    span_attributes: dict[str, AttrValue]
    trace_id: bytes
    span_id: bytes


def deterministic_event_id(*parts: bytes) -> str:
    """A UUIDv5-style id of the record's content, so a retried export yields the same id."""
    digest = hashlib.sha1(_NS_BYTES + b"\x00".join(parts), usedforsecurity=False).digest()
    # What str(uuid.UUID(bytes=digest[:16], version=5)) gives, without building a UUID (hot path).
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def build_raw(
    *,
    event_name: str,
    event_type: EventType,
    carrier: Carrier,
    location: str,
    record_attributes: dict[str, AttrValue],
    context: Context,
    time_ns: int,
    content: bytes,
    body_text: str | None = None,
) -> RawFeedback:
    """Assemble the fields of one feedback record (see the module docstring for precedence)."""
    local = {**context.span_attributes, **record_attributes}
    merged = {**context.resource_attributes, **local}
    source = SourceRecord(
        event_name,
        event_type,
        carrier,
        record_attributes,
        context.span_attributes,
        context.resource_attributes,
        body_text,
        time_ns,
        context.trace_id,
        context.span_id,
    )
    is_evaluation = event_name == conv.GENAI_EVALUATION_EVENT
    if is_evaluation:
        event_type = (
            "user_feedback"
            if merged.get(conv.EVAL_NAME) == conv.USER_FEEDBACK_EVALUATION
            else "model_response"
        )
    consumed = set(conv.CONSUMED_KEYS[event_type])
    problems: list[str] = []
    sources: dict[str, str] = {}

    fields: dict[str, Any] = {"carrier": carrier}
    for name, keys in _FIELD_PLAN[event_type]:  # inline, not a call per field: hot path
        for key in keys:
            value = merged.get(key)
            if value is not None and value != "":  # the first key present wins; "" is absent
                fields[name] = value
                sources[name] = key
                break

    if is_evaluation:
        _apply_evaluation(event_type, merged, fields, consumed, problems, sources)

    prefix_map = conv.PREFIX_MAPS.get(event_type)
    if prefix_map is not None:
        prefix, target = prefix_map
        known = conv.FIELD_KEYS[event_type]
        extra = {
            key[len(prefix) :]: value
            for key, value in merged.items()
            if key.startswith(prefix) and key[len(prefix) :] not in known
        }
        if extra:
            fields[target] = {**fields.get(target, {}), **extra}
            consumed.update(prefix + k for k in extra)
            sources.update({f"{target}.{k}": prefix + k for k in extra})

    if event_type == "user_feedback" and "comment" not in fields and body_text:
        fields["comment"] = body_text
        sources["comment"] = "body"

    if trace_id := _hex_id(context.trace_id):
        fields["trace_id"] = trace_id
    if span_id := _hex_id(context.span_id):
        fields["span_id"] = span_id
    if "event_id" not in fields:
        service = str(merged.get("service.name", ""))
        fields["event_id"] = deterministic_event_id(
            event_type.encode(), service.encode(), context.trace_id, context.span_id, content
        )
    fields["attributes"] = {k: v for k, v in local.items() if k not in consumed}
    return RawFeedback(
        event_type=event_type,
        carrier=carrier,
        location=location,
        fields=fields,
        time_ns=time_ns,
        source=source,
        problems=problems,
        keys=sources,
    )


def _default(
    fields: dict[str, Any], sources: dict[str, str], name: str, value: AttrValue, key: str
) -> None:
    """Set ``name`` from ``key`` unless an explicit attribute already set it."""
    if name not in fields:
        fields[name] = value
        sources[name] = key


def _apply_evaluation(
    event_type: EventType,
    attrs: dict[str, AttrValue],
    fields: dict[str, Any],
    consumed: set[str],
    problems: list[str],
    sources: dict[str, str],
) -> None:
    """``gen_ai.evaluation.result``: user feedback or a quality score, by evaluation name."""
    name = attrs.get(conv.EVAL_NAME)
    score = attrs.get(conv.EVAL_SCORE)
    explanation = attrs.get(conv.EVAL_EXPLANATION)
    if event_type == "user_feedback":
        label = attrs.get(conv.EVAL_LABEL)
        if score is not None:
            _default(fields, sources, "rating", score, conv.EVAL_SCORE)
        if isinstance(label, str) and label in conv.THUMBS_LABELS:
            _default(fields, sources, "thumbs", conv.THUMBS_LABELS[label], conv.EVAL_LABEL)
            consumed.add(conv.EVAL_LABEL)
        if explanation is not None:
            _default(fields, sources, "comment", explanation, conv.EVAL_EXPLANATION)
        return
    # Anything else is a quality dimension of a model response.
    if not isinstance(name, str) or not name:
        problems.append(f"{conv.EVAL_NAME} is missing")
        return
    fields["evaluation_name"] = name
    sources["evaluation_name"] = conv.EVAL_NAME
    if explanation is not None:
        fields["explanation"] = explanation
        sources["explanation"] = conv.EVAL_EXPLANATION
    if score is None:
        problems.append(f"{conv.EVAL_SCORE} is missing")
    elif name in conv.QUALITY_DIMENSIONS:
        _default(fields, sources, name, score, conv.EVAL_SCORE)
    else:
        fields.setdefault("custom_scores", {})[name] = score
        sources[f"custom_scores.{name}"] = conv.EVAL_SCORE


def _hex_id(raw: bytes) -> str | None:
    if not raw or not any(raw):
        return None
    return raw.hex()


def raw_from_source(source: SourceRecord, location: str, event_id: str | None) -> RawFeedback:
    """Map a stored source record again (dead-letter replay), keeping its original event id."""
    attributes = dict(source.record_attributes)
    if event_id:
        attributes["event.id"] = event_id
    return build_raw(
        event_name=source.event_name,
        event_type=source.event_type,
        carrier=source.carrier,
        location=location,
        record_attributes=attributes,
        context=Context(
            source.resource_attributes, source.span_attributes, source.trace_id, source.span_id
        ),
        time_ns=source.time_ns,
        content=b"",
        body_text=source.body_text,
    )
