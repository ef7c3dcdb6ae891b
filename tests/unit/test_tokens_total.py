"""``tokens_total`` on PerformanceMetrics (schema v4): ``gen_ai.usage.total_tokens`` as sent, else
input + output tokens when both are sent; a sent total that contradicts them is rejected with the
three numbers. The rule is ``PerformanceMetrics.sum_fields`` (data), enforced by the model's
validator for events being received and never for events read back (``READ_BACK``).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
from pydantic import ValidationError

from otlp_feedback.events import READ_BACK, PerformanceMetrics
from otlp_feedback.mapping import RawFeedback, map_logs_request, map_traces_request
from otlp_feedback.mapping import convention as conv
from otlp_feedback.validation import Rejection

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENVELOPE: dict[str, Any] = {
    "event_id": "e-1",
    "timestamp": NOW,
    "received_at": NOW,
    "carrier": "log_record",
    "model": "gpt-4o",
}
MAX_LONG = 2**63 - 1

# -- the model -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "total"),
    [
        pytest.param({"input_tokens": 10, "output_tokens": 15}, 25, id="derived-from-both-parts"),
        pytest.param({"input_tokens": 0, "output_tokens": 0}, 0, id="derived-zero"),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 15, "tokens_total": 25}, 25, id="matching-total"
        ),
        pytest.param({"tokens_total": 30}, 30, id="total-without-parts-kept-as-sent"),
        pytest.param({"input_tokens": 10, "tokens_total": 30}, 30, id="total-with-one-part"),
        pytest.param({"output_tokens": 15}, None, id="one-part-no-total"),
        pytest.param({}, None, id="nothing"),
        pytest.param(
            {"input_tokens": MAX_LONG, "output_tokens": 1}, None, id="sum-past-avro-long-left-out"
        ),
    ],
)
def test_total_is_derived_or_kept(sent: dict[str, int], total: int | None) -> None:
    event = PerformanceMetrics.model_validate({**ENVELOPE, **sent})
    assert event.tokens_total == total
    assert {k: getattr(event, k) for k in sent} == sent  # the parts are never touched


def test_derived_total_counts_as_set() -> None:
    event = PerformanceMetrics(**ENVELOPE, input_tokens=10, output_tokens=15)
    assert "tokens_total" in event.model_fields_set
    assert event.model_dump(exclude_unset=True)["tokens_total"] == 25


def test_contradicting_total_is_rejected_naming_the_three_numbers() -> None:
    with pytest.raises(ValidationError) as refused:
        PerformanceMetrics(**ENVELOPE, input_tokens=10, output_tokens=15, tokens_total=30)
    (error,) = refused.value.errors()
    assert error["type"] == "sum_fields"
    assert error["msg"] == "tokens_total 30 is not input_tokens 10 + output_tokens 15 (= 25)"


@pytest.mark.parametrize(
    ("record", "total"),
    [
        pytest.param({"input_tokens": 10, "output_tokens": 15}, None, id="old-event-not-derived"),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 15, "tokens_total": 30},
            30,
            id="contradiction-written-elsewhere-still-readable",
        ),
    ],
)
def test_read_back_applies_no_sum_rule(record: dict[str, int], total: int | None) -> None:
    # A record written before v4 (or by another producer) reads back as written.
    event = PerformanceMetrics.model_validate({**ENVELOPE, **record}, context=READ_BACK)
    assert event.tokens_total == total


def test_sum_fields_name_real_integer_fields() -> None:
    # The rule is data; a typo in it would otherwise only show as a KeyError on some event.
    for total, parts in PerformanceMetrics.sum_fields:
        for name in (total, *parts):
            assert name in PerformanceMetrics.model_fields


# -- the convention key, on every carrier of performance metrics ----------------------------------


def test_total_tokens_key_feeds_tokens_total() -> None:
    assert conv.FIELD_KEYS["performance_metrics"]["tokens_total"] == ("gen_ai.usage.total_tokens",)
    assert "gen_ai.usage.total_tokens" in conv.CONSUMED_KEYS["performance_metrics"]


def from_log(attributes: dict[str, Any]) -> RawFeedback:
    record = log_record(
        "feedback.performance_metrics", {**MINIMAL["performance_metrics"], **attributes}
    )
    return only(map_logs_request(logs_request(record)))


def from_span_event(attributes: dict[str, Any]) -> RawFeedback:
    event = span_event(
        "feedback.performance_metrics", {**MINIMAL["performance_metrics"], **attributes}
    )
    return only(map_traces_request(traces_request(span(events=[event]))))


def from_genai_span(attributes: dict[str, Any]) -> RawFeedback:
    return only(map_traces_request(traces_request(genai_span(attributes))))


CARRIERS = [
    pytest.param(from_log, id="log-record"),
    pytest.param(from_span_event, id="span-event"),
    pytest.param(from_genai_span, id="genai-span"),
]
IN = "gen_ai.usage.input_tokens"
OUT = "gen_ai.usage.output_tokens"
TOTAL = "gen_ai.usage.total_tokens"


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize(
    ("attributes", "total"),
    [
        pytest.param({IN: 10, OUT: 15}, 25, id="derived"),
        pytest.param({IN: 10, OUT: 15, TOTAL: 25}, 25, id="sent-and-matching"),
        pytest.param({TOTAL: 40}, 40, id="sent-alone"),
        pytest.param({IN: 10}, None, id="no-total"),
    ],
)
def test_each_carrier_maps_the_total_key(
    carrier: Any, attributes: dict[str, Any], total: int | None
) -> None:
    event = event_of(carrier(attributes))
    assert isinstance(event, PerformanceMetrics)
    assert event.tokens_total == total
    assert TOTAL not in event.attributes  # a field now, not an unmapped attribute


@pytest.mark.parametrize("carrier", CARRIERS)
def test_contradicting_total_is_rejected_with_the_three_numbers_in_the_senders_keys(
    carrier: Any,
) -> None:
    result = validate(carrier({IN: 10, OUT: 15, TOTAL: 30}))
    assert isinstance(result, Rejection)
    assert result.reason == (
        "gen_ai.usage.total_tokens 30 is not gen_ai.usage.input_tokens 10 + "
        "gen_ai.usage.output_tokens 15 (= 25)"
    )


def test_total_of_the_wrong_type_is_rejected_like_any_token_count() -> None:
    result = validate(from_log({TOTAL: 25.0}))
    assert isinstance(result, Rejection)
    assert result.reason == "gen_ai.usage.total_tokens: expected an int, got a double (25.0)"
