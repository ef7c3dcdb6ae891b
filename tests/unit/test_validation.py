"""``Validator``: mapped feedback -> typed event, or a rejection whose reason names the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from otlp_builders import (
    MINIMAL,
    RECEIVED_AT,
    RECEIVED_NS,
    T0_NS,
    event_of,
    genai_span,
    log_record,
    logs_request,
    only,
    span,
    span_event,
    traces_request,
    validate,
)

from otlp_feedback.config import ValidationConfig
from otlp_feedback.events import READ_BACK, FeedbackEvent, UserFeedback
from otlp_feedback.mapping import RawFeedback, map_logs_request, map_traces_request
from otlp_feedback.validation import Rejection

DAY_NS = 86_400 * 10**9


def raw_log(event_name: str, attributes: dict[str, Any], **kwargs: Any) -> RawFeedback:
    return only(map_logs_request(logs_request(log_record(event_name, attributes, **kwargs))))


def user_feedback(**attributes: Any) -> RawFeedback:
    """Valid user feedback (a session and a rating), changed by ``attributes``."""
    attributes = {"session.id": "s", "feedback.rating": 4, **attributes}
    return raw_log("feedback.user_feedback", attributes)


def user_feedback_at(time_ns: int) -> RawFeedback:
    return raw_log(
        "feedback.user_feedback", {"session.id": "s", "feedback.rating": 4}, time_ns=time_ns
    )


def perf(**attributes: Any) -> RawFeedback:
    return raw_log("feedback.performance_metrics", {"gen_ai.request.model": "m", **attributes})


def rejection_of(raw: RawFeedback, limits: ValidationConfig | None = None) -> Rejection:
    result = validate(raw, limits)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


REJECTIONS = [
    pytest.param(user_feedback(**{"feedback.rating": 9}), "feedback.rating", id="rating-9"),
    pytest.param(user_feedback(**{"feedback.rating": -1}), "feedback.rating", id="rating-neg"),
    pytest.param(
        raw_log("feedback.user_feedback", {"feedback.rating": 4}),
        "session.id is required",
        id="no-session",
    ),
    pytest.param(
        user_feedback(**{"feedback.rating": math.nan}), "feedback.rating", id="rating-nan"
    ),
    pytest.param(
        perf(**{"feedback.latency_ms": math.inf}),
        "feedback.latency_ms: Input should be a finite number",
        id="latency-inf",
    ),
    pytest.param(
        perf(**{"feedback.cost_usd": -math.inf}), "feedback.cost_usd", id="cost-minus-inf"
    ),
    pytest.param(
        user_feedback(**{"feedback.thumbs": "sideways"}),
        "feedback.thumbs: Input should be 'up' or 'down' (got 'sideways')",
        id="thumbs-sideways",
    ),
    pytest.param(
        user_feedback(**{"feedback.comment": "x" * 1001}),
        "feedback.comment: String should have at most 1000 characters",
        id="comment-too-long",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s"}, body="y" * 1001),
        "body: String should have at most 1000 characters",
        id="body-comment-too-long",
    ),
    pytest.param(
        perf(**{"gen_ai.usage.input_tokens": -5}),
        "gen_ai.usage.input_tokens: Input should be greater than or equal to 0",
        id="negative-tokens",
    ),
    pytest.param(
        perf(**{"gen_ai.usage.output_tokens": 1.5}),
        "gen_ai.usage.output_tokens: expected an int, got a double (1.5)",
        id="float-tokens",
    ),
    pytest.param(
        perf(**{"gen_ai.usage.input_tokens": str(2**63)}),
        "gen_ai.usage.input_tokens",
        id="tokens-beyond-avro-long",
    ),
    pytest.param(
        raw_log("feedback.performance_metrics", {}), "gen_ai.request.model is required",
        id="perf-without-model",
    ),
    pytest.param(
        perf(**{"feedback.metric.ttft_ms": math.nan}),
        "feedback.metric.ttft_ms",
        id="custom-metric-nan",
    ),
    pytest.param(
        raw_log("feedback.model_response", {"feedback.quality_score": 101}),
        "feedback.quality_score",
        id="quality-score-over-100",
    ),
    pytest.param(
        raw_log("feedback.model_response", {"feedback.quality.relevance": 1.5}),
        "feedback.quality.relevance",
        id="relevance-over-1",
    ),
    pytest.param(
        raw_log("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "accuracy"}),
        "gen_ai.evaluation.score.value is missing",
        id="evaluation-without-score",
    ),
    pytest.param(
        raw_log("gen_ai.evaluation.result", {"gen_ai.evaluation.score.value": 0.5}),
        "gen_ai.evaluation.name is missing",
        id="evaluation-without-name",
    ),
    pytest.param(
        raw_log(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "accuracy", "gen_ai.evaluation.score.value": 3.0},
        ),
        "gen_ai.evaluation.score.value: Input should be less than or equal to 1",
        id="evaluation-score-out-of-range",
    ),
    pytest.param(
        raw_log(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.value": "high"},
        ),
        "gen_ai.evaluation.score.value",
        id="evaluation-custom-score-not-a-number",
    ),
    pytest.param(
        raw_log(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "user_feedback",
                "gen_ai.evaluation.score.value": 9,
                "session.id": "s",
            },
        ),
        "gen_ai.evaluation.score.value: Input should be less than or equal to 5",
        id="evaluation-user-rating-9",
    ),
    pytest.param(
        raw_log("feedback.system_health", {}),
        "feedback.health.status is required",
        id="health-without-status",
    ),
    pytest.param(
        raw_log("feedback.system_health", {"feedback.health.status": "on fire"}),
        "feedback.health.status",
        id="health-bad-status",
    ),
    pytest.param(
        only(
            map_logs_request(
                logs_request(
                    log_record("feedback.system_health", MINIMAL["system_health"]), resource={}
                )
            )
        ),
        "service.name is required",
        id="health-without-service",
    ),
    pytest.param(
        raw_log(
            "feedback.experiment_result",
            {**MINIMAL["experiment_result"], "feedback.experiment.type": "canary"},
        ),
        "feedback.experiment.type",
        id="experiment-bad-type",
    ),
    pytest.param(
        raw_log(
            "feedback.experiment_result",
            {**MINIMAL["experiment_result"], "feedback.experiment.latency_ms": -1.0},
        ),
        "feedback.experiment.latency_ms",
        id="experiment-negative-latency",
    ),
    pytest.param(
        perf(**{"feedback.latency_ms": -1.0}),
        "feedback.latency_ms: Input should be greater than or equal to 0",
        id="perf-negative-latency",
    ),
    pytest.param(
        user_feedback(**{"feedback.tags": "not-a-list"}), "feedback.tags", id="tags-not-a-list"
    ),
    pytest.param(
        user_feedback(**{"event.id": "x" * 129}), "event.id", id="event-id-too-long"
    ),
    pytest.param(
        user_feedback(**{"session.id": ["a", "b"]}),
        "session.id: expected a string or an int, got an array (['a', 'b'])",
        id="session-id-not-a-string",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s"}, time_ns=10**9),
        "timestamp 1970-01-01T00:00:01+00:00 is older than 3650 days",
        id="timestamp-1970",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s"}, time_ns=RECEIVED_NS + 2 * DAY_NS),
        "is too far in the future",
        id="timestamp-two-days-ahead",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s"}, time_ns=2**64 - 1),
        "is too far in the future",
        id="timestamp-max-fixed64",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
def test_invalid_feedback_is_rejected_with_a_reason_naming_the_attribute(
    raw: RawFeedback, reason: str
) -> None:
    rejection = rejection_of(raw)
    assert reason in rejection.reason
    assert rejection.location == raw.location
    assert rejection.event_type == raw.event_type


def test_rejection_describes_where_and_what() -> None:
    rejection = rejection_of(user_feedback(**{"feedback.rating": 9}))
    assert rejection.describe() == (
        "resource_logs[0].scope_logs[0].log_records[0] (user_feedback): "
        "feedback.rating: Input should be less than or equal to 5 (got 9)"
    )


def test_rejection_keeps_the_source_attributes_for_dead_letters() -> None:
    rejection = rejection_of(user_feedback(**{"feedback.rating": 9, "app.ui": "web"}))
    assert rejection.source_attributes == {"session.id": "s", "feedback.rating": 9, "app.ui": "web"}


def test_rejection_names_at_most_three_problems() -> None:
    raw = raw_log(
        "feedback.system_health",
        {
            "feedback.health.status": "bad",
            "feedback.health.error_rate": 2.0,
            "feedback.health.availability": 2.0,
            "feedback.health.cpu_percent": 200.0,
        },
    )
    assert rejection_of(raw).reason.count(";") == 2


def test_long_offending_values_are_shortened_in_the_reason() -> None:
    rejection = rejection_of(user_feedback(**{"feedback.thumbs": "z" * 500}))
    assert len(rejection.reason) < 200
    assert "...)" in rejection.reason


def test_genai_span_rejection_names_the_span() -> None:
    span_ = genai_span({"gen_ai.usage.input_tokens": -1})
    raw = only(map_traces_request(traces_request(span_)))
    rejection = rejection_of(raw)
    assert rejection.location == "resource_spans[0].scope_spans[0].spans[0]"
    assert rejection.carrier == "genai_span"
    assert "gen_ai.usage.input_tokens" in rejection.reason


# --- acceptances ----------------------------------------------------------------------------


ACCEPTANCES = [
    pytest.param(user_feedback(**{"feedback.rating": 0}), {"rating": 0.0}, id="rating-0"),
    pytest.param(user_feedback(**{"feedback.rating": 5}), {"rating": 5.0}, id="rating-5"),
    pytest.param(user_feedback(**{"feedback.thumbs": "down"}), {"thumbs": "down"}, id="thumbs"),
    pytest.param(
        user_feedback(**{"feedback.comment": "x" * 1000}), {"comment": "x" * 1000},
        id="comment-1000",
    ),
    pytest.param(perf(**{"gen_ai.usage.input_tokens": 0}), {"input_tokens": 0}, id="zero-tokens"),
    pytest.param(
        perf(**{"gen_ai.usage.input_tokens": 2**63 - 1}), {"input_tokens": 2**63 - 1},
        id="max-long-tokens",
    ),
    pytest.param(
        user_feedback_at(0),
        {"timestamp": RECEIVED_AT},
        id="no-time-means-receive-time",
    ),
    pytest.param(
        user_feedback_at(RECEIVED_NS + DAY_NS),
        {"timestamp": datetime.fromtimestamp((RECEIVED_NS + DAY_NS) / 1e9, UTC)},
        id="exactly-max-future-skew",
    ),
    pytest.param(
        user_feedback_at(T0_NS - 3000 * DAY_NS),
        {"timestamp": datetime.fromtimestamp((T0_NS - 3000 * DAY_NS) / 1e9, UTC)},
        id="eight-years-old",
    ),
    pytest.param(
        raw_log(
            "feedback.system_health",
            {"feedback.health.status": "unhealthy", "feedback.health.error_rate": 1.0},
        ),
        {"status": "unhealthy", "error_rate": 1.0},
        id="health-edges",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "expected"), ACCEPTANCES)
def test_valid_feedback_is_accepted(raw: RawFeedback, expected: dict[str, Any]) -> None:
    event = event_of(raw)
    assert {name: getattr(event, name) for name in expected} == expected


def test_received_at_is_the_receive_time() -> None:
    assert event_of(user_feedback()).received_at == RECEIVED_AT


def test_skew_and_age_limits_are_configurable() -> None:
    strict = ValidationConfig(max_future_skew_s=0, max_age_days=1)
    ahead = raw_log("feedback.user_feedback", {"session.id": "s"}, time_ns=RECEIVED_NS + 1)
    old = raw_log("feedback.user_feedback", {"session.id": "s"}, time_ns=RECEIVED_NS - 2 * DAY_NS)
    assert "too far in the future" in rejection_of(ahead, strict).reason
    assert "older than 1 days" in rejection_of(old, strict).reason


# --- the string attribute map -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param("plain", "plain", id="string"),
        pytest.param(True, "true", id="bool-true"),
        pytest.param(False, "false", id="bool-false"),
        pytest.param(42, "42", id="int"),
        pytest.param(-7, "-7", id="negative-int"),
        pytest.param(0.25, "0.25", id="float"),
        pytest.param(["a", 1, True], '["a",1,true]', id="array-as-json"),
        pytest.param({"k": "v", "n": 2}, '{"k":"v","n":2}', id="kvlist-as-json"),
        pytest.param({"nested": {"list": [1.5]}}, '{"nested":{"list":[1.5]}}', id="nested-json"),
        pytest.param(b"\x00\x01\xfe", "AAH+", id="bytes-as-base64"),
        pytest.param([b"\xff"], '["/w=="]', id="bytes-in-array-as-base64"),
        pytest.param("zß\u2603", "zß\u2603", id="unicode"),
    ],
)
def test_leftover_attributes_are_stringified(value: Any, text: str) -> None:
    event = event_of(user_feedback(**{"app.value": value}))
    assert event.attributes == {"app.value": text}


def test_attribute_count_is_capped_at_max_attributes() -> None:
    extra = {f"app.k{i}": i for i in range(5)}
    event = event_of(user_feedback(**extra), ValidationConfig(max_attributes=3))
    assert event.attributes == {"app.k0": "0", "app.k1": "1", "app.k2": "2"}


def test_zero_max_attributes_drops_the_attribute_map() -> None:
    event = event_of(user_feedback(**{"app.a": 1}), ValidationConfig(max_attributes=0))
    assert event.attributes == {}


def test_attribute_values_are_truncated_at_max_attribute_value_len() -> None:
    limits = ValidationConfig(max_attribute_value_len=16)
    event = event_of(user_feedback(**{"app.long": "a" * 40, "app.short": "b" * 16}), limits)
    assert event.attributes == {"app.long": "a" * 16, "app.short": "b" * 16}


def test_attribute_limits_do_not_limit_mapped_fields() -> None:
    limits = ValidationConfig(max_attributes=0, max_attribute_value_len=16)
    event = event_of(user_feedback(**{"feedback.comment": "c" * 500}), limits)
    assert isinstance(event, UserFeedback)
    assert event.comment == "c" * 500


def test_validated_event_is_immutable() -> None:
    event: FeedbackEvent = event_of(user_feedback())
    with pytest.raises(ValueError, match="frozen"):
        event.session_id = "other"  # type: ignore[misc]


def test_a_numeric_session_id_is_taken_as_its_text() -> None:
    event = validate(user_feedback(**{"session.id": 1234}))
    assert isinstance(event, UserFeedback) and event.session_id == "1234"


# --- accepted value types (README, "Accepted value types") --------------------------------------

# A valid record of each type the table exercises, without the field under test.
_BASE: dict[str, dict[str, Any]] = {
    "user_feedback": {"session.id": "s", "feedback.comment": "ok"},
    "performance_metrics": {"gen_ai.request.model": "m"},
    "model_response": {},
}
_FIELD_OF = {
    "feedback.rating": "rating",
    "gen_ai.usage.input_tokens": "input_tokens",
    "feedback.cache_hit": "cache_hit",
    "user.id": "user_id",
    "feedback.thumbs": "thumbs",
    "feedback.tags": "tags",
    "feedback.quality.tone": "custom_scores",
}
_TYPE_OF = {key: "user_feedback" for key in ("feedback.rating", "user.id", "feedback.thumbs")}
_TYPE_OF |= {"feedback.tags": "user_feedback", "feedback.quality.tone": "model_response"}
_TYPE_OF |= {"gen_ai.usage.input_tokens": "performance_metrics"}
_TYPE_OF |= {"feedback.cache_hit": "performance_metrics"}
NUMBER = "expected a number (double or int)"


@dataclass(frozen=True)
class Refused:
    reason: str


# (field kind, OTLP type sent): (attribute, value sent, the field's value or the rejection reason)
RATING, TOKENS, CACHE_HIT, USER = (
    "feedback.rating",
    "gen_ai.usage.input_tokens",
    "feedback.cache_hit",
    "user.id",
)
THUMBS, TAGS, TONE = "feedback.thumbs", "feedback.tags", "feedback.quality.tone"
TEXT = "expected a string or an int"
THUMBS_LITERAL = "Input should be 'up' or 'down'"
CONVERSIONS: dict[tuple[str, str], tuple[str, Any, Any]] = {
    ("double", "double"): (RATING, 4.5, 4.5),
    ("double", "int"): (RATING, 5, 5.0),  # widened
    ("double", "bool"): (RATING, True, Refused(f"{RATING}: {NUMBER}, got a bool (True)")),
    ("double", "string"): (RATING, "5", Refused(f"{RATING}: {NUMBER}, got a string ('5')")),
    ("double", "bytes"): (RATING, b"5", Refused(f"{RATING}: {NUMBER}, got bytes (b'5')")),
    ("double", "array"): (RATING, [5], Refused(f"{RATING}: {NUMBER}, got an array ([5])")),
    ("int", "int"): (TOKENS, 12, 12),
    ("int", "double"): (TOKENS, 12.0, Refused(f"{TOKENS}: expected an int, got a double (12.0)")),
    ("int", "bool"): (TOKENS, True, Refused(f"{TOKENS}: expected an int, got a bool (True)")),
    ("int", "string"): (TOKENS, "12", Refused(f"{TOKENS}: expected an int, got a string ('12')")),
    ("bool", "bool"): (CACHE_HIT, True, True),
    ("bool", "int"): (CACHE_HIT, 1, Refused(f"{CACHE_HIT}: expected a bool, got an int (1)")),
    ("bool", "double"): (
        CACHE_HIT, 1.0, Refused(f"{CACHE_HIT}: expected a bool, got a double (1.0)")
    ),
    ("bool", "string"): (
        CACHE_HIT, "true", Refused(f"{CACHE_HIT}: expected a bool, got a string ('true')")
    ),
    ("string", "string"): (USER, "u-7", "u-7"),
    ("string", "int"): (USER, 42, "42"),  # widened: its decimal text
    ("string", "double"): (USER, 4.2, Refused(f"{USER}: {TEXT}, got a double (4.2)")),
    ("string", "bool"): (USER, True, Refused(f"{USER}: {TEXT}, got a bool (True)")),
    ("string", "bytes"): (USER, b"u", Refused(f"{USER}: {TEXT}, got bytes (b'u')")),
    ("string", "kvlist"): (
        USER, {"a": "b"}, Refused(f"{USER}: {TEXT}, got a key/value list ({{'a': 'b'}})")
    ),
    ("enum", "string"): (THUMBS, "up", "up"),
    ("enum", "bool"): (THUMBS, True, Refused(f"{THUMBS}: {THUMBS_LITERAL} (got True)")),
    ("enum", "int"): (THUMBS, 1, Refused(f"{THUMBS}: {THUMBS_LITERAL} (got 1)")),
    ("string array", "array of strings"): (TAGS, ["a", "b"], ["a", "b"]),
    ("string array", "array with an int"): (
        TAGS, ["a", 1], Refused(f"{TAGS}[1]: expected a string, got an int (1)")
    ),
    ("string array", "string"): (
        TAGS, "a", Refused(f"{TAGS}: expected an array of strings, got a string ('a')")
    ),
    ("number map", "double"): (TONE, 0.5, {"tone": 0.5}),
    ("number map", "int"): (TONE, 1, {"tone": 1.0}),  # widened
    ("number map", "bool"): (TONE, True, Refused(f"{TONE}: {NUMBER}, got a bool (True)")),
    ("number map", "string"): (TONE, "0.5", Refused(f"{TONE}: {NUMBER}, got a string ('0.5')")),
}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    list(CONVERSIONS.values()),
    ids=[f"{kind} <- {sent}" for kind, sent in CONVERSIONS],
)
def test_a_value_is_accepted_widened_or_rejected_by_the_conversion_table(
    key: str, value: Any, expected: Any
) -> None:
    event_type = _TYPE_OF[key]
    result = validate(raw_log(f"feedback.{event_type}", {**_BASE[event_type], key: value}))
    if isinstance(expected, Refused):
        assert isinstance(result, Rejection), f"accepted: {result!r}"
        assert result.reason == expected.reason
    else:
        assert not isinstance(result, Rejection), result.reason
        held = getattr(result, _FIELD_OF[key])
        assert held == expected
        assert type(held) is type(expected)  # 5 -> 5.0, 42 -> "42": the field's own type


@pytest.mark.parametrize("value", [True, "5"], ids=["true", "'5'"])
def test_a_rating_of_true_or_a_numeric_string_is_rejected_not_coerced(value: Any) -> None:
    # What lax validation used to turn into 1.0 and 5.0 without a word.
    reason = rejection_of(user_feedback(**{"feedback.rating": value})).reason
    assert reason.startswith(f"feedback.rating: {NUMBER}, got a ")


# --- user feedback needs a rating, thumbs or a comment ------------------------------------------

NEEDS_ONE = "user_feedback needs at least one of feedback.rating, feedback.thumbs, feedback.comment"
EVALUATION = {"gen_ai.evaluation.name": "user_feedback", "session.id": "s"}
SESSION_ONLY_SPAN_EVENT = span_event("feedback.user_feedback", {"session.id": "s"})

AT_LEAST_ONE = [
    pytest.param(raw_log("feedback.user_feedback", {"session.id": "s"}), False, id="session-only"),
    pytest.param(user_feedback(), True, id="rating"),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s", "feedback.rating": 0}), True,
        id="rating-zero",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s", "feedback.thumbs": "down"}), True,
        id="thumbs",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s", "feedback.comment": "ok"}), True,
        id="comment",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s", "feedback.comment": ""}), False,
        id="empty-comment-is-absent",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s", "feedback.tags": ["a"]}), False,
        id="tags-alone",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {"session.id": "s"}, body="Nice"), True,
        id="string-body-is-the-comment",
    ),
    pytest.param(
        raw_log("feedback.user_feedback", {}, body={"session.id": "s", "feedback.thumbs": "up"}),
        True, id="kvlist-body",
    ),
    pytest.param(
        raw_log("gen_ai.evaluation.result", {**EVALUATION, "gen_ai.evaluation.score.value": 4}),
        True, id="evaluation-score",
    ),
    pytest.param(raw_log("gen_ai.evaluation.result", EVALUATION), False, id="evaluation-bare"),
    pytest.param(
        only(map_traces_request(traces_request(span(events=[SESSION_ONLY_SPAN_EVENT])))),
        False, id="span-event-session-only",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "valid"), AT_LEAST_ONE)
def test_user_feedback_needs_a_rating_thumbs_or_comment(raw: RawFeedback, valid: bool) -> None:
    result = validate(raw)
    if valid:
        assert isinstance(result, UserFeedback), getattr(result, "reason", result)
    else:
        assert isinstance(result, Rejection) and result.reason == NEEDS_ONE


def test_an_event_read_back_from_kafka_need_not_follow_the_at_least_one_rule() -> None:
    # Events written before the rule existed must stay readable (consumer.decoder).
    stored = event_of(user_feedback()).model_dump()
    stored["rating"] = None
    with pytest.raises(ValueError, match="needs at least one of rating, thumbs, comment"):
        UserFeedback.model_validate(stored)
    assert UserFeedback.model_validate(stored, context=READ_BACK).rating is None


def test_an_empty_attribute_counts_as_absent() -> None:
    assert "session.id is required" in rejection_of(user_feedback(**{"session.id": ""})).reason
