"""The product promise, end to end: an app using only the OpenTelemetry SDK emits feedback, and
a downstream consumer reads typed Avro records from Kafka, decoded through the registry.

The SDK exports over OTLP/gRPC and, with the stock HTTP exporters
(``opentelemetry-exporter-otlp-proto-http``, gzip on), over OTLP/HTTP: every field of every
event must be the same whichever door it came through."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import record_responses
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from otlp_feedback.app import FeedbackApp

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
RESOURCE = Resource.create({"service.name": "chatbot", "deployment.environment.name": "staging"})
# The newest schema version of each type, which producers write (and name in a header).
SCHEMA_VERSION = {
    "user_feedback": b"2",
    "performance_metrics": b"4",
    "model_response": b"3",
    "system_health": b"2",
    "experiment_result": b"2",
}


def _at(offset_ms: float) -> datetime:
    return datetime.fromtimestamp((T0 + int(offset_ms * 1_000_000)) / 1e9, UTC)


def exporters(app: FeedbackApp, transport: str) -> tuple[LogRecordExporter, SpanExporter]:
    """The stock SDK exporters for ``transport`` (grpc, or http with gzip) aimed at ``app``."""
    if transport == "grpc":
        endpoint = f"127.0.0.1:{app.port}"
        return (
            OTLPLogExporter(endpoint=endpoint, insecure=True),
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
        )
    base = f"http://127.0.0.1:{app.http_port}"
    return (
        HttpLogExporter(endpoint=f"{base}/v1/logs", compression=Compression.Gzip),
        HttpSpanExporter(endpoint=f"{base}/v1/traces", compression=Compression.Gzip),
    )


@pytest.fixture(params=["grpc", "http"])
def sdk(
    app: FeedbackApp, request: pytest.FixtureRequest
) -> Iterator[tuple[LoggerProvider, TracerProvider]]:
    log_exporter, span_exporter = exporters(app, request.param)
    logs = LoggerProvider(resource=RESOURCE)
    logs.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    traces = TracerProvider(resource=RESOURCE)
    traces.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield logs, traces
    logs.shutdown()
    traces.shutdown()


def _emit_everything(logs: LoggerProvider, traces: TracerProvider) -> None:
    logger = logs.get_logger("feedback-widget")
    logger.emit(
        event_name="feedback.user_feedback",
        timestamp=T0,
        body="Great answer, thanks",
        attributes={
            "session.id": "sess-1",
            "user.id": "user-1",
            "gen_ai.response.id": "resp-1",
            "feedback.rating": 4,
            "feedback.thumbs": "up",
            "feedback.tags": ["helpful", "fast"],
            "app.page": "chat",
        },
    )
    logger.emit(
        event_name="feedback.performance_metrics",
        timestamp=T0 + 1_000_000,
        attributes={
            "event.id": "perf-fixed-id",
            "feedback.request_id": "req-2",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.provider.name": "openai",
            "feedback.latency_ms": 812.5,
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 48,
            "feedback.cost_usd": 0.0031,
            "feedback.cache_hit": True,
            "feedback.metric.ttft_ms": 95.0,
        },
    )
    logger.emit(
        event_name="feedback.model_response",
        timestamp=T0 + 2_000_000,
        attributes={
            "gen_ai.response.id": "resp-3",
            "gen_ai.request.model": "claude-sonnet",
            "feedback.quality_score": 87.5,
            "feedback.quality.accuracy": 0.9,
            "feedback.quality.relevance": 0.8,
            "feedback.quality.coherence": 0.95,
            "feedback.quality.completeness": 0.7,
            "feedback.quality.safety": 1.0,
            "feedback.prompt_hash": "abc123",
            "feedback.response_length": 420,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.top_p": 0.9,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.top_k": 40,
        },
    )
    logger.emit(
        event_name="feedback.system_health",
        timestamp=T0 + 3_000_000,
        attributes={
            "feedback.health.status": "degraded",
            "feedback.health.error_rate": 0.02,
            "feedback.health.availability": 0.995,
            "feedback.health.cpu_percent": 73.5,
            "feedback.health.memory_mb": 2048,
            "feedback.health.memory_percent": 61.0,
            "feedback.health.network_mbps": 12.5,
            "feedback.health.active_requests": 17,
        },
    )
    logger.emit(
        event_name="feedback.experiment_result",
        timestamp=T0 + 4_000_000,
        attributes={
            "feedback.experiment.id": "exp-7",
            "feedback.experiment.type": "ab_test",
            "feedback.experiment.variant_id": "B",
            "feedback.experiment.reward": 1.0,
            "feedback.experiment.cost": 0.002,
            "feedback.experiment.quality": 0.8,
            "feedback.experiment.latency_ms": 640,
            "feedback.experiment.user_satisfaction": 4.5,
        },
    )
    tracer = traces.get_tracer("llm-client")
    span = tracer.start_span(
        "chat gpt-4o-mini",
        start_time=T0 + 10_000_000,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.system": "openai",
            "gen_ai.response.id": "resp-9",
            "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 5,
            "error.type": "timeout",
            "session.id": "sess-9",
        },
    )
    span.add_event(
        "feedback.user_feedback",
        {"feedback.thumbs": "down", "feedback.comment": "too slow"},
        timestamp=T0 + 10_500_000,
    )
    span.add_event(
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "relevance",
            "gen_ai.evaluation.score.value": 0.66,
            "gen_ai.evaluation.explanation": "partly on topic",
        },
        timestamp=T0 + 10_600_000,
    )
    span.add_event(
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "user_feedback",
            "gen_ai.evaluation.score.value": 5,
            "gen_ai.evaluation.score.label": "thumbs_up",
            "gen_ai.evaluation.explanation": "perfect",
        },
        timestamp=T0 + 10_700_000,
    )
    span.set_status(Status(StatusCode.ERROR, "deadline exceeded"))
    span.end(end_time=T0 + 260_000_000)  # 250 ms after start


def _by_type(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["headers"]["event_type"].decode(), []).append(r)
    return out


def test_every_event_type_and_carrier_arrives_typed_and_complete(
    sdk: tuple[LoggerProvider, TracerProvider],
    app: FeedbackApp,
    kafka_reader: Callable[..., list[dict[str, Any]]],
) -> None:
    logs, traces = sdk
    _emit_everything(logs, traces)
    assert logs.force_flush() and traces.force_flush()

    records = kafka_reader(9)
    assert len(records) == 9
    by_type = _by_type(records)
    assert {k: len(v) for k, v in by_type.items()} == {
        "user_feedback": 3,
        "performance_metrics": 2,
        "model_response": 2,
        "system_health": 1,
        "experiment_result": 1,
    }
    for r in records:
        value = r["value"]
        # Confluent framing and headers
        assert r["raw"][0] == 0
        assert r["topic"].endswith("." + value_type(r))
        assert r["headers"]["event_id"].decode() == value["event_id"]
        assert r["headers"]["schema_version"] == SCHEMA_VERSION[value_type(r)]
        assert isinstance(value["received_at"], datetime)
        # No auth and nothing to redact in this app: the envelope's defaults, written out.
        assert value["client_id"] is None and "client_id" not in r["headers"]
        assert value["redacted_fields"] == []
        if value["trace_id"]:
            assert r["headers"]["trace_id"].decode() == value["trace_id"]
        else:
            assert "trace_id" not in r["headers"]
        if value["carrier"] == "log_record":
            assert value["service"] == "chatbot" and value["environment"] == "staging"

    # -- log events ------------------------------------------------------------------------
    log_feedback = _only(by_type, "user_feedback", "log_record")
    v = log_feedback["value"]
    assert log_feedback["key"] == b"sess-1"
    assert uuid.UUID(v["event_id"]).version == 5
    assert v["timestamp"] == _at(0)
    assert (v["session_id"], v["user_id"], v["request_id"]) == ("sess-1", "user-1", "resp-1")
    assert (v["rating"], v["thumbs"], v["comment"]) == (4.0, "up", "Great answer, thanks")
    assert v["tags"] == ["helpful", "fast"]
    assert v["attributes"] == {"app.page": "chat"}
    assert (v["trace_id"], v["span_id"]) == (None, None)

    perf_log = _only(by_type, "performance_metrics", "log_record")
    v = perf_log["value"]
    assert perf_log["key"] == b"req-2"
    assert v["event_id"] == "perf-fixed-id"
    assert v["timestamp"] == _at(1)
    assert (v["model"], v["response_model"], v["provider"]) == (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "openai",
    )
    assert (v["latency_ms"], v["input_tokens"], v["output_tokens"]) == (812.5, 120, 48)
    assert (v["cost_usd"], v["cache_hit"], v["success"], v["error_type"]) == (
        0.0031,
        True,
        True,
        None,
    )
    assert v["custom_metrics"] == {"ttft_ms": 95.0}
    assert v["attributes"] == {}

    model_log = _only(by_type, "model_response", "log_record")
    v = model_log["value"]
    assert model_log["key"] == b"resp-3"
    assert v["timestamp"] == _at(2)
    assert v["model"] == "claude-sonnet"
    assert v["quality_score"] == 87.5
    assert (v["accuracy"], v["relevance"], v["coherence"], v["completeness"], v["safety"]) == (
        0.9,
        0.8,
        0.95,
        0.7,
        1.0,
    )
    assert (v["prompt_hash"], v["response_length"]) == ("abc123", 420)
    assert v["finish_reasons"] == ["stop"]
    assert (v["temperature"], v["top_p"], v["max_tokens"], v["top_k"]) == (0.2, 0.9, 512, 40)
    assert v["custom_scores"] == {} and v["evaluation_name"] is None

    (health,) = by_type["system_health"]
    v = health["value"]
    assert health["key"] == b"chatbot"
    assert v["timestamp"] == _at(3)
    assert (v["service"], v["status"]) == ("chatbot", "degraded")
    assert (v["error_rate"], v["availability"], v["cpu_percent"]) == (0.02, 0.995, 73.5)
    assert (v["memory_mb"], v["memory_percent"], v["network_mbps"], v["active_requests"]) == (
        2048.0,
        61.0,
        12.5,
        17,
    )

    (experiment,) = by_type["experiment_result"]
    v = experiment["value"]
    assert experiment["key"] == b"exp-7"
    assert v["timestamp"] == _at(4)
    assert (v["experiment_id"], v["experiment_type"], v["variant_id"]) == ("exp-7", "ab_test", "B")
    assert (v["reward"], v["cost"], v["quality"], v["latency_ms"], v["user_satisfaction"]) == (
        1.0,
        0.002,
        0.8,
        640.0,
        4.5,
    )

    # -- the GenAI span and its span events ---------------------------------------------------
    genai = _only(by_type, "performance_metrics", "genai_span")
    v = genai["value"]
    trace_id, span_id = v["trace_id"], v["span_id"]
    assert len(trace_id) == 32 and len(span_id) == 16
    assert genai["key"] == b"resp-9"
    assert (v["model"], v["provider"], v["operation"]) == ("gpt-4o-mini", "openai", "chat")
    assert v["latency_ms"] == pytest.approx(250.0)
    assert (v["success"], v["error_type"]) == (False, "timeout")
    assert (v["input_tokens"], v["output_tokens"], v["session_id"]) == (30, 5, "sess-9")
    assert v["timestamp"] == _at(250 + 10)

    span_feedback = [
        r["value"] for r in by_type["user_feedback"] if r["value"]["carrier"] == "span_event"
    ]
    thumbs_down = next(f for f in span_feedback if f["thumbs"] == "down")
    assert (thumbs_down["comment"], thumbs_down["session_id"]) == ("too slow", "sess-9")
    assert (thumbs_down["trace_id"], thumbs_down["span_id"]) == (trace_id, span_id)
    assert thumbs_down["timestamp"] == _at(10.5)
    evaluated = next(f for f in span_feedback if f["thumbs"] == "up")
    assert (evaluated["rating"], evaluated["comment"], evaluated["session_id"]) == (
        5.0,
        "perfect",
        "sess-9",
    )

    relevance = _only(by_type, "model_response", "span_event")["value"]
    assert (relevance["relevance"], relevance["evaluation_name"]) == (0.66, "relevance")
    assert relevance["explanation"] == "partly on topic"
    assert (relevance["model"], relevance["request_id"]) == ("gpt-4o-mini", "resp-9")
    assert (relevance["trace_id"], relevance["span_id"]) == (trace_id, span_id)

    stats = app.pipeline.stats
    assert (stats.accepted, stats.rejected) == (9, 0)


def _only(
    by_type: dict[str, list[dict[str, Any]]], event_type: str, carrier: str
) -> dict[str, Any]:
    (found,) = [r for r in by_type[event_type] if r["value"]["carrier"] == carrier]
    return found


def value_type(record: dict[str, Any]) -> str:
    return str(record["headers"]["event_type"].decode())


NEEDS_ONE = "user_feedback needs at least one of feedback.rating, feedback.thumbs, feedback.comment"


def test_mistyped_values_and_feedback_without_rating_thumbs_or_comment_are_rejected(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    endpoint = f"127.0.0.1:{app.port}"
    log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    log_stub = record_responses(log_exporter)
    span_stub = record_responses(span_exporter)
    logs = LoggerProvider(resource=RESOURCE)
    logs.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    traces = TracerProvider(resource=RESOURCE)
    traces.add_span_processor(SimpleSpanProcessor(span_exporter))
    try:
        logger = logs.get_logger("feedback-widget")
        bad: dict[str, dict[str, Any]] = {
            "bad-1": {},  # a session and nothing said
            "bad-2": {"feedback.rating": True},
            "bad-3": {"feedback.rating": "5"},
            "bad-4": {"feedback.rating": 4, "feedback.tags": ["ok", 7]},
        }
        for session, attributes in bad.items():
            logger.emit(
                event_name="feedback.user_feedback",
                timestamp=T0,
                attributes={"session.id": session, **attributes},
            )
        logger.emit(
            event_name="feedback.performance_metrics",
            timestamp=T0,
            attributes={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 12.0},
        )
        # The widenings and a string body as the comment: accepted.
        logger.emit(
            event_name="feedback.user_feedback",
            timestamp=T0,
            attributes={"session.id": 42, "feedback.rating": 5},
        )
        logger.emit(
            event_name="feedback.user_feedback",
            timestamp=T0,
            body="Nice",
            attributes={"session.id": "good-body"},
        )
        span = traces.get_tracer("llm-client").start_span("POST /chat", start_time=T0)
        span.add_event("feedback.user_feedback", {"session.id": "bad-span"}, timestamp=T0)
        span.end(end_time=T0 + 1_000_000)
        assert logs.force_flush() and traces.force_flush()
    finally:
        logs.shutdown()
        traces.shutdown()

    assert sum(r.partial_success.rejected_log_records for r in log_stub.responses) == 5
    messages = "\n".join(r.partial_success.error_message for r in log_stub.responses)
    for reason in (
        NEEDS_ONE,
        "feedback.rating: expected a number (double or int), got a bool (True)",
        "feedback.rating: expected a number (double or int), got a string ('5')",
        "feedback.tags[1]: expected a string, got an int (7)",
        "gen_ai.usage.input_tokens: expected an int, got a double (12.0)",
    ):
        assert reason in messages
    (span_response,) = span_stub.responses
    assert span_response.partial_success.rejected_spans == 1
    assert NEEDS_ONE in span_response.partial_success.error_message

    # Only the two good records reach the event topics (the reader drains for strays too).
    delivered = kafka_reader(2)
    assert sorted((r["value"]["session_id"], r["value"]["rating"]) for r in delivered) == [
        ("42", 5.0),
        ("good-body", None),
    ]
    assert app.pipeline.stats.accepted == 2 and app.pipeline.stats.rejected == 6
