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
from typing import Any, NamedTuple

from otlp_feedback.events import Carrier, EventType
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.attributes import AttrValue

# A fixed namespace so that ids are stable across processes and releases.
EVENT_ID_NAMESPACE = uuid.UUID("6f0e3c1c-6c2b-5a8e-9a51-0f1eedbac4a1")
_NS_BYTES = EVENT_ID_NAMESPACE.bytes
# Per event type: (field, keys) for the envelope then the type's own fields, in that order.
FIELD_PLAN: dict[str, _Plan] = {
    event_type: (*conv.ENVELOPE_KEYS.items(), *keys.items())
    for event_type, keys in conv.FIELD_KEYS.items()
}


_Plan = tuple[tuple[str, tuple[str, ...]], ...]


# A key's entry in the index: the field name when it is the first (or only) key of one field,
# the common case; else ((field, first key?), ...).
_Entry = str | tuple[tuple[str, bool], ...]


def _key_index(plan: _Plan) -> dict[str, _Entry]:
    """Attribute key -> the field(s) it feeds."""
    index: dict[str, list[tuple[str, bool]]] = {}
    for name, keys in plan:
        # The mapper settles precedence with one flag: a first key beats a second. A third
        # key would need ranks; none exists, and this keeps it that way.
        assert len(keys) <= 2, f"{name} is read from more than two keys"
        for rank, key in enumerate(keys):
            index.setdefault(key, []).append((name, rank == 0))
    return {
        key: fields[0][0] if len(fields) == 1 and fields[0][1] else tuple(fields)
        for key, fields in index.items()
    }


# Per event type: attribute key -> field(s). One lookup per attribute sent instead of one per
# field and key of the plan (hot path).
_KEY_INDEX = {event_type: _key_index(plan) for event_type, plan in FIELD_PLAN.items()}
# Keys every type consumes without mapping them to a field (so they stay out of ``attributes``).
SET_ASIDE_KEYS = frozenset(
    {conv.EVENT_NAME_ATTRIBUTE, conv.EVAL_NAME, conv.EVAL_SCORE, conv.EVAL_EXPLANATION}
)
assert all(
    conv.CONSUMED_KEYS[t] == SET_ASIDE_KEYS | _KEY_INDEX[t].keys() for t in conv.CONSUMED_KEYS
), "convention.CONSUMED_KEYS and the mapper disagree"
_PREFIXES: dict[str, tuple[str, str, frozenset[str]]] = {
    event_type: (*conv.PREFIX_MAPS[event_type], frozenset(known))
    for event_type, known in conv.FIELD_KEYS.items()
    if event_type in conv.PREFIX_MAPS
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


class Context(NamedTuple):
    """What the enclosing resource and span contribute to each record."""

    resource_attributes: dict[str, AttrValue]
    span_attributes: dict[str, AttrValue]
    trace_id: bytes
    span_id: bytes


# Where a record sits in its request: a ready string, or a format string and its indices
# (formatted only if a rejection needs it: most records are never named).
Location = str | tuple[str, int, int, int] | tuple[str, int, int, int, int]


class RawFeedback:
    """One feedback record found in a request, before validation.

    ``fields`` holds the event's fields by model field name, values as sent. What only a
    rejection or a dead letter needs (``location``, ``source``, ``keys``) is derived on demand
    from what the mapper kept, because nearly every record is accepted.
    """

    __slots__ = (
        "_announced_type",
        "_body_text",
        "_context",
        "_event_name",
        "_explicit_keys",
        "_location",
        "_record_attributes",
        "carrier",
        "event_type",
        "fields",
        "problems",
        "time_ns",
    )

    def __init__(
        self,
        event_type: EventType,
        carrier: Carrier,
        fields: dict[str, Any],
        time_ns: int,
        *,
        location: Location,
        event_name: str,
        announced_type: EventType,
        record_attributes: dict[str, AttrValue],
        context: Context,
        body_text: str | None,
        explicit_keys: dict[str, str] | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.event_type = event_type
        self.carrier = carrier
        self.fields = fields
        self.time_ns = time_ns
        # Problems the mapper already knows make the record invalid (validation reports them).
        self.problems = problems
        self._location = location
        self._event_name = event_name
        self._announced_type = announced_type
        self._record_attributes = record_attributes
        self._context = context
        self._body_text = body_text
        self._explicit_keys = explicit_keys

    @property
    def location(self) -> str:
        """E.g. "resource_logs[0].scope_logs[1].log_records[7]", for error messages."""
        where = self._location
        return where if isinstance(where, str) else where[0].format(*where[1:])

    @property
    def source(self) -> SourceRecord:
        ctx = self._context
        return SourceRecord(
            self._event_name,
            self._announced_type,
            self.carrier,
            self._record_attributes,
            ctx.span_attributes,
            ctx.resource_attributes,
            self._body_text,
            self.time_ns,
            ctx.trace_id,
            ctx.span_id,
        )

    @property
    def source_attributes(self) -> dict[str, AttrValue]:
        """The record's own attributes as sent."""
        return self._record_attributes

    @property
    def keys(self) -> dict[str, str]:
        """The attribute key each field was read from ("custom_scores.tone" for a map entry),
        so that a rejection names what the sender sent (gen_ai.evaluation.score.value, not
        rating)."""
        ctx = self._context
        merged = {**ctx.resource_attributes, **ctx.span_attributes, **self._record_attributes}
        keys: dict[str, str] = {}
        for name, candidates in FIELD_PLAN[self.event_type]:
            for key in candidates:
                value = merged.get(key)
                if value is not None and value != "":
                    keys[name] = key
                    break
        if self._explicit_keys:
            keys.update(self._explicit_keys)
        return keys


@dataclass(slots=True)
class MappedRequest:
    """What a request held: feedback to validate, and how many records were not feedback."""

    feedback: list[RawFeedback] = field(default_factory=list)
    ignored: int = 0
    unknown_names: list[str] = field(default_factory=list)
    """``feedback.*`` names among the ignored that announce no type (misspellings)."""


def deterministic_event_id(*parts: bytes) -> str:
    """A UUIDv5-style id of the record's content, so a retried export yields the same id."""
    x = hashlib.sha1(_NS_BYTES + b"\x00".join(parts), usedforsecurity=False).hexdigest()
    # What str(uuid.UUID(bytes=digest[:16], version=5)) gives, without building a UUID (hot
    # path): version nibble 5, RFC 4122 variant bits 10 in the first nibble of group four.
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def build_raw(
    *,
    event_name: str,
    event_type: EventType,
    carrier: Carrier,
    location: Location,
    record_attributes: dict[str, AttrValue],
    context: Context,
    time_ns: int,
    content: bytes,
    body_text: str | None = None,
) -> RawFeedback:
    """Assemble the fields of one feedback record (see the module docstring for precedence)."""
    resource, span_attributes, trace_id, span_id = context
    local = {**span_attributes, **record_attributes} if span_attributes else record_attributes
    merged = {**resource, **local} if resource else local
    announced = event_type
    is_evaluation = event_name == conv.GENAI_EVALUATION_EVENT
    if is_evaluation:
        event_type = (
            "user_feedback"
            if merged.get(conv.EVAL_NAME) == conv.USER_FEEDBACK_EVALUATION
            else "model_response"
        )
    problems: list[str] | None = None
    explicit: dict[str, str] | None = None

    fields: dict[str, Any] = {"carrier": carrier}
    attributes: dict[str, AttrValue] = {}
    extra: dict[str, AttrValue] = {}
    index = _KEY_INDEX[event_type]
    prefixed = _PREFIXES.get(event_type)
    prefix, target, known = prefixed if prefixed is not None else ("", "", frozenset())
    cut = len(prefix)
    # One pass over what was sent, building the fields, the string ``attributes`` map (the
    # record's and span's own keys only) and the prefix maps together: one lookup per
    # attribute instead of one per field and key of the plan (hot path). Of a field's two
    # keys the first one present wins.
    for key, value in merged.items():
        name = index.get(key)
        if name is None:
            if cut and key.startswith(prefix) and key[cut:] not in known:
                extra[key[cut:]] = value
            elif key not in SET_ASIDE_KEYS and key in local:
                attributes[key] = value
        elif value is not None and value != "":  # "" is absent
            if isinstance(name, str):
                fields[name] = value
            else:
                for field_name, first in name:
                    if first or field_name not in fields:
                        fields[field_name] = value

    if is_evaluation:
        consumed = set(conv.CONSUMED_KEYS[event_type])
        problems = []
        explicit = {}
        _apply_evaluation(event_type, merged, fields, consumed, problems, explicit)
        attributes = {k: v for k, v in attributes.items() if k not in consumed}

    if extra:
        fields[target] = {**fields.get(target, {}), **extra}
        explicit = explicit if explicit is not None else {}
        explicit.update({f"{target}.{k}": prefix + k for k in extra})

    body_field = conv.BODY_FIELDS.get(event_type)
    if body_text and body_field is not None and body_field not in fields:
        fields[body_field] = body_text
        explicit = explicit if explicit is not None else {}
        explicit[body_field] = "body"

    if trace_id and any(trace_id):
        fields["trace_id"] = trace_id.hex()
    if span_id and any(span_id):
        fields["span_id"] = span_id.hex()
    if "event_id" not in fields:
        service = str(merged.get(conv.SERVICE_KEY, ""))
        fields["event_id"] = deterministic_event_id(
            event_type.encode(), service.encode(), trace_id, span_id, content
        )
    fields["attributes"] = attributes
    return RawFeedback(
        event_type,
        carrier,
        fields,
        time_ns,
        location=location,
        event_name=event_name,
        announced_type=announced,
        record_attributes=record_attributes,
        context=context,
        body_text=body_text,
        explicit_keys=explicit,
        problems=problems,
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
