"""The one telemetry object: components report into it, ``/metrics`` reads only it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from otlp_feedback.config import DeliveryConfig, KafkaConfig, Settings
from otlp_feedback.observability import metrics
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline import ExportOutcome, Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.breaker import CircuitBreaker
from otlp_feedback.sinks.failover import FailoverSink
from otlp_feedback.sinks.kafka import KafkaSink
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import logs_request, make_log_record


def _families(telemetry: Telemetry) -> dict[str, dict[tuple[str, ...], float]]:
    return {
        family.name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in text_string_to_metric_families(telemetry.exposition().decode())
    }


def test_a_pipeline_built_on_the_telemetry_is_what_metrics_shows() -> None:
    telemetry = Telemetry()
    pipeline = Pipeline(Settings(), InMemoryRegistry(), InMemorySink(), telemetry=telemetry)
    pipeline.start()
    records = [
        make_log_record("feedback.user_feedback", {"session.id": "s1", "feedback.rating": 4}),
        make_log_record("feedback.user_feedback", {"feedback.rating": 4}),  # no session.id
        make_log_record("app.click", {"x": 1}),
    ]
    pipeline.export_logs(logs_request(records))

    shown = _families(telemetry)
    assert shown["otlp_feedback_requests"] == {(): 1}
    assert shown["otlp_feedback_events_accepted"] == {("user_feedback",): 1}
    assert shown["otlp_feedback_events_rejected"] == {("user_feedback", "invalid"): 1}
    assert shown["otlp_feedback_events_received"] == {("user_feedback",): 2}
    assert shown["otlp_feedback_records_ignored"] == {(): 1}
    assert (pipeline.stats.accepted, pipeline.stats.rejected, pipeline.stats.ignored) == (1, 1, 1)


def test_sink_families_show_only_once_a_sink_reports_into_the_telemetry() -> None:
    telemetry = Telemetry()
    assert "otlp_feedback_records_published" not in _families(telemetry)
    assert "otlp_feedback_circuit_state" not in _families(telemetry)

    kafka = KafkaSink(KafkaConfig(), ["feedback.t"], telemetry)
    FailoverSink(kafka, None, DeliveryConfig(), telemetry=telemetry)

    shown = _families(telemetry)
    assert shown["otlp_feedback_producer_rebuilds"] == {(): 0}
    assert shown["otlp_feedback_events_spooled"] == {(): 0}
    assert shown["otlp_feedback_circuit_state"] == {(): 0}
    assert shown["otlp_feedback_inflight_events"] == {(): 0}


def test_the_breaker_counts_openings_and_its_state_into_the_telemetry() -> None:
    telemetry = Telemetry()
    breaker = CircuitBreaker(1, 60.0, telemetry=telemetry)
    breaker.record_failure()
    shown = _families(telemetry)
    assert shown["otlp_feedback_circuit_opened"] == {(): 1}
    assert shown["otlp_feedback_circuit_state"] == {(): 2}
    assert breaker.opened_count == 1


def test_a_component_built_without_telemetry_counts_into_its_own() -> None:
    first, second = CircuitBreaker(1, 60.0), CircuitBreaker(1, 60.0)
    first.record_failure()
    assert (first.opened_count, second.opened_count) == (1, 0)


def test_one_request_is_counted_once_with_its_outcome() -> None:
    telemetry = Telemetry()
    outcome = ExportOutcome(ignored=2, native=3, deferred=1)
    outcome.accepted_by_type.update({"user_feedback": 3})
    telemetry.count_request(outcome)
    assert telemetry.snapshot() == {
        (metrics.REQUESTS,): 1,
        (metrics.IGNORED,): 2,
        (metrics.DEAD_LETTERED,): 0,
        (metrics.NATIVE, "native"): 3,
        (metrics.NATIVE, "deferred"): 1,
        (metrics.ACCEPTED, "user_feedback"): 3,
    }
