"""Hypothesis strategies for hostile OTLP export requests, and the invariants every one must keep.

A generated ``HostileCase`` mixes four kinds of record and knows what each should become:

- **known-good** feedback (one per event type and carrier, each with a unique ``event.id``
  starting ``good-``): must be delivered whatever else the request holds;
- **arbitrary** feedback: a feedback event name with random values of random types for the
  convention's keys, absurd timestamps and ids of any length: delivered or rejected, never lost;
- **noise**: records that are not feedback: counted as ignored;
- contexts (resources, spans) that are either *clean* (may hold known-good records) or
  *hostile* (random values for the convention's keys; hold only arbitrary records and noise,
  since a resource's ``session.id`` legitimately feeds every record under it).

``check_invariants`` states what must hold after ``Pipeline.process``. A plain module rather than
``conftest.py`` so both test files (and nothing else) import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp_feedback.encoding.dead_letter import from_value
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.mapping import MappedRequest
from otlp_feedback.mapping import convention as conv
from otlp_feedback.pipeline import ExportOutcome
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.testing.observe import decode_event
from otlp_feedback.testing.otlp import to_any_value

RECEIVED_NS = 1_735_689_660_000_000_000  # the pipeline's clock: 2025-01-01T00:01:00Z
GOOD_TIME_NS = RECEIVED_NS - 60 * 10**9
U64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DLQ_TOPIC = "feedback.dlq"
# Deep enough to stress recursion in mapping and JSON, shallow enough that the request stays
# under protobuf's decoding depth limit (100 messages; each nesting level costs two).
MAX_CHAIN_DEPTH = 30

CONVENTION_KEYS = tuple(
    sorted(
        {
            key
            for table in (conv.ENVELOPE_KEYS, *conv.FIELD_KEYS.values())
            for keys in table.values()
            for key in keys
        }
        | {prefix for prefix, _ in conv.PREFIX_MAPS.values()}
        | {prefix + "tone" for prefix, _ in conv.PREFIX_MAPS.values()}
        | {
            conv.EVENT_NAME_ATTRIBUTE,
            conv.GENAI_OPERATION_KEY,
            conv.EVAL_NAME,
            conv.EVAL_SCORE,
            conv.EVAL_LABEL,
            conv.EVAL_EXPLANATION,
        }
    )
)
_MODEL_KEY = "gen_ai.request.model"

# Attributes that make each kind of known-good record valid on their own, whatever the clean
# context adds. ``event.id`` is added per record.
GOOD_LOG_ATTRIBUTES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("feedback.user_feedback", {"session.id": "s-1", "feedback.rating": 4, "feedback.tags": ["a"]}),
    ("feedback.performance_metrics", {"gen_ai.request.model": "gpt-4o", "feedback.latency_ms": 5}),
    ("feedback.model_response", {"feedback.quality_score": 80.0, "feedback.quality.tone": 0.5}),
    ("feedback.system_health", {"service.name": "svc", "feedback.health.status": "healthy"}),
    (
        "feedback.experiment_result",
        {
            "feedback.experiment.id": "exp-1",
            "feedback.experiment.type": "ab_test",
            "feedback.experiment.variant_id": "B",
        },
    ),
    (
        "gen_ai.evaluation.result",
        {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.66},
    ),
    (
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "user_feedback",
            "session.id": "s-2",
            "gen_ai.evaluation.score.label": "thumbs_up",
        },
    ),
)
GOOD_GENAI_ATTRIBUTES = {"gen_ai.operation.name": "chat", _MODEL_KEY: "gpt-4o"}
CLEAN_RESOURCE = {"service.name": "svc", "deployment.environment.name": "test"}

# --- attribute values ---------------------------------------------------------------------

_chars = st.characters(codec="utf-8")  # protobuf strings are UTF-8: no lone surrogates
control_text = st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp"]))
huge_text = st.builds(lambda c, n: c * n, _chars, st.integers(1_000, 70_000))
hostile_text = st.one_of(
    st.text(_chars, max_size=40),
    control_text,
    huge_text,
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202e",
            "\ufeff",
            "NaN",
            "-inf",
            "1e999",
            "up",
            "healthy",
            "ab_test",
            "thumbs_up",
            "user_feedback",
            "relevance",
        ]
    ),
)
hostile_int = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([0, -1, 1, 5, 6, 100, 101, INT64_MIN, INT64_MAX, 2**53 + 1]),
)
hostile_float = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
)
hostile_bytes = st.one_of(
    st.binary(max_size=64), st.sampled_from([b"", b"\xff\xfe", b"\xc3\x28", b"\x00" * 16])
)
scalars = st.one_of(
    hostile_text, hostile_int, hostile_float, st.booleans(), hostile_bytes, st.none()
)
kvlist_keys = st.one_of(st.sampled_from(CONVENTION_KEYS), st.text(_chars, max_size=12))


def _nest(leaf: Any, depth: int, as_map: bool) -> Any:
    for level in range(depth):
        leaf = {f"k{level}": leaf} if as_map else [leaf]
    return leaf


deep_chains = st.builds(_nest, scalars, st.integers(2, MAX_CHAIN_DEPTH), st.booleans())
hostile_values = st.one_of(
    scalars,
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(kvlist_keys, children, max_size=4)
        ),
        max_leaves=12,
    ),
    deep_chains,
)
# (key, value) pairs rather than a dict, so that a key may repeat as it can on the wire.
hostile_pairs = st.lists(
    st.tuples(st.one_of(st.sampled_from(CONVENTION_KEYS), st.text(_chars)), hostile_values),
    max_size=8,
)
# Keys that are no part of the convention: they end up in the event's string ``attributes``.
free_pairs = st.lists(
    st.tuples(st.text(_chars, max_size=40).map(lambda key: "x." + key), hostile_values),
    max_size=4,
)
hostile_times = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            10**9,
            RECEIVED_NS - 3651 * 86_400 * 10**9,
            U64_MAX,
            U64_MAX - 1,
            RECEIVED_NS + 2 * 86_400 * 10**9,
            2**63,
            GOOD_TIME_NS,
        ]
    ),
    st.integers(0, U64_MAX),
)
hostile_ids = st.binary(max_size=40)
good_times = st.sampled_from([0, GOOD_TIME_NS])
good_ids = st.sampled_from([(b"", b""), (bytes(range(1, 17)), bytes(range(1, 9)))])
# Arbitrary records mostly carry a valid time, or the time check would hide everything after it.
arbitrary_times = st.integers(0, 3).flatmap(lambda n: hostile_times if n == 0 else good_times)


def key_values(pairs: Sequence[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=key, value=to_any_value(value)) for key, value in pairs]


def _not_feedback(name: str) -> bool:
    return conv.event_type_for(name) is None


# --- the request ----------------------------------------------------------------------------


@dataclass
class HostileCase:
    """A generated request and what the mapper must find in it."""

    request: ExportLogsServiceRequest | ExportTraceServiceRequest
    feedback: int = 0  # records that are feedback (known-good or arbitrary)
    ignored: int = 0
    good_ids: list[str] = field(default_factory=list)

    def next_good_id(self) -> str:
        event_id = f"good-{len(self.good_ids)}"
        self.good_ids.append(event_id)
        return event_id


@st.composite
def _good_log_record(draw: st.DrawFn, case: HostileCase) -> LogRecord:
    name, attributes = draw(st.sampled_from(GOOD_LOG_ATTRIBUTES))
    trace_id, span_id = draw(good_ids)
    record = LogRecord(time_unix_nano=draw(good_times), trace_id=trace_id, span_id=span_id)
    pairs = [*draw(free_pairs), *attributes.items(), ("event.id", case.next_good_id())]
    if draw(st.booleans()):
        record.event_name = name
    else:  # older SDKs: the event name as an attribute
        pairs.append((conv.EVENT_NAME_ATTRIBUTE, name))
    record.attributes.extend(key_values(pairs))
    body = draw(st.one_of(st.none(), st.text(_chars, max_size=200), hostile_int))
    if body is not None:
        record.body.CopyFrom(to_any_value(body))
    case.feedback += 1
    return record


@st.composite
def _arbitrary_feedback(draw: st.DrawFn) -> tuple[str, list[tuple[str, Any]]]:
    """A feedback event name and random attributes, often over a valid set (so that validation
    gets past the first problem and encoding sees strange but valid values)."""
    name, valid = draw(st.sampled_from(GOOD_LOG_ATTRIBUTES))
    base = list(valid.items()) if draw(st.booleans()) else []
    return name, [*base, *draw(hostile_pairs)]


@st.composite
def _arbitrary_log_record(draw: st.DrawFn, case: HostileCase) -> LogRecord:
    name, pairs = draw(_arbitrary_feedback())
    record = LogRecord(
        event_name=name,
        time_unix_nano=draw(arbitrary_times),
        observed_time_unix_nano=draw(hostile_times),
        trace_id=draw(hostile_ids),
        span_id=draw(hostile_ids),
    )
    record.attributes.extend(key_values(pairs))
    body = draw(hostile_values)
    if body is not None:
        record.body.CopyFrom(to_any_value(body))
    case.feedback += 1
    return record


@st.composite
def _noise_log_record(draw: st.DrawFn, case: HostileCase) -> LogRecord:
    record = LogRecord(
        event_name=draw(st.text(_chars, max_size=30).filter(_not_feedback)),
        time_unix_nano=draw(hostile_times),
        trace_id=draw(hostile_ids),
    )
    pairs = draw(hostile_pairs)
    if not record.event_name:  # else an event.name attribute could make it feedback
        pairs = [(key, value) for key, value in pairs if key != conv.EVENT_NAME_ATTRIBUTE]
    record.attributes.extend(key_values(pairs))
    case.ignored += 1
    return record


@st.composite
def logs_cases(draw: st.DrawFn) -> HostileCase:
    """A logs export request mixing known-good, arbitrary and non-feedback records."""
    request = ExportLogsServiceRequest()
    case = HostileCase(request)
    for _ in range(draw(st.integers(0, 3))):
        clean = draw(st.booleans())
        resource_pairs = (
            [*CLEAN_RESOURCE.items(), *draw(free_pairs)] if clean else draw(hostile_pairs)
        )
        kinds = [_arbitrary_log_record, _noise_log_record, *([_good_log_record] * clean)]
        resource_logs = ResourceLogs(resource=Resource(attributes=key_values(resource_pairs)))
        for _ in range(draw(st.integers(0, 2))):
            count = draw(st.integers(0, 6))
            records = [draw(draw(st.sampled_from(kinds))(case)) for _ in range(count)]
            resource_logs.scope_logs.append(ScopeLogs(log_records=records))
        request.resource_logs.append(resource_logs)
    return case


def _event(name: str, pairs: Sequence[tuple[str, Any]], time_ns: int) -> Span.Event:
    event = Span.Event(name=name, time_unix_nano=time_ns)
    event.attributes.extend(key_values(pairs))
    return event


@st.composite
def _noise_events(draw: st.DrawFn, case: HostileCase) -> list[Span.Event]:
    names = draw(st.lists(st.text(_chars, max_size=20).filter(_not_feedback), max_size=2))
    case.ignored += len(names)
    return [_event(name, draw(hostile_pairs), draw(hostile_times)) for name in names]


@st.composite
def _feedback_events_span(draw: st.DrawFn, case: HostileCase, clean: bool) -> Span:
    """A span carrying feedback span events (known-good ones only in a clean span)."""
    span_pairs = (
        draw(free_pairs)
        if clean
        else [(k, v) for k, v in draw(hostile_pairs) if k != conv.GENAI_OPERATION_KEY]
    )
    trace_id, span_id = draw(good_ids) if clean else (draw(hostile_ids), draw(hostile_ids))
    span = Span(name="span", trace_id=trace_id, span_id=span_id)
    span.attributes.extend(key_values(span_pairs))
    for _ in range(draw(st.integers(1, 4))):
        if clean and draw(st.booleans()):
            name, attributes = draw(st.sampled_from(GOOD_LOG_ATTRIBUTES))
            pairs = [*draw(free_pairs), *attributes.items(), ("event.id", case.next_good_id())]
            span.events.append(_event(name, pairs, draw(good_times)))
        else:
            name, pairs = draw(_arbitrary_feedback())
            span.events.append(_event(name, pairs, draw(arbitrary_times)))
        case.feedback += 1
    span.events.extend(draw(_noise_events(case)))
    return span


@st.composite
def _genai_span(draw: st.DrawFn, case: HostileCase, good: bool) -> Span:
    """A GenAI client span; an arbitrary one still names a model (last key wins), so it is
    feedback whatever else its attributes say."""
    if good:
        trace_id, span_id = draw(good_ids)
        start = GOOD_TIME_NS - draw(st.integers(0, 10**10))
        span = Span(
            name="chat gpt-4o",
            trace_id=trace_id,
            span_id=span_id,
            start_time_unix_nano=start,
            end_time_unix_nano=GOOD_TIME_NS,
        )
        pairs = [
            *draw(free_pairs),
            *GOOD_GENAI_ATTRIBUTES.items(),
            ("event.id", case.next_good_id()),
        ]
    else:
        span = Span(
            name=draw(st.text(_chars, max_size=20)),
            trace_id=draw(hostile_ids),
            span_id=draw(hostile_ids),
            start_time_unix_nano=draw(hostile_times),
            end_time_unix_nano=draw(arbitrary_times),
        )
        operation = draw(hostile_values)
        pairs = [*draw(hostile_pairs), (conv.GENAI_OPERATION_KEY, operation), (_MODEL_KEY, "m")]
    span.status.code = draw(st.sampled_from(list(Status.StatusCode.values())))
    span.attributes.extend(key_values(pairs))
    span.events.extend(draw(_noise_events(case)))
    case.feedback += 1
    return span


@st.composite
def _noise_span(draw: st.DrawFn, case: HostileCase) -> Span:
    span = Span(name=draw(st.text(_chars, max_size=20)), trace_id=draw(hostile_ids))
    pairs = [(k, v) for k, v in draw(hostile_pairs) if k != conv.GENAI_OPERATION_KEY]
    span.attributes.extend(key_values(pairs))
    case.ignored += 1
    span.events.extend(draw(_noise_events(case)))
    return span


@st.composite
def _span(draw: st.DrawFn, case: HostileCase, clean: bool) -> Span:
    kind = draw(st.sampled_from(["events", "genai", "noise"]))
    if kind == "events":
        return draw(_feedback_events_span(case, clean and draw(st.booleans())))
    if kind == "genai":
        return draw(_genai_span(case, clean and draw(st.booleans())))
    return draw(_noise_span(case))


@st.composite
def traces_cases(draw: st.DrawFn) -> HostileCase:
    """A trace export request mixing feedback span events, GenAI spans and plain spans."""
    request = ExportTraceServiceRequest()
    case = HostileCase(request)
    for _ in range(draw(st.integers(0, 3))):
        clean = draw(st.booleans())
        resource_pairs = (
            [*CLEAN_RESOURCE.items(), *draw(free_pairs)] if clean else draw(hostile_pairs)
        )
        resource_spans = ResourceSpans(resource=Resource(attributes=key_values(resource_pairs)))
        for _ in range(draw(st.integers(0, 2))):
            spans = [draw(_span(case, clean)) for _ in range(draw(st.integers(0, 4)))]
            resource_spans.scope_spans.append(ScopeSpans(spans=spans))
        request.resource_spans.append(resource_spans)
    return case


hostile_cases = st.one_of(logs_cases(), traces_cases())


# --- the invariants -------------------------------------------------------------------------


def check_invariants(
    mapped: MappedRequest,
    outcome: ExportOutcome,
    delivered: Sequence[OutboundRecord],
    registry: InMemoryRegistry,
    *,
    feedback: int,
    good_ids: Sequence[str] = (),
    ignored: int | None = None,
) -> None:
    """What every request must leave behind, however hostile its content."""
    assert len(mapped.feedback) == feedback
    if ignored is not None:
        assert mapped.ignored == ignored
    assert outcome.accepted + outcome.rejected == feedback
    assert all(rejection.reason.strip() for rejection in outcome.rejections)
    # The partial_success message must be a valid protobuf string (no lone surrogates).
    ExportLogsServiceResponse().partial_success.error_message = outcome.message(5)

    events = [record for record in delivered if record.topic != DLQ_TOPIC]
    assert len(events) == outcome.accepted
    missing = set(good_ids) - {record.event_id for record in events}
    assert not missing, f"known-good records not delivered: {sorted(missing)}: {outcome}"
    for record in events:
        assert decode_event(record, registry)["event_id"] == record.event_id

    letters = [record for record in delivered if record.topic == DLQ_TOPIC]
    assert len(letters) == outcome.rejected == outcome.dead_lettered
    for letter in letters:
        from_value(letter.value)
