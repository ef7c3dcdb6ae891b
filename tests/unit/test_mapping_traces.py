"""Feedback carried by spans: span events and GenAI spans (``map_traces_request``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from otlp_builders import (
    MINIMAL,
    SPAN_ID,
    T0_NS,
    TRACE_ID,
    by_case,
    event_of,
    genai_span,
    only,
    span,
    span_event,
    traces_request,
    validate,
)

from otlp_feedback.events import (
    EVENT_TYPES,
    ExperimentResult,
    FeedbackEvent,
    ModelResponse,
    PerformanceMetrics,
    SystemHealth,
    UserFeedback,
)
from otlp_feedback.mapping import map_traces_request
from otlp_feedback.validation import Rejection


def map_one(*spans: Span, resource: dict[str, Any] | None = None) -> FeedbackEvent:
    """Map a request of ``spans`` holding exactly one feedback carrier, and validate it."""
    return event_of(only(map_traces_request(traces_request(*spans, resource=resource))))


# --- the OTLP/JSON fixture --------------------------------------------------------------------

FIXTURE_CASES = [
    pytest.param(
        "user_feedback",
        UserFeedback,
        "span_event",
        {"session_id": "sess-span", "rating": 5.0, "thumbs": "up", "span_id": "1111111111111111"},
        id="user-feedback-event",
    ),
    pytest.param(
        "performance_metrics",
        PerformanceMetrics,
        "span_event",
        {"model": "claude-sonnet", "latency_ms": 950.0, "cost_usd": 0.004, "success": True},
        id="performance-metrics-event",
    ),
    pytest.param(
        "system_health",
        SystemHealth,
        "span_event",
        {"service": "support-bot", "status": "healthy", "active_requests": 3},
        id="system-health-event",
    ),
    pytest.param(
        "experiment_result",
        ExperimentResult,
        "span_event",
        {
            "experiment_id": "exp-7",
            "experiment_type": "multi_armed_bandit",
            "variant_id": "arm-3",
            "reward": 0.4,
        },
        id="experiment-result-event",
    ),
    pytest.param(
        "model_response",
        ModelResponse,
        "span_event",
        {
            "quality_score": 90.0,
            "safety": 1.0,
            "model": "gpt-4o",  # from the enclosing GenAI span
            "request_id": "chatcmpl-9",
            "span_id": "2222222222222222",
        },
        id="model-response-event-in-genai-span",
    ),
    pytest.param(
        "evaluation_quality",
        ModelResponse,
        "span_event",
        {"evaluation_name": "accuracy", "accuracy": 0.6, "model": "gpt-4o"},
        id="gen-ai-evaluation-as-model-response",
    ),
    pytest.param(
        "evaluation_user_feedback",
        UserFeedback,
        "span_event",
        {"session_id": "sess-eval", "thumbs": "up", "rating": None},
        id="gen-ai-evaluation-as-user-feedback",
    ),
    pytest.param(
        "genai_span",
        PerformanceMetrics,
        "genai_span",
        {
            "model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "provider": "openai",
            "operation": "chat",
            "request_id": "chatcmpl-9",
            "input_tokens": 200,
            "output_tokens": 50,
            "latency_ms": 1500.0,
            "success": True,
            "error_type": None,
            "timestamp": datetime(2025, 1, 1, 0, 0, 1, 600000, tzinfo=UTC),
            "attributes": {"test.case": "genai_span", "server.address": "api.openai.com"},
        },
        id="genai-span",
    ),
    pytest.param(
        "genai_span_error",
        PerformanceMetrics,
        "genai_span",
        {"model": "gpt-4o-mini", "latency_ms": 30000.0, "success": False, "error_type": "timeout"},
        id="genai-span-with-error-status",
    ),
]


@pytest.mark.parametrize(("case", "model", "carrier", "expected"), FIXTURE_CASES)
def test_fixture_carrier_becomes_the_typed_event(
    traces_fixture: ExportTraceServiceRequest,
    case: str,
    model: type[FeedbackEvent],
    carrier: str,
    expected: dict[str, Any],
) -> None:
    event = event_of(by_case(map_traces_request(traces_fixture))[case])
    assert type(event) is model
    assert event.carrier == carrier
    assert event.trace_id == "5b8efff798038103d269b633813fc60c"
    assert (event.service, event.environment) == ("support-bot", "staging")
    assert {name: getattr(event, name) for name in expected} == expected


def test_fixture_invalid_span_event_is_rejected_naming_the_key(
    traces_fixture: ExportTraceServiceRequest,
) -> None:
    raw = by_case(map_traces_request(traces_fixture))["invalid_experiment_type"]
    result = validate(raw)
    assert isinstance(result, Rejection)
    assert "feedback.experiment.type" in result.reason
    assert "'canary'" in result.reason
    assert result.location == "resource_spans[0].scope_spans[0].spans[5].events[0]"


def test_fixture_non_feedback_spans_and_events_are_ignored_and_counted(
    traces_fixture: ExportTraceServiceRequest,
) -> None:
    mapped = map_traces_request(traces_fixture)
    # cache.miss event (1) + the execute_tool span without a model (1) + the SELECT span and
    # its db.retry event (2). Spans that carry feedback events are not themselves counted.
    assert mapped.ignored == 4
    assert len(mapped.feedback) == 10


# --- span events ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_maps_from_a_span_event_in_a_plain_span(event_type: str) -> None:
    event_span = span(
        "POST /chat",
        {"http.route": "/chat"},
        [span_event(f"feedback.{event_type}", MINIMAL[event_type], time_ns=T0_NS + 7)],
    )
    event = map_one(event_span)
    assert event.event_type == event_type
    assert event.carrier == "span_event"
    assert (event.trace_id, event.span_id) == (TRACE_ID, SPAN_ID)
    assert event.timestamp == datetime.fromtimestamp((T0_NS + 7) / 1e9, UTC)


def test_span_event_without_time_takes_the_receive_time() -> None:
    attributes = {"session.id": "s", "feedback.rating": 4}
    plain = span(events=[span_event("feedback.user_feedback", attributes, time_ns=0)])
    event = map_one(plain)
    assert event.timestamp == event.received_at


@pytest.mark.parametrize(
    ("resource", "span_attrs", "event_attrs", "expected"),
    [
        pytest.param({"session.id": "res"}, {"session.id": "span"}, {"session.id": "ev"}, "ev",
                     id="event-wins"),
        pytest.param({"session.id": "res"}, {"session.id": "span"}, {}, "span",
                     id="span-wins-over-resource"),
        pytest.param({"session.id": "res"}, {}, {}, "res", id="resource-fills-in"),
    ],
)  # fmt: skip
def test_event_attributes_win_over_span_attributes_over_resource_attributes(
    resource: dict[str, Any],
    span_attrs: dict[str, Any],
    event_attrs: dict[str, Any],
    expected: str,
) -> None:
    rated = {**event_attrs, "feedback.rating": 4}
    carrier = span("POST /chat", span_attrs, [span_event("feedback.user_feedback", rated)])
    event = map_one(carrier, resource={"service.name": "svc", **resource})
    assert event.session_id == expected


def test_leftover_span_and_event_attributes_go_to_attributes_but_resource_ones_do_not() -> None:
    carrier = span(
        "POST /chat",
        {"http.route": "/chat", "app.tier": "gold"},
        [
            span_event(
                "feedback.user_feedback",
                {"session.id": "s", "feedback.rating": 4, "app.tier": "free"},
            )
        ],
    )
    event = map_one(carrier, resource={"service.name": "svc", "host.name": "pod-1"})
    assert event.attributes == {"http.route": "/chat", "app.tier": "free"}


def test_each_feedback_event_of_a_span_is_its_own_record() -> None:
    carrier = span(
        events=[
            span_event("feedback.user_feedback", {"session.id": "a"}),
            span_event("exception", {"exception.type": "ValueError"}),
            span_event("feedback.user_feedback", {"session.id": "b"}),
        ]
    )
    mapped = map_traces_request(traces_request(carrier))
    assert [raw.location for raw in mapped.feedback] == [
        "resource_spans[0].scope_spans[0].spans[0].events[0]",
        "resource_spans[0].scope_spans[0].spans[0].events[2]",
    ]
    assert mapped.ignored == 1  # the exception event
    assert len({raw.fields["event_id"] for raw in mapped.feedback}) == 2


@pytest.mark.parametrize(
    ("spans", "ignored"),
    [
        pytest.param([span("GET /")], 1, id="plain-span"),
        pytest.param([span("GET /", events=[span_event("a"), span_event("b")])], 3,
                     id="plain-span-and-its-events"),
        pytest.param([genai_span({"gen_ai.operation.name": "execute_tool",
                                  "gen_ai.request.model": ""})], 1,
                     id="genai-span-without-model"),
        pytest.param([span("GET /"), span("GET /a")], 2, id="two-plain-spans"),
    ],
)  # fmt: skip
def test_spans_without_feedback_are_ignored_and_counted(spans: list[Span], ignored: int) -> None:
    mapped = map_traces_request(traces_request(*spans))
    assert mapped.feedback == []
    assert mapped.ignored == ignored


# --- GenAI spans ------------------------------------------------------------------------------


def test_genai_span_becomes_performance_metrics_with_the_span_duration_as_latency() -> None:
    event = map_one(genai_span(start_ns=T0_NS, end_ns=T0_NS + 2_345_600_000))
    assert isinstance(event, PerformanceMetrics)
    assert event.carrier == "genai_span"
    assert event.latency_ms == pytest.approx(2345.6)
    assert event.timestamp == datetime(2025, 1, 1, 0, 0, 2, 345600, tzinfo=UTC)
    assert (event.trace_id, event.span_id) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    ("status", "success"),
    [
        pytest.param(Status.STATUS_CODE_UNSET, True, id="unset"),
        pytest.param(Status.STATUS_CODE_OK, True, id="ok"),
        pytest.param(Status.STATUS_CODE_ERROR, False, id="error"),
    ],
)
def test_genai_span_success_follows_the_span_status(
    status: Status.StatusCode.ValueType, success: bool
) -> None:
    event = map_one(genai_span(status=status))
    assert isinstance(event, PerformanceMetrics)
    assert event.success is success


def test_genai_span_error_type_is_mapped() -> None:
    span_ = genai_span({"error.type": "rate_limited"}, status=Status.STATUS_CODE_ERROR)
    event = map_one(span_)
    assert isinstance(event, PerformanceMetrics)
    assert (event.success, event.error_type) == (False, "rate_limited")


def test_explicit_span_attributes_win_over_derived_latency_and_success() -> None:
    span_ = genai_span(
        {"feedback.latency_ms": 10.0, "feedback.success": True}, status=Status.STATUS_CODE_ERROR
    )
    event = map_one(span_)
    assert isinstance(event, PerformanceMetrics)
    assert (event.latency_ms, event.success) == (10.0, True)


@pytest.mark.parametrize(
    ("start_ns", "end_ns"),
    [
        pytest.param(0, T0_NS, id="no-start"),
        pytest.param(T0_NS, T0_NS - 1, id="ends-before-it-starts"),
    ],
)
def test_genai_span_without_a_usable_duration_has_no_latency(start_ns: int, end_ns: int) -> None:
    event = map_one(genai_span(start_ns=start_ns, end_ns=end_ns))
    assert isinstance(event, PerformanceMetrics)
    assert event.latency_ms is None


def test_genai_span_model_may_come_from_the_response_model() -> None:
    span_ = span("chat", {"gen_ai.operation.name": "chat", "gen_ai.response.model": "gpt-4o-mini"})
    event = map_one(span_)
    assert isinstance(event, PerformanceMetrics)
    assert event.model == "gpt-4o-mini"


def test_genai_span_without_a_model_is_ignored() -> None:
    tool = span("execute_tool get_weather", {"gen_ai.operation.name": "execute_tool"})
    mapped = map_traces_request(traces_request(tool))
    assert mapped.feedback == []
    assert mapped.ignored == 1


def test_genai_span_model_in_the_resource_does_not_make_it_a_model_call() -> None:
    tool = span("execute_tool x", {"gen_ai.operation.name": "execute_tool"})
    mapped = map_traces_request(
        traces_request(tool, resource={"service.name": "s", "gen_ai.request.model": "m"})
    )
    assert mapped.feedback == []


def test_genai_span_and_its_feedback_events_are_separate_records() -> None:
    span_ = genai_span(
        {"gen_ai.response.id": "resp-1"},
        events=[
            span_event(
                "gen_ai.evaluation.result",
                {"gen_ai.evaluation.name": "coherence", "gen_ai.evaluation.score.value": 0.5},
            ),
            span_event("gen_ai.content.prompt"),
        ],
    )
    mapped = map_traces_request(traces_request(span_))
    assert [(raw.event_type, raw.carrier) for raw in mapped.feedback] == [
        ("performance_metrics", "genai_span"),
        ("model_response", "span_event"),
    ]
    assert mapped.ignored == 1  # gen_ai.content.prompt
    perf, evaluation = (event_of(raw) for raw in mapped.feedback)
    assert perf.request_id == evaluation.request_id == "resp-1"
    assert perf.event_id != evaluation.event_id


def test_retried_identical_trace_export_yields_the_same_event_ids(
    traces_fixture: ExportTraceServiceRequest,
) -> None:
    retried = ExportTraceServiceRequest.FromString(traces_fixture.SerializeToString())
    first = [raw.fields["event_id"] for raw in map_traces_request(traces_fixture).feedback]
    second = [raw.fields["event_id"] for raw in map_traces_request(retried).feedback]
    assert first == second
    assert len(set(first)) == len(first)


def test_genai_span_event_id_attribute_wins() -> None:
    event = map_one(genai_span({"event.id": "span-event-id"}))
    assert event.event_id == "span-event-id"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"span_id": "0102030405060708"}, id="another-span"),
        pytest.param({"trace_id": "0102030405060708090a0b0c0d0e0f10"}, id="another-trace"),
    ],
)
def test_identical_span_event_in_another_span_has_another_event_id(
    other: dict[str, Any],
) -> None:
    # The event's own bytes hold no ids, so the span context must be part of the id.
    event = span_event("feedback.user_feedback", {"session.id": "s", "feedback.rating": 4})
    first = only(map_traces_request(traces_request(span(events=[event]))))
    second = only(map_traces_request(traces_request(span(events=[event], **other))))
    assert first.fields["event_id"] != second.fields["event_id"]
