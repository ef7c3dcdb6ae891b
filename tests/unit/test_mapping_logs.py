"""Feedback carried as OTel log records: ``map_logs_request`` (+ validation into typed events)."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlp_builders import (
    MINIMAL,
    SPAN_ID,
    T0_NS,
    TRACE_ID,
    by_case,
    event_of,
    log_record,
    logs_request,
    only,
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
from otlp_feedback.mapping import map_logs_request
from otlp_feedback.mapping.logs import feedback_locations
from otlp_feedback.mapping.records import EVENT_ID_NAMESPACE, deterministic_event_id
from otlp_feedback.validation import Rejection


def map_one(*records: Any, resource: dict[str, Any] | None = None) -> FeedbackEvent:
    """Map a request of ``records`` holding exactly one feedback record, and validate it."""
    return event_of(only(map_logs_request(logs_request(*records, resource=resource))))


# --- the OTLP/JSON fixture: every event type, both evaluation flavours, older SDKs -------------

FIXTURE_CASES = [
    pytest.param(
        "user_feedback",
        UserFeedback,
        {
            "session_id": "sess-1",
            "user_id": "user-1",
            "request_id": "chatcmpl-1",
            "rating": 4.5,
            "thumbs": "up",
            "comment": "Clear and correct.",
            "tags": ["helpful", "fast"],
            "attributes": {"test.case": "user_feedback", "app.ui": "web"},
        },
        id="user-feedback",
    ),
    pytest.param(
        "performance_metrics",
        PerformanceMetrics,
        {
            "model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "provider": "openai",
            "operation": "chat",
            "latency_ms": 812.5,
            "input_tokens": 120,
            "output_tokens": 48,
            "cost_usd": 0.0031,
            "success": True,
            "cache_hit": False,
            "custom_metrics": {"ttft_ms": 95.0},
            "attributes": {"test.case": "performance_metrics"},
        },
        id="performance-metrics",
    ),
    pytest.param(
        "model_response",
        ModelResponse,
        {
            "model": "gpt-4o",
            "request_id": "req-77",
            "quality_score": 87.5,
            "accuracy": 0.9,
            "relevance": 0.8,
            "custom_scores": {"tone": 0.7},
            "prompt_hash": "sha256:ab12",
            "response_length": 512,
            "finish_reasons": ["stop"],
            "temperature": 0.2,
            "top_p": 0.95,
            "max_tokens": 1024,
            "top_k": 40,
        },
        id="model-response",
    ),
    pytest.param(
        "system_health",
        SystemHealth,
        {
            "service": "support-bot",
            "status": "degraded",
            "error_rate": 0.02,
            "availability": 0.995,
            "cpu_percent": 71.5,
            "memory_mb": 2048.0,
            "memory_percent": 55.0,
            "network_mbps": 12.5,
            "active_requests": 17,
            "trace_id": None,
            "span_id": None,
        },
        id="system-health",
    ),
    pytest.param(
        "experiment_result",
        ExperimentResult,
        {
            "experiment_id": "exp-42",
            "experiment_type": "ab_test",
            "variant_id": "B",
            "reward": 1.0,
            "cost": 0.002,
            "quality": 0.85,
            "latency_ms": 640.0,
            "user_satisfaction": 4.0,
        },
        id="experiment-result",
    ),
    pytest.param(
        "evaluation_quality",
        ModelResponse,
        {
            "evaluation_name": "relevance",
            "relevance": 0.75,
            "explanation": "On topic.",
            "request_id": "chatcmpl-1",
            # Schema v2: the label is a field, no longer an attribute.
            "score_label": "relevant",
            "attributes": {"test.case": "evaluation_quality"},
        },
        id="gen-ai-evaluation-as-model-response",
    ),
    pytest.param(
        "evaluation_user_feedback",
        UserFeedback,
        {"session_id": "sess-2", "rating": 2.0, "thumbs": "down", "comment": "Too long."},
        id="gen-ai-evaluation-as-user-feedback",
    ),
    pytest.param(
        "event_name_attribute",
        UserFeedback,
        {"session_id": "sess-3", "thumbs": "up", "comment": "Great answer, thanks!"},
        id="event-name-attribute-and-string-body",
    ),
    pytest.param(
        "kvlist_body",
        UserFeedback,
        {"session_id": "sess-4", "rating": 5.0, "comment": "from the body"},
        id="kvlist-body-under-attributes",
    ),
    pytest.param(
        "second_resource_health",
        SystemHealth,
        {"service": "ranker", "environment": None, "status": "healthy"},
        id="second-resource",
    ),
]


@pytest.mark.parametrize(("case", "model", "expected"), FIXTURE_CASES)
def test_fixture_record_becomes_the_typed_event(
    logs_fixture: ExportLogsServiceRequest,
    case: str,
    model: type[FeedbackEvent],
    expected: dict[str, Any],
) -> None:
    raw = by_case(map_logs_request(logs_fixture))[case]
    event = event_of(raw)
    assert type(event) is model
    assert event.carrier == "log_record"
    assert {name: getattr(event, name) for name in expected} == expected


def test_fixture_envelope_comes_from_resource_and_record(
    logs_fixture: ExportLogsServiceRequest,
) -> None:
    event = event_of(by_case(map_logs_request(logs_fixture))["user_feedback"])
    assert event.service == "support-bot"
    assert event.environment == "staging"
    assert event.trace_id == TRACE_ID
    assert event.span_id == SPAN_ID
    assert event.timestamp == datetime(2025, 1, 1, tzinfo=UTC)


def test_fixture_non_feedback_records_are_ignored_and_counted(
    logs_fixture: ExportLogsServiceRequest,
) -> None:
    mapped = map_logs_request(logs_fixture)
    # A plain log line and a browser.page_view event; everything else is feedback.
    assert mapped.ignored == 2
    assert len(mapped.feedback) == 12


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        pytest.param("invalid_rating", "feedback.rating", id="rating-out-of-range"),
        pytest.param("invalid_no_session", "session.id is required", id="no-session"),
    ],
)
def test_fixture_invalid_records_are_rejected_naming_the_key(
    logs_fixture: ExportLogsServiceRequest, case: str, reason: str
) -> None:
    raw = by_case(map_logs_request(logs_fixture))[case]
    result = validate(raw)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.location == raw.location


def test_fixture_locations_point_at_the_record(logs_fixture: ExportLogsServiceRequest) -> None:
    cases = by_case(map_logs_request(logs_fixture))
    assert cases["user_feedback"].location == "resource_logs[0].scope_logs[0].log_records[0]"
    assert cases["second_resource_health"].location == (
        "resource_logs[1].scope_logs[0].log_records[0]"
    )


# --- every event type from a log record -------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_maps_from_a_log_record_event_name(event_type: str) -> None:
    event = map_one(log_record(f"feedback.{event_type}", MINIMAL[event_type]))
    assert event.event_type == event_type
    assert event.carrier == "log_record"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_maps_from_the_event_name_attribute(event_type: str) -> None:
    # Older SDKs have no LogRecord.event_name field and send the name as an attribute.
    attributes = {"event.name": f"feedback.{event_type}", **MINIMAL[event_type]}
    event = map_one(log_record("", attributes))
    assert event.event_type == event_type
    assert "event.name" not in event.attributes


def test_event_name_field_wins_over_the_event_name_attribute() -> None:
    record = log_record(
        "feedback.system_health",
        {"event.name": "feedback.user_feedback", "feedback.health.status": "healthy"},
    )
    assert map_one(record).event_type == "system_health"


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(log_record("", {"http.status_code": 200}, "GET / 200"), id="plain-log"),
        pytest.param(log_record("browser.page_view", {"session.id": "s"}), id="other-event"),
        pytest.param(log_record("feedback.unknown_kind", {"session.id": "s"}), id="unknown-type"),
        pytest.param(log_record("", {"event.name": 7}), id="non-string-event-name-attribute"),
        pytest.param(log_record("feedback.", {}), id="bare-prefix"),
    ],
)
def test_non_feedback_log_records_are_ignored_and_counted(record: Any) -> None:
    mapped = map_logs_request(logs_request(record, record))
    assert mapped.feedback == []
    assert mapped.ignored == 2


# --- bodies ---------------------------------------------------------------------------------


def test_kvlist_body_is_merged_under_the_record_attributes() -> None:
    record = log_record(
        "feedback.user_feedback",
        {"feedback.rating": 5, "app.ui": "mobile"},
        body={"session.id": "sess-b", "feedback.rating": 1, "feedback.tags": ["slow"]},
    )
    event = map_one(record)
    assert isinstance(event, UserFeedback)
    assert event.session_id == "sess-b"  # only in the body
    assert event.rating == 5.0  # the attribute wins over the body
    assert event.tags == ["slow"]
    assert event.attributes == {"app.ui": "mobile"}


def test_string_body_is_the_comment_of_user_feedback() -> None:
    event = map_one(log_record("feedback.user_feedback", {"session.id": "s"}, body="Loved it"))
    assert isinstance(event, UserFeedback)
    assert event.comment == "Loved it"


def test_comment_attribute_wins_over_the_string_body() -> None:
    attributes = {"session.id": "s", "feedback.comment": "from attribute"}
    event = map_one(log_record("feedback.user_feedback", attributes, body="from body"))
    assert isinstance(event, UserFeedback)
    assert event.comment == "from attribute"


def test_string_body_of_other_event_types_is_not_mapped() -> None:
    record = log_record("feedback.system_health", MINIMAL["system_health"], body="all good")
    event = map_one(record)
    assert isinstance(event, SystemHealth)
    assert "all good" not in event.attributes.values()


# --- gen_ai.evaluation.result ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {"gen_ai.evaluation.name": "accuracy", "gen_ai.evaluation.score.value": 0.4},
            {"evaluation_name": "accuracy", "accuracy": 0.4, "custom_scores": {}},
            id="quality-dimension",
        ),
        pytest.param(
            {"gen_ai.evaluation.name": "quality_score", "gen_ai.evaluation.score.value": 77},
            {"evaluation_name": "quality_score", "quality_score": 77.0},
            id="quality-score",
        ),
        pytest.param(
            {"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.value": 0.1},
            {"evaluation_name": "toxicity", "custom_scores": {"toxicity": 0.1}},
            id="custom-dimension",
        ),
        pytest.param(
            {
                "gen_ai.evaluation.name": "safety",
                "gen_ai.evaluation.score.value": 0.2,
                "gen_ai.evaluation.explanation": "borderline",
            },
            {"safety": 0.2, "explanation": "borderline"},
            id="explanation",
        ),
        pytest.param(
            {
                "gen_ai.evaluation.name": "accuracy",
                "gen_ai.evaluation.score.value": 0.4,
                "feedback.quality.accuracy": 0.9,
            },
            {"accuracy": 0.9},
            id="explicit-attribute-wins",
        ),
    ],
)
def test_evaluation_result_becomes_a_model_response_dimension(
    attributes: dict[str, Any], expected: dict[str, Any]
) -> None:
    event = map_one(log_record("gen_ai.evaluation.result", attributes))
    assert isinstance(event, ModelResponse)
    assert {name: getattr(event, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {"gen_ai.evaluation.score.value": 4, "gen_ai.evaluation.explanation": "good"},
            {"rating": 4.0, "thumbs": None, "comment": "good"},
            id="score-and-explanation",
        ),
        pytest.param(
            {"gen_ai.evaluation.score.label": "thumbs_up"},
            {"rating": None, "thumbs": "up"},
            id="thumbs-up-label",
        ),
        pytest.param(
            {"gen_ai.evaluation.score.label": "thumbs_down"},
            {"rating": None, "thumbs": "down"},
            id="thumbs-down-label",
        ),
        pytest.param(
            {"gen_ai.evaluation.score.value": 3, "feedback.rating": 5},
            {"rating": 5.0},
            id="explicit-rating-wins",
        ),
    ],
)
def test_evaluation_named_user_feedback_becomes_user_feedback(
    attributes: dict[str, Any], expected: dict[str, Any]
) -> None:
    record = log_record(
        "gen_ai.evaluation.result",
        {"gen_ai.evaluation.name": "user_feedback", "session.id": "sess-e", **attributes},
    )
    event = map_one(record)
    assert isinstance(event, UserFeedback)
    assert {name: getattr(event, name) for name in expected} == expected


def test_unknown_evaluation_label_is_kept_as_an_attribute() -> None:
    record = log_record(
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "user_feedback",
            "session.id": "s",
            "gen_ai.evaluation.score.value": 4,
            "gen_ai.evaluation.score.label": "meh",
        },
    )
    event = map_one(record)
    assert isinstance(event, UserFeedback)
    assert event.thumbs is None
    assert event.attributes == {"gen_ai.evaluation.score.label": "meh"}


# --- precedence and leftovers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "record", "expected"),
    [
        pytest.param({"session.id": "res"}, {"session.id": "rec"}, "rec", id="record-wins"),
        pytest.param({"session.id": "res"}, {}, "res", id="resource-fills-in"),
    ],
)
def test_record_attributes_win_over_resource_attributes(
    resource: dict[str, Any], record: dict[str, Any], expected: str
) -> None:
    event = map_one(
        log_record("feedback.user_feedback", {"feedback.rating": 3, **record}),
        resource={"service.name": "svc", **resource},
    )
    assert event.session_id == expected


@pytest.mark.parametrize(
    ("attributes", "field", "expected"),
    [
        pytest.param(
            {"gen_ai.response.id": "a", "feedback.request_id": "b"},
            "request_id",
            "a",
            id="response-id-before-request-id",
        ),
        pytest.param({"feedback.request_id": "b"}, "request_id", "b", id="request-id-fallback"),
        pytest.param(
            {"deployment.environment": "old", "deployment.environment.name": "new"},
            "environment",
            "new",
            id="environment-name-before-legacy",
        ),
        pytest.param(
            {"deployment.environment": "old"}, "environment", "old", id="legacy-environment"
        ),
    ],
)
def test_first_key_of_the_convention_wins(
    attributes: dict[str, Any], field: str, expected: str
) -> None:
    event = map_one(
        log_record(
            "feedback.user_feedback", {"session.id": "s", "feedback.rating": 4, **attributes}
        ),
        resource={"service.name": "svc"},
    )
    assert getattr(event, field) == expected


@pytest.mark.parametrize(
    ("resource", "record", "expected"),
    [
        pytest.param(
            {"deployment.environment.name": "res-new"},
            {"deployment.environment": "rec-old"},
            "res-new",
            id="first-key-from-resource-beats-second-key-from-record",
        ),
        pytest.param(
            {"deployment.environment": "res-old"},
            {"deployment.environment.name": "rec-new"},
            "rec-new",
            id="first-key-from-record",
        ),
        pytest.param(
            {"deployment.environment": "res-old"},
            {"deployment.environment": "rec-old"},
            "rec-old",
            id="second-key-record-beats-resource",
        ),
        pytest.param(
            {"deployment.environment.name": "res-new"},
            {"deployment.environment.name": "", "deployment.environment": "rec-old"},
            "rec-old",
            id="empty-first-key-in-record-hides-resource-and-falls-back",
        ),
    ],
)
def test_two_key_precedence_across_resource_and_record(
    resource: dict[str, Any], record: dict[str, Any], expected: str
) -> None:
    # Of a field's keys the first present in resource|record (record overriding) wins.
    event = map_one(
        log_record("feedback.user_feedback", {"session.id": "s", "feedback.rating": 1, **record}),
        resource={"service.name": "svc", **resource},
    )
    assert event.environment == expected


def test_one_key_feeds_two_fields_whatever_the_order_sent() -> None:
    # gen_ai.response.model is response_model's key and model's fallback.
    for attributes in (
        {"gen_ai.response.model": "resp", "gen_ai.request.model": "req"},
        {"gen_ai.request.model": "req", "gen_ai.response.model": "resp"},
    ):
        event = map_one(log_record("feedback.performance_metrics", attributes))
        assert isinstance(event, PerformanceMetrics)
        assert (event.model, event.response_model) == ("req", "resp")
    fallback = map_one(log_record("feedback.performance_metrics", {"gen_ai.response.model": "r"}))
    assert isinstance(fallback, PerformanceMetrics)
    assert (fallback.model, fallback.response_model) == ("r", "r")


def test_unmapped_record_attributes_go_to_attributes_but_resource_ones_do_not() -> None:
    record = log_record(
        "feedback.user_feedback",
        {"session.id": "s", "feedback.rating": 4, "app.locale": "de-DE", "app.retries": 2},
    )
    event = map_one(record, resource={"service.name": "svc", "host.name": "pod-1"})
    assert event.attributes == {"app.locale": "de-DE", "app.retries": "2"}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_sender_cannot_set_client_id_or_redacted_fields_they_stay_attributes(
    event_type: str,
) -> None:
    # Both are the receiver's to set (auth, redaction); no attribute maps to them.
    attributes = {
        **MINIMAL[event_type], "client_id": "forged", "redacted_fields": ["comment"]
    }  # fmt: skip
    event = map_one(log_record(f"feedback.{event_type}", attributes))
    assert event.client_id is None
    assert event.redacted_fields == []
    assert event.attributes["client_id"] == "forged"
    assert "redacted_fields" in event.attributes


def test_keys_of_another_event_type_are_leftovers() -> None:
    # feedback.rating means nothing to a health report, so it is kept as an attribute.
    attributes = {**MINIMAL["system_health"], "feedback.rating": 5}
    event = map_one(log_record("feedback.system_health", attributes))
    assert event.attributes == {"feedback.rating": "5"}


def test_performance_metric_prefix_collects_custom_metrics() -> None:
    attributes = {
        "gen_ai.request.model": "m",
        "feedback.metric.ttft_ms": 42.0,
        "feedback.metric.retries": 2,
    }
    event = map_one(log_record("feedback.performance_metrics", attributes))
    assert isinstance(event, PerformanceMetrics)
    assert event.custom_metrics == {"ttft_ms": 42.0, "retries": 2.0}
    assert event.attributes == {}


def test_response_model_names_the_model_when_no_request_model_is_sent() -> None:
    event = map_one(log_record("feedback.performance_metrics", {"gen_ai.response.model": "r"}))
    assert isinstance(event, PerformanceMetrics)
    assert (event.model, event.response_model) == ("r", "r")


# --- ids and time -----------------------------------------------------------------------------


def test_trace_and_span_ids_are_lowercase_hex() -> None:
    record = log_record(
        "feedback.user_feedback",
        MINIMAL["user_feedback"],
        trace_id="ABCDEF0123456789ABCDEF0123456789",
        span_id="00000000000000FF",
    )
    event = map_one(record)
    assert event.trace_id == "abcdef0123456789abcdef0123456789"
    assert event.span_id == "00000000000000ff"


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("0" * 32, "0" * 16, id="all-zero"),
    ],
)
def test_missing_trace_context_leaves_ids_unset(trace_id: str, span_id: str) -> None:
    record = log_record(
        "feedback.user_feedback", MINIMAL["user_feedback"], trace_id=trace_id, span_id=span_id
    )
    event = map_one(record)
    assert (event.trace_id, event.span_id) == (None, None)


def test_observed_time_is_used_when_the_record_has_no_time() -> None:
    record = log_record("feedback.user_feedback", MINIMAL["user_feedback"], time_ns=0)
    record.observed_time_unix_nano = T0_NS + 5 * 10**9
    assert map_one(record).timestamp == datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)


def ids_of(request: ExportLogsServiceRequest) -> list[str]:
    return [raw.fields["event_id"] for raw in map_logs_request(request).feedback]


def test_event_id_is_a_uuid5_of_the_content() -> None:
    (event_id,) = ids_of(logs_request(log_record("feedback.user_feedback", {"session.id": "s"})))
    assert uuid.UUID(event_id).version == 5


def test_retried_identical_export_yields_the_same_event_ids(
    logs_fixture: ExportLogsServiceRequest,
) -> None:
    retried = ExportLogsServiceRequest.FromString(logs_fixture.SerializeToString())
    first, second = ids_of(logs_fixture), ids_of(retried)
    assert first == second
    assert len(set(first)) == len(first)


@pytest.mark.parametrize(
    ("change"),
    [
        pytest.param({"attributes": {"session.id": "s", "feedback.rating": 2}}, id="attribute"),
        pytest.param({"time_ns": T0_NS + 1}, id="time"),
        pytest.param({"span_id": "0102030405060708"}, id="span-id"),
        pytest.param({"event_name": "feedback.model_response"}, id="event-type"),
    ],
)
def test_different_content_yields_a_different_event_id(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "event_name": "feedback.user_feedback",
        "attributes": {"session.id": "s", "feedback.rating": 1},
    }
    (original,) = ids_of(logs_request(log_record(**base)))
    (changed,) = ids_of(logs_request(log_record(**{**base, **change})))
    assert changed != original


def test_same_record_from_another_service_has_another_event_id() -> None:
    record = log_record("feedback.user_feedback", {"session.id": "s"})
    (a,) = ids_of(logs_request(record, resource={"service.name": "a"}))
    (b,) = ids_of(logs_request(record, resource={"service.name": "b"}))
    assert a != b


def test_event_id_attribute_wins_over_the_derived_id() -> None:
    record = log_record(
        "feedback.user_feedback",
        {"session.id": "s", "feedback.rating": 4, "event.id": "client-id-1"},
    )
    event = map_one(record)
    assert event.event_id == "client-id-1"
    assert "event.id" not in event.attributes


def test_deterministic_event_ids_are_the_uuid5_of_the_content() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        parts = [rng.randbytes(rng.randrange(0, 40)) for _ in range(5)]
        digest = hashlib.sha1(EVENT_ID_NAMESPACE.bytes + b"\x00".join(parts)).digest()
        expected = uuid.UUID(bytes=digest[:16], version=5)
        assert deterministic_event_id(*parts) == str(expected)


def test_feedback_locations_name_the_records_the_mapper_maps_in_order(
    logs_fixture: ExportLogsServiceRequest,
) -> None:
    # Records the native path encoded are found by position among these: mapping just one
    # location must give the very record a full mapping gives at that position.
    mapped = map_logs_request(logs_fixture).feedback
    locations = feedback_locations(logs_fixture)
    assert len(locations) == len(mapped) > 1
    for position, location in enumerate(locations):
        (alone,) = map_logs_request(logs_fixture, only={location}).feedback
        assert alone.location == mapped[position].location
        assert alone.fields == mapped[position].fields
