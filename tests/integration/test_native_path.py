"""The native fast path end to end: OTel SDK log events -> receiver -> Tansu -> registry-decoded
Avro, through C for the records it can prove valid and through Python for the rest, with the
same result as a receiver running the Python path alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import KafkaReader
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.events import EVENT_TYPES

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000
RESOURCE = Resource.create({"service.name": "chatbot", "deployment.environment.name": "prod"})
# (event name, attributes): the first five are provably valid (native); the last two are
# deferred to Python: a comment that redaction rewrites, and a rating out of range (rejected).
EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "feedback.user_feedback",
        {"event.id": "uf-1", "session.id": "s-1", "feedback.rating": 4, "feedback.tags": ["a"]},
    ),
    (
        "feedback.performance_metrics",
        {
            "event.id": "pm-1",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 12,
            "feedback.latency_ms": 81.5,
            "feedback.metric.ttft_ms": 9.5,
            "app.route": "/chat",
        },
    ),
    (
        "feedback.model_response",
        {"event.id": "mr-1", "feedback.quality_score": 90.0, "feedback.quality.tone": 0.5},
    ),
    ("feedback.system_health", {"event.id": "sh-1", "feedback.health.status": "healthy"}),
    (
        "feedback.experiment_result",
        {
            "event.id": "ex-1",
            "feedback.experiment.id": "e",
            "feedback.experiment.type": "ab_test",
            "feedback.experiment.variant_id": "B",
        },
    ),
    (
        "feedback.user_feedback",
        {"event.id": "uf-2", "session.id": "s-2", "feedback.comment": "mail me at jo@example.com"},
    ),
    ("feedback.user_feedback", {"event.id": "uf-3", "session.id": "s-3", "feedback.rating": 9}),
]


def _python_only(settings: Settings, tmp_path: Path) -> Settings:
    """The same receiver on its own topics, with the native fast path off."""
    kafka = settings.kafka
    return settings.model_copy(
        update={
            "receiver": settings.receiver.model_copy(update={"native_fast_path": False}),
            "kafka": kafka.model_copy(
                update={
                    "topics": {t: f"{kafka.topic_for(t)}-py" for t in EVENT_TYPES},
                    "dlq_topic": f"{kafka.dlq_topic}-py",
                }
            ),
            "spool": settings.spool.model_copy(update={"directory": tmp_path / "spool-py"}),
        }
    )


@pytest.fixture
def python_app(settings: Settings, tmp_path: Path) -> Iterator[FeedbackApp]:
    with FeedbackApp(_python_only(settings, tmp_path)) as running:
        yield running


def _emit(app: FeedbackApp) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"127.0.0.1:{app.port}", insecure=True))
    )
    logger = provider.get_logger("feedback-widget")
    for offset, (name, attributes) in enumerate(EVENTS):
        logger.emit(event_name=name, timestamp=T0 + offset * 1_000_000, attributes=attributes)
    assert provider.force_flush()
    provider.shutdown()


def _comparable(record: dict[str, Any]) -> tuple[Any, ...]:
    value = dict(record["value"])
    value.pop("received_at")  # each receiver's own clock
    headers = record["headers"]
    return headers["event_type"], record["key"], headers["schema_version"], sorted(value.items())


# Since schema v4, performance_metrics has ``sum_fields`` (tokens_total), which the native plan
# does not compile yet: pm-1 takes the Python path, so the counts below read (4, 3). strict: the
# mark must go when the plan learns sum_fields.
@pytest.mark.xfail(
    reason="native sum_fields pending (step6-b-native): performance_metrics takes the Python path",
    strict=True,
)
def test_sdk_events_take_the_native_path_and_match_the_python_path(
    app: FeedbackApp, python_app: FeedbackApp, settings: Settings, tmp_path: Path
) -> None:
    _emit(app)
    _emit(python_app)

    native = KafkaReader(settings).read(6)
    python = KafkaReader(_python_only(settings, tmp_path)).read(6)

    stats = app.pipeline.stats
    assert (stats.native_events, stats.native_deferred) == (5, 2)
    assert (stats.accepted, stats.rejected) == (6, 1)
    assert python_app.pipeline.stats.native_events == 0
    assert len(native) == len(python) == 6
    assert sorted(map(_comparable, native)) == sorted(map(_comparable, python))

    by_id = {r["value"]["event_id"]: r["value"] for r in native}
    assert set(by_id) == {"uf-1", "pm-1", "mr-1", "sh-1", "ex-1", "uf-2"}
    assert by_id["uf-1"]["rating"] == 4.0 and by_id["uf-1"]["tags"] == ["a"]
    assert by_id["pm-1"]["custom_metrics"] == {"ttft_ms": 9.5}
    assert by_id["pm-1"]["attributes"] == {"app.route": "/chat"}
    assert by_id["mr-1"]["custom_scores"] == {"tone": 0.5}
    assert (by_id["sh-1"]["service"], by_id["sh-1"]["environment"]) == ("chatbot", "prod")
    assert by_id["uf-2"]["comment"] == "mail me at [EMAIL]"
    assert by_id["uf-2"]["redacted_fields"] == ["comment"]
