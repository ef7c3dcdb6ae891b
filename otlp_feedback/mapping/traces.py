"""Feedback carried by spans: span events named by the convention, and GenAI client spans.

A span event whose name is a feedback name becomes that event, with the span supplying trace and
span ids and its attributes (e.g. ``gen_ai.*``) as context. A span carrying
``gen_ai.operation.name`` is itself a PerformanceMetrics event: latency is its duration, success
is ``status != ERROR``. GenAI spans that name no model (e.g. ``execute_tool``) are not model
calls and are counted as ignored.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.attributes import AttrValue, attributes_dict, has_key
from otlp_feedback.mapping.records import Context, Location, MappedRequest, build_raw

_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model")
_SPAN = "resource_spans[{}].scope_spans[{}].spans[{}]"
_SPAN_EVENT = _SPAN + ".events[{}]"


def map_traces_request(request: ExportTraceServiceRequest) -> MappedRequest:
    """Find feedback span events and GenAI spans in a trace export. Pure; never raises."""
    out = MappedRequest()
    for ri, resource_spans in enumerate(request.resource_spans):
        resource_attrs: dict[str, AttrValue] | None = None
        for si, scope_spans in enumerate(resource_spans.scope_spans):
            for pi, span in enumerate(scope_spans.spans):
                feedback_events = [
                    (ei, ev, et)
                    for ei, ev in enumerate(span.events)
                    if (et := conv.event_type_for(ev.name)) is not None
                ]
                if len(feedback_events) < len(span.events):  # only an ignored one can be misspelt
                    out.unknown_names.extend(
                        ev.name for ev in span.events if conv.is_unknown_feedback_name(ev.name)
                    )
                is_genai = has_key(span.attributes, conv.GENAI_OPERATION_KEY)
                if not feedback_events and not is_genai:
                    out.ignored += 1 + len(span.events)
                    continue
                out.ignored += len(span.events) - len(feedback_events)
                if resource_attrs is None:
                    resource_attrs = attributes_dict(resource_spans.resource.attributes)
                span_attrs = attributes_dict(span.attributes)
                if is_genai:
                    _map_genai_span(out, span, span_attrs, resource_attrs, (_SPAN, ri, si, pi))
                context = Context(resource_attrs, span_attrs, span.trace_id, span.span_id)
                for ei, event, event_type in feedback_events:
                    out.feedback.append(
                        build_raw(
                            event_name=event.name,
                            event_type=event_type,
                            carrier="span_event",
                            location=(_SPAN_EVENT, ri, si, pi, ei),
                            record_attributes=attributes_dict(event.attributes),
                            context=context,
                            time_ns=event.time_unix_nano,
                            content=event.SerializeToString(deterministic=True),
                        )
                    )
    return out


def _map_genai_span(
    out: MappedRequest,
    span: Span,
    span_attrs: dict[str, AttrValue],
    resource_attrs: dict[str, AttrValue],
    where: Location,
) -> None:
    if not any(span_attrs.get(k) for k in _MODEL_KEYS):
        out.ignored += 1
        return
    derived: dict[str, AttrValue] = {}
    if span.end_time_unix_nano >= span.start_time_unix_nano > 0:
        derived["feedback.latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    derived["feedback.success"] = span.status.code != Status.STATUS_CODE_ERROR
    # The span's own attributes win over what we derive, so an explicit value is respected.
    out.feedback.append(
        build_raw(
            event_name="gen_ai.span",
            event_type="performance_metrics",
            carrier="genai_span",
            location=where,
            record_attributes={**derived, **span_attrs},
            context=Context(resource_attrs, {}, span.trace_id, span.span_id),
            time_ns=span.end_time_unix_nano or span.start_time_unix_nano,
            content=span.SerializeToString(deterministic=True),
        )
    )
