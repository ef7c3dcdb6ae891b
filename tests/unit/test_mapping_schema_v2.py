"""The convention keys added with schema v2 of performance_metrics and model_response.

performance_metrics v2: ``gen_ai.usage.cache_read.input_tokens`` -> ``cache_read_input_tokens``,
``gen_ai.usage.reasoning.output_tokens`` -> ``reasoning_output_tokens``.
model_response v2: ``gen_ai.evaluation.score.label`` -> ``score_label`` (no longer copied to
``attributes``), ``gen_ai.evaluation.evaluator.name`` else ``feedback.evaluator`` -> ``evaluator``.
"""

from __future__ import annotations

from typing import Any

import pytest
from otlp_builders import (
    MINIMAL,
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

from otlp_feedback.events import FeedbackEvent, ModelResponse, PerformanceMetrics, UserFeedback
from otlp_feedback.mapping import map_logs_request, map_traces_request
from otlp_feedback.validation import Rejection

USAGE = {
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.reasoning.output_tokens": 256,
}
EVALUATION = {
    "gen_ai.evaluation.name": "relevance",
    "gen_ai.evaluation.score.value": 0.4,
    "gen_ai.evaluation.score.label": "partially_relevant",
    "gen_ai.evaluation.evaluator.name": "llm-judge",
}


def log_event(event_name: str, attributes: dict[str, Any]) -> FeedbackEvent:
    return event_of(only(map_logs_request(logs_request(log_record(event_name, attributes)))))


def span_events(*spans: Any) -> FeedbackEvent:
    return event_of(only(map_traces_request(traces_request(*spans))))


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            lambda: log_event(
                "feedback.performance_metrics", {**MINIMAL["performance_metrics"], **USAGE}
            ),
            id="log-event",
        ),
        pytest.param(lambda: span_events(genai_span(USAGE)), id="genai-span"),
    ],
)
def test_cache_read_and_reasoning_tokens_become_performance_fields(event: Any) -> None:
    metrics = event()
    assert isinstance(metrics, PerformanceMetrics)
    assert metrics.cache_read_input_tokens == 1024
    assert metrics.reasoning_output_tokens == 256
    assert not set(USAGE) & set(metrics.attributes)


def test_performance_event_without_the_new_keys_leaves_them_null() -> None:
    metrics = log_event("feedback.performance_metrics", MINIMAL["performance_metrics"])
    assert isinstance(metrics, PerformanceMetrics)
    assert (metrics.cache_read_input_tokens, metrics.reasoning_output_tokens) == (None, None)


def test_negative_cache_read_tokens_are_rejected_naming_the_key() -> None:
    attributes = {**MINIMAL["performance_metrics"], "gen_ai.usage.cache_read.input_tokens": -1}
    raw = only(
        map_logs_request(logs_request(log_record("feedback.performance_metrics", attributes)))
    )
    result = validate(raw)
    assert isinstance(result, Rejection)
    assert result.reason.startswith("gen_ai.usage.cache_read.input_tokens: ")


def test_evaluation_label_and_evaluator_become_fields_not_attributes() -> None:
    response = span_events(span(events=[span_event("gen_ai.evaluation.result", EVALUATION)]))
    assert isinstance(response, ModelResponse)
    assert response.evaluation_name == "relevance"
    assert response.relevance == 0.4
    assert response.score_label == "partially_relevant"
    assert response.evaluator == "llm-judge"
    assert response.attributes == {}


def test_evaluation_log_event_maps_the_label_too() -> None:
    response = log_event("gen_ai.evaluation.result", EVALUATION)
    assert isinstance(response, ModelResponse)
    assert response.score_label == "partially_relevant"
    assert "gen_ai.evaluation.score.label" not in response.attributes


@pytest.mark.parametrize(
    ("attributes", "evaluator"),
    [
        pytest.param({"feedback.evaluator": "human:ana"}, "human:ana", id="feedback-evaluator"),
        pytest.param(
            {"gen_ai.evaluation.evaluator.name": "llm-judge", "feedback.evaluator": "human:ana"},
            "llm-judge",
            id="semconv-key-wins",
        ),
        pytest.param({}, None, id="absent"),
    ],
)
def test_model_response_evaluator_comes_from_either_key(
    attributes: dict[str, Any], evaluator: str | None
) -> None:
    response = log_event("feedback.model_response", {**MINIMAL["model_response"], **attributes})
    assert isinstance(response, ModelResponse)
    assert response.evaluator == evaluator
    assert not {"feedback.evaluator", "gen_ai.evaluation.evaluator.name"} & set(response.attributes)


def test_user_feedback_evaluation_still_reads_a_thumbs_label_as_thumbs() -> None:
    feedback = log_event(
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "user_feedback",
            "gen_ai.evaluation.score.label": "thumbs_up",
            "session.id": "s-1",
        },
    )
    assert isinstance(feedback, UserFeedback)
    assert feedback.thumbs == "up"
    assert "gen_ai.evaluation.score.label" not in feedback.attributes


def test_user_feedback_keeps_a_label_it_has_no_field_for_in_attributes() -> None:
    # UserFeedback did not change: only thumbs labels map; any other label is kept as sent.
    feedback = log_event(
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "user_feedback",
            "gen_ai.evaluation.score.value": 3,
            "gen_ai.evaluation.score.label": "meh",
            "session.id": "s-1",
        },
    )
    assert isinstance(feedback, UserFeedback)
    assert feedback.attributes["gen_ai.evaluation.score.label"] == "meh"
