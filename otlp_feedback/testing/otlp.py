"""Build OTLP export requests from plain values (what an SDK would send), for tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status


def to_any_value(value: Any) -> AnyValue:
    """Python value -> AnyValue (bool before int: bool is an int in Python)."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    if isinstance(value, Iterable):
        out = AnyValue()
        out.array_value.values.extend(to_any_value(v) for v in value)
        return out
    raise TypeError(f"cannot express {type(value).__name__} as an OTLP AnyValue")


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any_value(v)) for k, v in attributes.items()]


def make_log_record(
    event_name: str = "",
    attributes: Mapping[str, Any] | None = None,
    *,
    body: Any = None,
    time_unix_nano: int = 0,
    observed_time_unix_nano: int = 0,
    trace_id: bytes = b"",
    span_id: bytes = b"",
) -> LogRecord:
    record = LogRecord(
        event_name=event_name,
        time_unix_nano=time_unix_nano,
        observed_time_unix_nano=observed_time_unix_nano,
        trace_id=trace_id,
        span_id=span_id,
    )
    record.attributes.extend(key_values(attributes or {}))
    if body is not None:
        record.body.CopyFrom(to_any_value(body))
    return record


def logs_request(
    records: Sequence[LogRecord], resource: Mapping[str, Any] | None = None
) -> ExportLogsServiceRequest:
    """One resource, one scope, the given records."""
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=key_values(resource or {})),
                scope_logs=[ScopeLogs(log_records=list(records))],
            )
        ]
    )


def make_span(
    name: str = "span",
    attributes: Mapping[str, Any] | None = None,
    *,
    events: Sequence[tuple[str, Mapping[str, Any], int]] = (),
    trace_id: bytes = b"\x01" * 16,
    span_id: bytes = b"\x02" * 8,
    start_time_unix_nano: int = 0,
    end_time_unix_nano: int = 0,
    error: bool = False,
) -> Span:
    """A span; ``events`` are ``(name, attributes, time_unix_nano)`` triples."""
    span = Span(
        name=name,
        trace_id=trace_id,
        span_id=span_id,
        start_time_unix_nano=start_time_unix_nano,
        end_time_unix_nano=end_time_unix_nano,
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET),
    )
    span.attributes.extend(key_values(attributes or {}))
    for event_name, event_attributes, time_ns in events:
        event = span.events.add(name=event_name, time_unix_nano=time_ns)
        event.attributes.extend(key_values(event_attributes))
    return span


def traces_request(
    spans: Sequence[Span], resource: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(resource or {})),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )
