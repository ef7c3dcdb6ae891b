"""Feedback carried as OTel log records (events): ``ExportLogsServiceRequest`` -> ``RawFeedback``.

A log record is feedback when its ``event_name`` (or, for older SDKs, its ``event.name``
attribute) is one of the convention's names. Everything else is counted as ignored.
"""

from __future__ import annotations

from collections.abc import Container

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.attributes import AttrValue, attributes_dict, find_string
from otlp_feedback.mapping.records import Context, MappedRequest, build_raw

_NO_SPAN: dict[str, AttrValue] = {}
_WHERE = "resource_logs[{}].scope_logs[{}].log_records[{}]"


def map_logs_request(
    request: ExportLogsServiceRequest, only: Container[tuple[int, int, int]] | None = None
) -> MappedRequest:
    """Find the feedback records in a logs export request. Pure; never raises on content.

    ``only``: map just the records at these (resource, scope, record) indices (the ones the
    native fast path deferred, or whose sources a refusal needs); ``ignored`` then counts only
    among them.
    """
    out = MappedRequest()
    for ri, resource_logs in enumerate(request.resource_logs):
        resource_attrs: dict[str, AttrValue] | None = None  # converted on first feedback only
        for si, scope_logs in enumerate(resource_logs.scope_logs):
            for li, record in enumerate(scope_logs.log_records):
                if only is not None and (ri, si, li) not in only:
                    continue
                event_name = _event_name(record)
                event_type = conv.event_type_for(event_name)
                if event_type is None or event_name is None:
                    out.ignored += 1
                    if event_name and conv.is_unknown_feedback_name(event_name):
                        out.unknown_names.append(event_name)
                    continue
                if resource_attrs is None:
                    resource_attrs = attributes_dict(resource_logs.resource.attributes)
                record_attrs, body_text = _record_attributes(record)
                out.feedback.append(
                    build_raw(
                        event_name=event_name,
                        event_type=event_type,
                        carrier="log_record",
                        location=(_WHERE, ri, si, li),
                        record_attributes=record_attrs,
                        context=Context(resource_attrs, _NO_SPAN, record.trace_id, record.span_id),
                        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                        content=record.SerializeToString(deterministic=True),
                        body_text=body_text,
                    )
                )
    return out


def feedback_locations(request: ExportLogsServiceRequest) -> list[tuple[int, int, int]]:
    """The (resource, scope, record) indices of the request's feedback records, in request
    order: what ``map_logs_request`` would map, without mapping anything. The native fast path
    numbers its records in this order, so position ``n`` of its result is ``locations[n]``."""
    return [
        (ri, si, li)
        for ri, resource_logs in enumerate(request.resource_logs)
        for si, scope_logs in enumerate(resource_logs.scope_logs)
        for li, record in enumerate(scope_logs.log_records)
        if conv.event_type_for(_event_name(record)) is not None
    ]


def unknown_feedback_names(request: ExportLogsServiceRequest) -> list[str]:
    """The ``feedback.*`` names in ``request`` that announce no event type, in order (the
    native fast path counts them; this names them, for the warning)."""
    return [
        name
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
        if (name := _event_name(record)) and conv.is_unknown_feedback_name(name)
    ]


def _event_name(record: LogRecord) -> str | None:
    """The name a record announces itself by: ``event_name``, or for older SDKs its
    ``event.name`` attribute. Whether it is feedback is ``conv.event_type_for`` of it."""
    return record.event_name or find_string(record.attributes, conv.EVENT_NAME_ATTRIBUTE)


def _record_attributes(record: LogRecord) -> tuple[dict[str, AttrValue], str | None]:
    """The record's attributes, with a key/value body merged under them; or the string body."""
    attrs = attributes_dict(record.attributes)
    kind = record.body.WhichOneof("value")
    if kind == "kvlist_value":
        return {**attributes_dict(record.body.kvlist_value.values), **attrs}, None
    if kind == "string_value":
        return attrs, record.body.string_value
    return attrs, None
