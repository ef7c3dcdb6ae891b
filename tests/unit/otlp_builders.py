"""Build OTLP requests in code, load the OTLP/JSON fixtures in ``tests/data``, and run records
through mapping + validation with a fixed clock.

The builders have the defaults these tests share: a fixed event time, trace and span ids, and a
resource naming the service. (They do not reuse ``otlp_feedback.testing.otlp``: importing that
package imports the whole app, and the pure stages' tests should not depend on it.)

A plain module rather than ``conftest.py``: the test files import these functions, and with
several ``conftest.py`` files in non-package folders ``import conftest`` resolves to whichever was
imported last.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_feedback.config import RedactionConfig, ValidationConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.events import EVENT_TYPES, FeedbackEvent
from otlp_feedback.mapping import MappedRequest, RawFeedback
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.validation import Rejection, Validator
from otlp_feedback.validation.redaction import Redactor

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

T0_NS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z: the event time used everywhere
RECEIVED_NS = T0_NS + 60 * 10**9  # the receiver's clock in mapping/validation tests
RECEIVED_AT = datetime.fromtimestamp(RECEIVED_NS / 1e9, UTC)
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
RESOURCE = {"service.name": "support-bot", "deployment.environment.name": "staging"}

# The smallest set of attributes that makes each event type valid (service.name comes from
# ``RESOURCE``).
MINIMAL: dict[str, dict[str, Any]] = {
    "user_feedback": {"session.id": "sess-1", "feedback.rating": 4},
    "performance_metrics": {"gen_ai.request.model": "gpt-4o"},
    "model_response": {"feedback.quality_score": 80.0},
    "system_health": {"feedback.health.status": "healthy"},
    "experiment_result": {
        "feedback.experiment.id": "exp-1",
        "feedback.experiment.type": "ab_test",
        "feedback.experiment.variant_id": "A",
    },
}

M = TypeVar("M", bound=Message)


def to_any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP ``AnyValue`` (``None`` leaves it unset)."""
    out = AnyValue()
    if value is None:
        pass
    elif isinstance(value, bool):  # before int: bool is an int
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, Mapping):
        out.kvlist_value.values.extend(key_values(value))
    elif isinstance(value, list | tuple):
        out.array_value.values.extend(to_any_value(v) for v in value)
    else:
        raise TypeError(f"no AnyValue for {value!r}")
    return out


def key_values(attributes: Mapping[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any_value(v)) for k, v in (attributes or {}).items()]


def log_record(
    event_name: str = "",
    attributes: Mapping[str, Any] | None = None,
    body: Any = None,
    *,
    time_ns: int = T0_NS,
    trace_id: str = TRACE_ID,
    span_id: str = SPAN_ID,
) -> LogRecord:
    record = LogRecord(
        event_name=event_name,
        time_unix_nano=time_ns,
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
    )
    record.attributes.extend(key_values(attributes))
    if body is not None:
        record.body.CopyFrom(to_any_value(body))
    return record


def logs_request(
    *records: LogRecord, resource: Mapping[str, Any] | None = None
) -> ExportLogsServiceRequest:
    """One resource (``RESOURCE`` unless given) with one scope holding ``records``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values(RESOURCE if resource is None else resource))
    resource_logs.scope_logs.add().log_records.extend(records)
    return request


def span_event(
    name: str, attributes: Mapping[str, Any] | None = None, *, time_ns: int = T0_NS
) -> Span.Event:
    event = Span.Event(name=name, time_unix_nano=time_ns)
    event.attributes.extend(key_values(attributes))
    return event


def span(
    name: str = "POST /chat",
    attributes: Mapping[str, Any] | None = None,
    events: Iterable[Span.Event] = (),
    *,
    start_ns: int = T0_NS,
    end_ns: int = T0_NS + 1_250_000_000,
    status: Status.StatusCode.ValueType = Status.STATUS_CODE_UNSET,
    trace_id: str = TRACE_ID,
    span_id: str = SPAN_ID,
) -> Span:
    out = Span(
        name=name,
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        kind=Span.SPAN_KIND_CLIENT,
        status=Status(code=status),
    )
    out.attributes.extend(key_values(attributes))
    out.events.extend(events)
    return out


def genai_span(attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> Span:
    """A GenAI client span (``chat gpt-4o``) with ``attributes`` over the usual ones."""
    base = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
    return span("chat gpt-4o", {**base, **(attributes or {})}, **kwargs)


def traces_request(
    *spans: Span, resource: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        key_values(RESOURCE if resource is None else resource)
    )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


_OTLP_JSON_HEX_IDS = frozenset({"traceId", "spanId", "parentSpanId"})


def load_otlp_json(name: str, message_type: type[M]) -> M:
    """Parse a fixture in the OTLP/JSON encoding.

    OTLP/JSON differs from protobuf's canonical JSON in one way that matters here: trace and
    span ids are hex, not base64. They are converted before ``json_format.Parse``.
    """
    data = json.loads((DATA_DIR / name).read_text())
    return json_format.ParseDict(_hex_ids_to_base64(data), message_type())


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode()
            if key in _OTLP_JSON_HEX_IDS and isinstance(value, str)
            else _hex_ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def validate(
    raw: RawFeedback, limits: ValidationConfig | None = None, received_ns: int = RECEIVED_NS
) -> FeedbackEvent | Rejection:
    """Validate one mapped record as the pipeline does, with a fixed receive time."""
    limits = limits or ValidationConfig()
    redactor = Redactor(RedactionConfig(), limits.max_attribute_value_len)
    received_at = datetime.fromtimestamp(received_ns / 1e9, UTC)
    return Validator(limits).validate(raw, received_ns, received_at, redactor)


def only(mapped: MappedRequest) -> RawFeedback:
    """The single feedback record of a request (fails the test if there is not exactly one)."""
    assert len(mapped.feedback) == 1, [r.location for r in mapped.feedback]
    return mapped.feedback[0]


def event_of(raw: RawFeedback, limits: ValidationConfig | None = None) -> FeedbackEvent:
    """Validate ``raw`` and fail the test, showing the reason, if it is rejected."""
    result = validate(raw, limits)
    assert not isinstance(result, Rejection), result.describe()
    return result


def by_case(mapped: MappedRequest) -> dict[str, RawFeedback]:
    """Fixture records by their ``test.case`` attribute."""
    return {str(raw.source_attributes["test.case"]): raw for raw in mapped.feedback}


EVENT_TOPICS = frozenset(f"feedback.{t}" for t in EVENT_TYPES)


def event_records(sink: InMemorySink) -> list[OutboundRecord]:
    """What the sink got on the event topics (dead letters travel the same way; left out)."""
    return [record for record in sink.records if record.topic in EVENT_TOPICS]


@dataclass(frozen=True)
class Admit:
    """A caller's admission (``pipeline.Admission``) that hands each count to ``check``, which
    records it or raises to refuse the request."""

    check: Callable[[int], None]
    scope: None = None  # no per-record scope

    def admit(self, events: int) -> None:
        self.check(events)
