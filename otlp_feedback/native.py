"""The native fast path for logs: map, validate and encode a whole Export request in C.

The pure-Python stages (``mapping`` -> ``validation`` -> ``encoding``) cost about 70 us per
record, most of it spent walking protobuf attributes and building dicts and pydantic models.
``_native.c`` does the same for the common case straight from the request bytes, in about a
tenth of that, and hands everything else back:

- a feedback record it cannot prove the Python path would accept unchanged (a value of another
  type than the field's, out of range, too long, a control character to strip or reject, text
  that redaction might touch, none of the fields the model ``needs_one_of``, a contradicted
  ``sum_fields`` total, ``gen_ai.evaluation.result``, a key/value body, a record whose bytes
  are not protobuf's canonical encoding so its content id could differ) is **deferred**:
  the pipeline maps, validates, rejects or redacts it with the Python stages, exactly as before;
- a request it cannot parse exactly as protobuf would (unknown fields, a repeated singular
  field, a wire-type mismatch, bad UTF-8, deep nesting) goes **whole** to the Python path.

So the fast path changes speed, never results: ``tests/property/test_native_equivalence.py``
holds the two paths to the same bytes, headers, keys, ids and partial_success messages.

The C code holds no convention of its own. ``build_plan`` compiles its tables here, once per
pipeline start and redaction reload, from the same sources the Python stages read: the event
models (field types, defaults, constraints, Kafka key, ``needs_one_of``, ``sum_fields``), the
convention (attribute keys, precedence, prefix maps, the body's field, the service key), the
newest Avro schema of each type (field order, types), the header names and the configured
limits and redaction rules. The plan crosses into C as frozen dataclasses (``PlanSpec`` down to
``FieldPlan``), which ``_native.c`` reads by attribute name, once per build: names, not
positions, are the contract, and ``tests/unit/test_native_plan.py`` proves C reads every field.

What the plan compiles is an allow-list (``KNOWN_VALIDATION_OPTIONS``, ``KNOWN_CLASSVARS``,
``KNOWN_MODEL_CONFIG``, ``KNOWN_VALIDATORS``, ``KNOWN_CONSTRAINTS``, the Avro keys and types,
the field sources). Whatever it does not know makes that event type (for a validation option:
every type) take the Python path rather than be approximated: logged once per plan build and
shown as ``otlp_feedback_native_python_only_types{event_type}`` = 1. The drift guards in
``test_native_plan.py`` fail when an option, ClassVar, config key or validator is added without
the allow-list deciding on it.

``sum_fields`` (a total that is the sum of its parts): with every part present, C writes the sum
when the total is absent, and defers the record when a total is sent that differs (the Python
validator rejects it, naming the numbers); otherwise the total is as sent.

What remains written twice is behaviour, not data. Each C twin is held to its Python original:

Tests: P = ``tests/property/test_native_equivalence.py`` (any request, both paths, same
bytes, headers, keys, ids, messages); U = ``tests/unit/test_native_primitives.py``; F =
``tests/unit/test_native_fast_path.py``; N = ``tests/unit/test_native_plan.py``.

| behaviour                        | Python original           | C twin             | test        |
|----------------------------------|---------------------------|--------------------|-------------|
| content event id (SHA-1 UUIDv5)  | deterministic_event_id    | SRC_EVENT_ID, sha1 | U sha1; P; F|
| canonical record bytes (the id)  | SerializeToString(det.)   | run_record canon   | P non-canon |
| resource < record merge; first   | records.build_raw         | encode_record      | P           |
|   key beats second; "" is absent |                           |   merged, KeyEntry |             |
| event name, else event.name str  | logs.map_logs_request     | run_record         | P           |
| timestamp fallback and window    | validator.window_ns       | encode_record      | P variants  |
| datetime rounding ns -> us       | datetime.fromtimestamp    | ns_to_micros       | U micros    |
| attribute value as text          | validator._to_text        | attr_text          | P           |
| int for a plain string -> text   | _ints_as_text             | none: defers       | F widened   |
| code-point lengths; value cut    | pydantic, validator       | utf8_len/_prefix   | P limits    |
| control characters               | CONTROL_CHARACTERS        | has_control        | U control   |
| redaction may change a text      | Trigger.fires             | gate_fires         | U gate; P   |
| trace/span hex; all-zero absent  | bytes.hex, any()          | HEX, all_zero      | P           |
| bounds, finite, literals, dflts  | the models (pydantic)     | FieldPlan checks   | P           |
| needs_one_of                     | FeedbackEvent._rules      | TypePlan.one_of    | F; P        |
| sum_fields (tokens_total)        | FeedbackEvent._rules      | TypePlan.sums      | N sums; P   |
| Kafka key                        | FeedbackEvent.kafka_key   | TypePlan.kafka_key | P           |
| header order, lineage pairs      | outbound (plan data)      | make_record        | P           |
| Avro binary encoding             | compiled_writer/fastavro  | buf_*              | F loadgen; P|

Redaction: C never decides what a detector finds, only whether the redactor could change a
text at all. ``compile_gate`` reads the trigger each enabled detector declares
(``validation.detectors``: ``AnyChar``, ``DigitRun``, ``Always``) into a ``RedactionGate``; C
defers a record when a redactable text (a ``redaction.fields`` field, a value under a
``redaction.attribute_keys`` key) fires any of them, and the redactor runs a detector only when
its trigger fires, so a text the gate passes is one the redactor leaves as it is. A trigger
kind, a non-ASCII trigger character or a ``RedactionConfig`` option the plan does not know
sets ``every_text``: every redactable text of every type is deferred (logged once per plan;
counted as ``deferred``).

Traces (span events, GenAI spans) always take the Python path.

Thread-safety: a plan is immutable; ``NativeLogs.export`` may be called from any thread.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo
from pydantic.types import AllowInfNan

from otlp_feedback.config import ValidationConfig
from otlp_feedback.encoding import AvroEventSerializer
from otlp_feedback.encoding.outbound import (
    HEADERS,
    RECEIVER_HEADERS,
    HeaderNames,
    OutboundRecord,
    type_headers,
)
from otlp_feedback.events import EVENT_MODELS, Carrier, EventType, FeedbackEvent
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.records import EVENT_ID_NAMESPACE, FIELD_PLAN, SET_ASIDE_KEYS
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.validation.detectors import Always, AnyChar, DetectorRule, DigitRun
from otlp_feedback.validation.redaction import Redactor
from otlp_feedback.validation.validator import window_ns

_native: types.ModuleType | None
try:
    from otlp_feedback import _native
except ImportError:  # built without a C compiler: the pure-Python path serves everything
    _native = None

log = logging.getLogger(__name__)

AVAILABLE = _native is not None
"""Whether the extension was built (``setup.py`` skips it where no C compiler is found)."""

# The numbers of FieldPlan's enums, by name, as _native.c defines them (SRC_*, K_*, D_*): the
# numbering exists once, in C. (Without the extension no plan is built; any numbers do.)
_SOURCES: Mapping[str, int] = _native.SOURCES if _native is not None else {}
_KINDS: Mapping[str, int] = _native.KINDS if _native is not None else {}
_DEFAULTS: Mapping[str, int] = _native.DEFAULTS if _native is not None else {}


def _enum(table: Mapping[str, int], name: str) -> int:
    return table.get(name, -1) if _native is None else table[name]


# Where a field's value comes from.
SRC_ATTR, SRC_EVENT_ID, SRC_TIMESTAMP, SRC_RECEIVED, SRC_CARRIER, SRC_TRACE, SRC_SPAN = (
    _enum(_SOURCES, n)
    for n in ("attr", "event_id", "timestamp", "received", "carrier", "trace", "span")
)
SRC_ATTRIBUTES, SRC_CLIENT, SRC_EMPTY, SRC_PREFIX = (
    _enum(_SOURCES, n) for n in ("attributes", "client", "empty", "prefix")
)
# Avro/model kinds.
K_STRING, K_LONG, K_DOUBLE, K_BOOL, K_TIMESTAMP, K_STR_LIST, K_STR_MAP, K_DBL_MAP = (
    _enum(_KINDS, n)
    for n in ("string", "long", "double", "bool", "timestamp", "str_list", "str_map", "dbl_map")
)
# Defaults of non-nullable optional fields.
D_NONE, D_TRUE, D_FALSE, D_EMPTY = (_enum(_DEFAULTS, n) for n in ("none", "true", "false", "empty"))

_AVRO_KINDS = {"string": K_STRING, "long": K_LONG, "double": K_DOUBLE, "boolean": K_BOOL}
_PY_KINDS: dict[Any, int] = {str: K_STRING, int: K_LONG, float: K_DOUBLE, bool: K_BOOL}
_NS_CAP = 2**62  # limits in ns beyond this are "no limit" (and keep C's arithmetic in range)


class UnsupportedForNative(ValueError):
    """A model or schema construct the native plan does not implement (that type stays Python)."""


@dataclass(frozen=True, slots=True)
class NativeResult:
    """What the C path made of one request.

    ``slots`` has one entry per feedback record in request order: its ``OutboundRecord``, or
    None where the record was deferred; ``deferred`` holds those records'
    ``(resource, scope, record)`` indices in the same order.
    """

    slots: list[OutboundRecord | None]
    deferred: list[tuple[int, int, int]]
    ignored: int
    unknown_feedback: int = 0
    """Of the ignored, records whose ``feedback.*`` name matches no type (misspellings)."""


class NativeLogs:
    """One compiled plan. ``export`` returns None when the request must go wholly to Python."""

    def __init__(
        self,
        plan: Any,
        native_types: Sequence[str],
        gate: RedactionGate,
        python_only: Mapping[str, str] | None = None,
    ) -> None:
        self._plan = plan
        self.native_types = tuple(native_types)
        self.gate = gate  # the redaction gate C was built with
        # The types the plan left to Python, with why (what it does not know).
        self.python_only: Mapping[str, str] = dict(python_only or {})

    def export(
        self, payload: bytes, received_ns: int, client_id: str | None
    ) -> NativeResult | None:
        out = self._plan.export_logs(payload, received_ns, client_id)
        if out is None:
            return None
        slots, deferred, ignored, unknown = out
        return NativeResult(slots, deferred, ignored, unknown)


# --- the redaction gate ----------------------------------------------------------------------

# The trigger kinds C evaluates, by exact class (a subclass may fire differently).
# Each trigger class the gate evaluates, with the fields C reads: a field added to a trigger
# class without teaching C makes that trigger unknown (it might fire where C would not).
KNOWN_TRIGGERS: Mapping[type, frozenset[str]] = {
    AnyChar: frozenset({"chars"}),
    DigitRun: frozenset({"min_digits", "separators", "min_separators"}),
    Always: frozenset(),
}
# RedactionConfig options, each with why the gate already covers it. An option missing here
# (new, so of unknown effect on what the redactor changes) defers every redactable text.
KNOWN_REDACTION_OPTIONS: Mapping[str, str] = {
    "enabled": "off: no text is gated (RedactionGate.enabled)",
    "fields": "which event fields are redactable (the per-field redact flag)",
    "attribute_keys": "which attribute values are redactable (scrubs_attribute)",
    "detectors": "the rules it enables are in Redactor.detectors, read trigger by trigger",
    "extra_patterns": "in Redactor.detectors as Always triggers",
    # Changes which numbers the phone detector accepts, not when it runs: its trigger is still
    # read from the rule (and a detector must declare a trigger every match fires).
    "phone_regions": "what the phone detector matches; its trigger is read from the rule",
}
_MAX_DIGIT_RUNS = 32 if _native is None else int(_native.MAX_DIGIT_RUNS)


@dataclass(frozen=True, slots=True)
class DigitRunGate:
    """A ``DigitRun`` as C reads it: ``separators`` is a 256-entry byte set."""

    min_digits: int
    separators: bytes
    min_separators: int = 0


@dataclass(frozen=True, slots=True)
class RedactionGate:
    """What C's gate reads, by attribute (``parse_gate`` in ``_native.c``).

    ``enabled``: redaction is on. ``every_text``: every redactable text may change (an
    ``Always`` trigger, or something the plan does not know). ``any_char``: 256-entry byte set,
    the union of the ``AnyChar`` triggers' characters. ``digit_runs``: the ``DigitRun``
    triggers, less those another implies. ``scrubs_attribute``: the redactor's verdict on an
    attribute key (None when redaction is off). ``unknown``: why ``every_text`` is forced (for
    the log; C does not read it).
    """

    enabled: bool
    every_text: bool
    any_char: bytes
    digit_runs: tuple[DigitRunGate, ...]
    scrubs_attribute: Callable[[str], bool] | None
    unknown: tuple[str, ...] = ()


def byte_set(chars: Iterable[str]) -> bytes:
    """A 256-entry byte set holding ``chars`` (ASCII)."""
    table = bytearray(256)
    for char in chars:
        table[ord(char)] = 1
    return bytes(table)


def compile_gate(
    rules: Sequence[DetectorRule],
    enabled: bool = True,
    scrubs_attribute: Callable[[str], bool] | None = None,
    options: Iterable[str] = (),
) -> RedactionGate:
    """The gate for ``rules`` (the detectors enabled, extra patterns included): it fires on a
    text whenever any of their triggers does. ``options`` are the configuration's option names;
    an unknown one, like an unknown trigger, makes it fire on every text."""
    if not enabled:
        return RedactionGate(False, False, bytes(256), (), None)
    unknown = [f"option {name!r}" for name in options if name not in KNOWN_REDACTION_OPTIONS]
    every_text = False
    chars: set[str] = set()
    runs: set[tuple[int, frozenset[str], int]] = set()
    for rule in rules:
        trigger: Any = rule.trigger
        kind = type(trigger)
        if kind not in KNOWN_TRIGGERS:
            unknown.append(f"trigger {kind.__name__} of detector {rule.name!r}")
        elif {f.name for f in dataclasses.fields(trigger)} != KNOWN_TRIGGERS[kind]:
            unknown.append(f"trigger {kind.__name__} with fields C does not read ({rule.name!r})")
        elif kind is Always:
            every_text = True
        elif kind is AnyChar:
            if not trigger.chars.isascii():
                unknown.append(f"non-ASCII AnyChar {trigger.chars!r} of {rule.name!r}")
            chars.update(trigger.chars)
        elif not (
            isinstance(trigger.min_digits, int)
            and isinstance(trigger.min_separators, int)
            and trigger.separators.isascii()
            and not any(c.isdigit() for c in trigger.separators)
            # Under one digit, a run of separators alone fires in Python once the text holds a
            # digit anywhere: not a per-run rule, so C does not evaluate it.
            and (trigger.min_digits >= 1 or trigger.min_separators <= 0)
        ):
            unknown.append(f"DigitRun {trigger!r} of {rule.name!r}")
        else:
            # The regex needs one digit at least; no text holds more than 2**31 characters.
            runs.add(
                (
                    min(max(trigger.min_digits, 1), 2**31),
                    frozenset(trigger.separators),
                    min(max(trigger.min_separators, 0), 2**31),
                )
            )
    # A run implied by another (no more digits and separators needed, over more separators)
    # adds nothing.
    kept = sorted(
        ((n, seps, ns) for n, seps, ns in runs
         if not any((m, other, ms) != (n, seps, ns) and m <= n and seps <= other and ms <= ns
                    for m, other, ms in runs)),
        key=lambda run: (run[0], sorted(run[1]), run[2]),
    )  # fmt: skip
    if len(kept) > _MAX_DIGIT_RUNS:
        unknown.append(f"{len(kept)} digit-run triggers (C evaluates {_MAX_DIGIT_RUNS})")
    if unknown:
        every_text, chars, kept = True, set(), []
    return RedactionGate(
        enabled=True,
        every_text=every_text,
        any_char=byte_set(chars),
        digit_runs=tuple(DigitRunGate(n, byte_set(seps), ns) for n, seps, ns in kept),
        scrubs_attribute=scrubs_attribute,
        unknown=tuple(unknown),
    )


def redaction_gate(redactor: Redactor) -> RedactionGate:
    """``compile_gate`` for a redactor: its enabled detectors and its configuration's options."""
    return compile_gate(
        redactor.detectors,
        enabled=redactor.enabled,
        scrubs_attribute=redactor.scrubs_attribute,
        # Every field of the model: an option left at its default is in force all the same.
        options=type(redactor.config).model_fields,
    )


# --- what the plan knows: every option, ClassVar, constraint and construct it compiles ---------

# ValidationConfig options, each with how the plan applies it. An option missing here (new, so
# of unknown effect) makes every event type Python-only until the plan decides on it.
KNOWN_VALIDATION_OPTIONS: Mapping[str, str] = {
    "max_future_skew_s": "PlanLimits.max_future_ns (validator.window_ns)",
    "max_age_days": "PlanLimits.max_age_ns (validator.window_ns)",
    "max_attributes": "PlanLimits.max_attributes: the attributes map is cut as Python cuts it",
    "max_attribute_value_len": "PlanLimits.max_attribute_value_len: values cut, cut ones gated",
    "max_string_length": "PlanLimits.max_string_length: longer field texts are deferred",
    "control_characters": "PlanLimits.strip_control: a text holding one is deferred",
    # Request-level: counted by the pipeline on the batch, before and apart from the plan.
    "max_rejection_messages": "wording of partial_success; deferred records are worded in Python",
    "max_feedback_per_request": "admission, decided by the pipeline on the request's count",
    "log_rejections": "the rejection log's level, used by the pipeline after delivery",
}
# ClassVars of the event models, each with how the plan compiles it. One missing here (a new
# rule declared as data) makes the types that declare it Python-only until the plan learns it.
KNOWN_CLASSVARS: Mapping[str, str] = {
    "event_type": "TypePlan.event_type, and the feedback event name it is announced by",
    "kafka_key_fields": "TypePlan.kafka_key: the first of these fields with a text is the key",
    "needs_one_of": "TypePlan.one_of: a record setting none of them is deferred (rejected)",
    "sum_fields": "TypePlan.sums: an absent total is the parts' sum; a contradiction defers",
    "text_fields": "an int sent for a plain string defers (Python writes its decimal text)",
}
# pydantic model_config keys; each with the only value the plan implements (None: any value,
# read into the plan).
KNOWN_MODEL_CONFIG: Mapping[str, Any] = {
    "frozen": True,  # no effect on what is accepted
    "extra": "forbid",  # the mapper sets model fields only
    "strict": True,  # C accepts exactly the value types strict mode does (and two widenings)
    "str_max_length": None,  # PlanLimits.max_text_length and each FieldPlan.max_len
    "use_attribute_docstrings": None,  # field descriptions only
}
# The models' validators, by name (the rule each is, and how the plan holds it).
KNOWN_VALIDATORS: Mapping[str, str] = {
    "_ints_as_text": "text_fields: an int for a plain string defers",
    # needs_one_of and sum_fields in one validator (as step 6's tokens_total writes them)
    "_rules": "needs_one_of: TypePlan.one_of; sum_fields: TypePlan.sums",
}
# Field constraints, by exact class (a subclass may check more).
KNOWN_CONSTRAINTS: Mapping[type, str] = {
    annotated_types.Ge: "FieldPlan.lo (numbers only)",
    annotated_types.Le: "FieldPlan.hi (numbers only)",
    annotated_types.MaxLen: "FieldPlan.max_len (code points, as pydantic counts)",
    annotated_types.MinLen: "at most 1: an empty attribute is absent, a present one is longer",
    AllowInfNan: "FieldPlan.finite (and, on a map's values, C's finite check)",
}
# Avro constructs: the keys a schema and its fields may carry, and the types C writes.
KNOWN_AVRO_SCHEMA_KEYS = frozenset({"type", "name", "namespace", "doc", "fields"})
KNOWN_AVRO_FIELD_KEYS = frozenset({"name", "type", "default", "doc"})
# Envelope fields not read from attributes: where C takes each from (SRC_* in _native.c). The
# other envelope fields must be convention keys (ENVELOPE_KEYS).
_SPECIAL_SOURCES = {
    "event_id": SRC_EVENT_ID,
    "timestamp": SRC_TIMESTAMP,
    "received_at": SRC_RECEIVED,
    "carrier": SRC_CARRIER,
    "trace_id": SRC_TRACE,
    "span_id": SRC_SPAN,
    "attributes": SRC_ATTRIBUTES,
    "client_id": SRC_CLIENT,
    "redacted_fields": SRC_EMPTY,  # set only by redaction, and redacted records are deferred
}
# Type fields set only from gen_ai.evaluation.result, whose records C always defers.
_EVALUATION_ONLY_FIELDS = frozenset({"evaluation_name", "explanation"})
# The carrier of every record the plan reads (log records; span events stay in Python).
LOG_RECORD_CARRIER: Carrier = "log_record"


# --- the plan as C reads it, by attribute (``Plan_init`` and friends in _native.c) ------------


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """The configured limits (``ValidationConfig``, ``kafka.message_max_bytes``)."""

    max_string_length: int
    max_attributes: int
    max_attribute_value_len: int
    strip_control: bool  # control_characters != "keep": a text holding one is deferred
    max_future_ns: int
    max_age_ns: int
    max_value_bytes: int
    max_text_length: int  # the models' str_max_length (the least of them)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One field, in Avro order: where its value comes from and what the model accepts."""

    name: str
    source: int  # SRC_*
    kind: int  # K_*
    nullable: bool
    required: bool
    default: int  # D_*: the default of a non-nullable optional field
    lo: int | float | None
    hi: int | float | None
    finite: bool
    max_len: int
    literals: tuple[str, ...]
    redact: bool  # a redactable text (redaction.fields): gated


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """An attribute key feeding field ``field`` (an index into ``TypePlan.fields``)."""

    key: str
    field: int
    first: bool  # the field's first key: beats its second


@dataclass(frozen=True, slots=True)
class SumPlan:
    """``sum_fields``: ``total`` is the sum of ``parts`` (field indices)."""

    total: int
    parts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TypePlan:
    """One event type. ``native`` False: every record of it is deferred (the rest unused)."""

    native: bool
    event_name: str
    event_type: str
    topic: str
    wire_header: bytes  # the Confluent magic byte and schema id
    type_header: tuple[str, bytes]
    version_header: tuple[str, bytes]
    fields: tuple[FieldPlan, ...] = ()
    keys: tuple[KeyPlan, ...] = ()
    prefix: str = ""
    prefix_field: int = -1
    known: tuple[str, ...] = ()  # suffixes under ``prefix`` that are keys of fields
    body_field: int = -1  # a string body sets it when no attribute does (BODY_FIELDS)
    kafka_key: tuple[int, ...] = ()
    one_of: tuple[int, ...] = ()
    sums: tuple[SumPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """The whole plan handed to ``_native.Plan``."""

    record_class: type[OutboundRecord]
    namespace: bytes  # the event id's UUIDv5 namespace
    limits: PlanLimits
    redaction: RedactionGate
    set_aside: tuple[str, ...]
    evaluation_event: str
    feedback_prefix: str  # a name under it matching no type is counted (a misspelling)
    event_name_key: str  # the legacy event.name attribute
    service_key: str  # the attribute hashed into a content id
    carrier: str
    headers: HeaderNames
    receiver_headers: tuple[tuple[str, bytes], ...]  # the lineage pairs every record ends with
    types: tuple[TypePlan, ...]


def build_plan(
    serializers: Mapping[EventType, AvroEventSerializer],
    topics: Mapping[EventType, str],
    validation: ValidationConfig,
    redactor: Redactor,
    max_value_bytes: int,
    telemetry: Telemetry | None = None,
) -> NativeLogs | None:
    """Compile the native tables, or None when the extension is not built.

    A type the plan cannot compile exactly (something not in the allow-lists above) takes the
    Python path: logged once here, and ``telemetry``'s python-only gauge set for it.
    """
    if _native is None:
        return None
    gate = redaction_gate(redactor)
    if gate.unknown:
        log.warning(
            "native fast path: the redaction gate does not know %s; every redactable text "
            "takes the Python path",
            ", ".join(gate.unknown),
        )
    spec, python_only = compile_plan(serializers, topics, validation, gate, redactor,
                                     max_value_bytes)  # fmt: skip
    for event_type, reason in python_only.items():
        log.warning("native fast path: %s takes the Python path: %s", event_type, reason)
    if telemetry is not None:
        telemetry.set_native_python_only({t: t in python_only for t in serializers})
    plan = _native.Plan(spec)
    native_types = [t.event_type for t in spec.types if t.native]
    return NativeLogs(plan, native_types, gate, python_only)


def compile_plan(
    serializers: Mapping[EventType, AvroEventSerializer],
    topics: Mapping[EventType, str],
    validation: ValidationConfig,
    gate: RedactionGate,
    redactor: Redactor,
    max_value_bytes: int,
) -> tuple[PlanSpec, dict[str, str]]:
    """The plan, and why each type left out of it is (event type -> reason). Pure."""
    future_ns, age_ns = window_ns(validation)
    common = _unknown_options(validation)
    type_plans = []
    python_only: dict[str, str] = {}
    for event_type, serializer in serializers.items():
        try:
            if common:
                raise UnsupportedForNative(common)
            type_plan = _type_plan(event_type, serializer, topics[event_type], redactor)
        except UnsupportedForNative as exc:
            python_only[event_type] = str(exc)
            type_plan = _python_only(event_type, serializer, topics[event_type])
        type_plans.append(type_plan)
    text_caps = [int(m.model_config.get("str_max_length") or 65536) for m in EVENT_MODELS.values()]
    spec = PlanSpec(
        record_class=OutboundRecord,
        namespace=EVENT_ID_NAMESPACE.bytes,
        limits=PlanLimits(
            max_string_length=validation.max_string_length,
            max_attributes=validation.max_attributes,
            max_attribute_value_len=validation.max_attribute_value_len,
            strip_control=validation.control_characters != "keep",
            max_future_ns=min(future_ns, _NS_CAP),
            max_age_ns=min(age_ns, _NS_CAP),
            max_value_bytes=max_value_bytes,
            max_text_length=min(text_caps),
        ),
        redaction=gate,
        set_aside=tuple(sorted(SET_ASIDE_KEYS)),
        evaluation_event=conv.GENAI_EVALUATION_EVENT,
        feedback_prefix=conv.FEEDBACK_PREFIX,
        event_name_key=conv.EVENT_NAME_ATTRIBUTE,
        service_key=conv.SERVICE_KEY,
        carrier=LOG_RECORD_CARRIER,
        headers=HEADERS,
        receiver_headers=RECEIVER_HEADERS,
        types=tuple(type_plans),
    )
    return spec, python_only


def _unknown_options(validation: ValidationConfig) -> str:
    """Why no type can be native under ``validation`` ("" when every option is known)."""
    unknown = [
        name for name in type(validation).model_fields if name not in KNOWN_VALIDATION_OPTIONS
    ]
    return f"validation option(s) {', '.join(unknown)} unknown to the plan" if unknown else ""


def _unknown_rules(model: type[FeedbackEvent]) -> list[str]:
    """The ClassVars, model_config keys and validators of ``model`` the plan does not know."""
    unknown = [f"ClassVar {n}" for n in sorted(model.__class_vars__) if n not in KNOWN_CLASSVARS]
    for key, value in model.model_config.items():
        if key not in KNOWN_MODEL_CONFIG:
            unknown.append(f"model_config {key}")
        elif KNOWN_MODEL_CONFIG[key] is not None and value != KNOWN_MODEL_CONFIG[key]:
            unknown.append(f"model_config {key}={value!r}")
    decorators = model.__pydantic_decorators__
    for kind in ("validators", "field_validators", "root_validators", "field_serializers",
                 "model_serializers", "computed_fields"):  # fmt: skip
        unknown.extend(
            f"{kind[:-1].replace('_', ' ')} {name}" for name in getattr(decorators, kind)
        )
    unknown.extend(
        f"model validator {name}"
        for name in decorators.model_validators
        if name not in KNOWN_VALIDATORS
    )
    return unknown


def _event_name(event_type: str) -> str:
    names = [name for name, t in conv.FEEDBACK_EVENT_NAMES.items() if t == event_type]
    if len(names) != 1:
        raise AssertionError(f"{event_type} needs exactly one feedback event name")
    return names[0]


def _python_only(event_type: str, serializer: AvroEventSerializer, topic: str) -> TypePlan:
    type_header, version_header = type_headers(event_type, serializer.schema.version)
    return TypePlan(
        False, _event_name(event_type), event_type, topic, serializer.wire_header,
        type_header, version_header,
    )  # fmt: skip


def _type_plan(
    event_type: EventType, serializer: AvroEventSerializer, topic: str, redactor: Redactor
) -> TypePlan:
    model = EVENT_MODELS[event_type]
    unknown = _unknown_rules(model)
    if unknown:
        raise UnsupportedForNative(f"the plan does not know {', '.join(unknown)}")
    definition = serializer.schema.definition
    if set(definition) - KNOWN_AVRO_SCHEMA_KEYS:
        raise UnsupportedForNative(
            f"schema keys {sorted(set(definition) - KNOWN_AVRO_SCHEMA_KEYS)}"
        )
    schema_fields = definition["fields"]
    for f in schema_fields:
        if set(f) - KNOWN_AVRO_FIELD_KEYS:
            raise UnsupportedForNative(
                f"{f['name']}: field keys {sorted(set(f) - KNOWN_AVRO_FIELD_KEYS)}"
            )
    names = [f["name"] for f in schema_fields]
    if set(names) != set(model.model_fields):
        raise UnsupportedForNative("the schema's fields are not the model's")
    index = {name: i for i, name in enumerate(names)}
    prefix, target = conv.PREFIX_MAPS.get(event_type, ("", ""))
    keyed = {name for name, _ in FIELD_PLAN[event_type]}
    for name in model.model_fields:
        if not (name in _SPECIAL_SOURCES or name in keyed or name == target
                or name in _EVALUATION_ONLY_FIELDS):  # fmt: skip
            raise UnsupportedForNative(f"{name}: no source the plan knows")
    redact = set(redactor.config.fields) if redactor.enabled else set()
    fields = tuple(_field_plan(model, f, target, redact) for f in schema_fields)
    # The mapper's plan (which holds each field to two keys): a first key beats a second.
    keys = tuple(
        KeyPlan(key, index[name], rank == 0)
        for name, candidates in FIELD_PLAN[event_type]
        for rank, key in enumerate(candidates)
    )
    one_of = tuple(index[name] for name in model.needs_one_of)
    if any(fields[i].source != SRC_ATTR for i in one_of):
        raise UnsupportedForNative("needs_one_of names a field not read from an attribute")
    sums = tuple(
        SumPlan(index[total], tuple(index[p] for p in parts)) for total, parts in model.sum_fields
    )
    for rule in sums:
        if any(
            fields[i].source != SRC_ATTR or fields[i].kind != K_LONG or not fields[i].nullable
            for i in (rule.total, *rule.parts)
        ):
            raise UnsupportedForNative("sum_fields of other than optional integer attributes")
    type_header, version_header = type_headers(event_type, serializer.schema.version)
    body = conv.BODY_FIELDS.get(event_type)
    if body is not None and (fields[index[body]].source, fields[index[body]].kind) != (
        SRC_ATTR,
        K_STRING,
    ):
        raise UnsupportedForNative(f"the body feeds {body}, which is not a string attribute")
    return TypePlan(
        native=True,
        event_name=_event_name(event_type),
        event_type=event_type,
        topic=topic,
        wire_header=serializer.wire_header,
        type_header=type_header,
        version_header=version_header,
        fields=fields,
        keys=keys,
        prefix=prefix,
        prefix_field=index[target] if target else -1,
        known=tuple(conv.FIELD_KEYS[event_type]),
        body_field=index[body] if body is not None else -1,
        kafka_key=tuple(index[name] for name in model.kafka_key_fields),
        one_of=one_of,
        sums=sums,
    )


def _field_plan(
    model: type[FeedbackEvent], avro_field: dict[str, Any], prefix_target: str, redact: set[str]
) -> FieldPlan:
    name = avro_field["name"]
    info = model.model_fields[name]
    kind, nullable = _avro_kind(avro_field["type"], name)
    py_kind, py_nullable, literals, metadata = _model_kind(info, name)
    if py_kind != kind or py_nullable != nullable:
        raise UnsupportedForNative(f"{name}: the model and the schema disagree on its type")
    source = SRC_PREFIX if name == prefix_target else _SPECIAL_SOURCES.get(name, SRC_ATTR)
    if source == SRC_PREFIX and kind != K_DBL_MAP:
        raise UnsupportedForNative(f"{name}: prefix maps of {kind} are not supported")
    if kind == K_STR_MAP and source != SRC_ATTRIBUTES:
        raise UnsupportedForNative(f"{name}: string maps come only from attributes")
    if kind == K_DBL_MAP and source != SRC_PREFIX:
        raise UnsupportedForNative(f"{name}: number maps come only from a prefix")
    lo: Any = None
    hi: Any = None
    finite = False
    max_len = int(model.model_config.get("str_max_length") or 65536)
    for item in metadata:
        if type(item) not in KNOWN_CONSTRAINTS:
            raise UnsupportedForNative(f"{name}: constraint {item!r} is not supported")
        if isinstance(item, annotated_types.Ge):
            lo = item.ge
        elif isinstance(item, annotated_types.Le):
            hi = item.le
        elif isinstance(item, annotated_types.MaxLen):
            max_len = min(max_len, item.max_length)
        elif isinstance(item, annotated_types.MinLen) and item.min_length <= 1:
            pass  # "" is an absent attribute, so every value present has length >= 1
        elif isinstance(item, AllowInfNan):
            finite = not item.allow_inf_nan
        else:
            raise UnsupportedForNative(f"{name}: constraint {item!r} is not supported")
    if (lo is not None or hi is not None) and kind not in (K_LONG, K_DOUBLE):
        raise UnsupportedForNative(f"{name}: bounds on a non-number")
    required = info.is_required()
    default = D_NONE
    if not required and not nullable:
        value = info.get_default(call_default_factory=True)
        if value is True:
            default = D_TRUE
        elif value is False:
            default = D_FALSE
        elif value in ([], {}):
            default = D_EMPTY
        else:
            raise UnsupportedForNative(f"{name}: default {value!r} is not supported")
    elif not required and info.default is not None:
        raise UnsupportedForNative(f"{name}: a nullable field defaulting to a value")
    return FieldPlan(
        name=name,
        source=source,
        kind=kind,
        nullable=nullable,
        required=required,
        default=default,
        lo=lo,
        hi=hi,
        finite=finite,
        max_len=max_len,
        literals=literals,
        redact=name in redact and kind == K_STRING,
    )


def _avro_kind(avro_type: Any, name: str) -> tuple[int, bool]:
    nullable = False
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type[0] != "null":
            raise UnsupportedForNative(f"{name}: only [null, X] unions are supported")
        nullable, avro_type = True, avro_type[1]
    if isinstance(avro_type, str) and avro_type in _AVRO_KINDS:
        return _AVRO_KINDS[avro_type], nullable
    if isinstance(avro_type, dict):
        t = avro_type.get("type")
        if t == "long" and avro_type.get("logicalType") == "timestamp-micros":
            return K_TIMESTAMP, nullable
        if avro_type.get("logicalType") is None:
            if t == "array" and avro_type.get("items") == "string":
                return K_STR_LIST, nullable
            if t == "map" and avro_type.get("values") == "string":
                return K_STR_MAP, nullable
            if t == "map" and avro_type.get("values") == "double":
                return K_DBL_MAP, nullable
    raise UnsupportedForNative(f"{name}: Avro type {avro_type!r} is not supported")


def _model_kind(info: FieldInfo, name: str) -> tuple[int, bool, tuple[str, ...], list[Any]]:
    """(kind, nullable, literals, constraints) of a model field's annotation."""
    annotation: Any = info.annotation
    metadata = list(info.metadata)
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(typing.get_args(annotation)) != 2:
            raise UnsupportedForNative(f"{name}: unions other than X | None")
        nullable, annotation = True, members[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *annotated = typing.get_args(annotation)
        for item in annotated:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    literals: tuple[str, ...] = ()
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if not all(isinstance(v, str) for v in values):
            raise UnsupportedForNative(f"{name}: non-string literals")
        return K_STRING, nullable, tuple(values), metadata
    if annotation in _PY_KINDS:
        return _PY_KINDS[annotation], nullable, literals, metadata
    if annotation is datetime:
        return K_TIMESTAMP, nullable, literals, metadata
    args = typing.get_args(annotation)
    if origin is list and args == (str,):
        return K_STR_LIST, nullable, literals, metadata
    if origin is dict and args == (str, str):
        return K_STR_MAP, nullable, literals, metadata
    if origin is dict and len(args) == 2 and args[0] is str:
        value: Any = args[1]
        if typing.get_origin(value) is typing.Annotated:
            value, *inner = typing.get_args(value)
            for item in inner:
                for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
                    # Finite is what C checks for map values; anything else is not supported.
                    if type(constraint) is not AllowInfNan or constraint.allow_inf_nan:
                        raise UnsupportedForNative(f"{name}: map value constraint {constraint!r}")
            if value is float:
                return K_DBL_MAP, nullable, literals, metadata
    raise UnsupportedForNative(f"{name}: annotation {info.annotation!r} is not supported")
