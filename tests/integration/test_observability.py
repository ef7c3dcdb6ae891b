"""Metrics and health endpoints against the real broker: counters equal the known workload."""

from __future__ import annotations

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from prometheus_client.parser import text_string_to_metric_families

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_exactly_what_was_sent_accepted_rejected_and_published(
    app: FeedbackApp, settings: Settings
) -> None:
    assert app.http is not None
    valid = [
        make_log_record("feedback.user_feedback", {"session.id": f"s{i}", "feedback.rating": 4})
        for i in range(5)
    ]
    invalid = [
        make_log_record("feedback.user_feedback", {"feedback.rating": 4}),  # no session.id
        make_log_record("feedback.system_health", {"feedback.health.status": "??"}),
    ]
    ignored = [make_log_record("app.click", {"x": i}) for i in range(3)]
    stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
    response = stub.Export(logs_request([*valid, *invalid, *ignored]), timeout=30)
    assert response.partial_success.rejected_log_records == 2

    metrics = _samples(httpx.get(f"{app.http.url}/metrics").text)
    uf, sh = (("event_type", "user_feedback"),), (("event_type", "system_health"),)
    assert metrics[("otlp_feedback_events_received_total", uf)] == 6
    assert metrics[("otlp_feedback_events_received_total", sh)] == 1
    assert metrics[("otlp_feedback_events_accepted_total", uf)] == 5
    rejected = "otlp_feedback_events_rejected_total"
    assert metrics[(rejected, (("event_type", "user_feedback"), ("reason", "invalid")))] == 1
    assert metrics[(rejected, (("event_type", "system_health"), ("reason", "invalid")))] == 1
    assert metrics[("otlp_feedback_records_ignored_total", ())] == 3
    # The valid ones took the native fast path; the two invalid ones went to Python (rejected).
    assert metrics[("otlp_feedback_native_records_total", (("path", "native"),))] == 5
    assert metrics[("otlp_feedback_native_records_total", (("path", "deferred"),))] == 2
    assert metrics[("otlp_feedback_events_dead_lettered_total", ())] == 2
    published = "otlp_feedback_records_published_total"
    topic = settings.kafka.topic_for("user_feedback")
    assert metrics[(published, (("topic", topic),))] == 5
    assert metrics[(published, (("topic", settings.kafka.dlq_topic or ""),))] == 2
    grpc_logs = (("signal", "logs"), ("transport", "grpc"))
    assert metrics[("otlp_feedback_export_responses_total", (("code", "OK"), *grpc_logs))] == 1
    assert metrics[("otlp_feedback_export_duration_seconds_count", grpc_logs)] == 1
    assert metrics[("otlp_feedback_circuit_state", ())] == 0
    assert metrics[("otlp_feedback_events_spooled_total", ())] == 0


def test_readiness_and_liveness_follow_the_lifecycle(app: FeedbackApp) -> None:
    assert app.http is not None
    url = app.http.url
    assert httpx.get(f"{url}/healthz").status_code == 200
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []

    app.receiver.shutdown(grace=1.0)  # what SIGTERM starts; the HTTP side stays up until last
    assert httpx.get(f"{url}/healthz").status_code == 503
    not_ready = httpx.get(f"{url}/readyz")
    assert not_ready.status_code == 503
    assert "receiver is not serving" in not_ready.json()["problems"]
