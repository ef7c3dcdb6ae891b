"""Self-telemetry over OTLP, end to end with real parts: the stock OTel SDK sends feedback with a
``traceparent`` to the receiver; the receiver sends its own spans and metrics with the SDK's
OTLP exporters to Rotel (a real OTLP collector), whose Kafka exporter puts them on the test
broker, where this test reads them back as OTLP protobuf.

Proves: the request's spans (``export logs`` and its ingest/encode/deliver children) are in
the sender's trace, under the sender's span; their resource's ``service.instance.id`` is the
``receiver_id`` header of the feedback record they produced (lineage); the metrics pushed are
``/metrics``'s, with the counts of that request. Both OTLP transports, both ways."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rotel
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from harness import port_open, read_raw, sdk_log_records, wait_until
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.embedded.tansu import free_port

pytestmark = pytest.mark.integration

ROTEL = Path(rotel.__file__).parent / "rotel-agent"
TRACE_ID = uuid.uuid4().hex
PARENT_ID = uuid.uuid4().hex[:16]


@pytest.fixture
def collector(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Rotel on free ports, exporting what it receives to two fresh topics as protobuf."""
    topics = {"traces": f"{topic_prefix}.otlp_traces", "metrics": f"{topic_prefix}.otlp_metrics"}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(t, 1) for t in topics.values()]).values():
        future.result(30)  # Tansu creates no topic on first use
    grpc_port, http_port = free_port(), free_port()
    log = (tmp_path / "rotel.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ROTEL),
            "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--exporter", "kafka",
            "--kafka-exporter-brokers", kafka_bootstrap,
            "--kafka-exporter-traces-topic", topics["traces"],
            "--kafka-exporter-metrics-topic", topics["metrics"],
            "--kafka-exporter-format", "protobuf",
            "--batch-timeout", "50ms",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(grpc_port) and port_open(http_port), 30, "rotel's ports")
        yield {"grpc": grpc_port, "http": http_port, "topics": topics}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(params=["grpc", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def traced_app(
    make_settings: Callable[..., Settings], collector: dict[str, Any], transport: str
) -> Iterator[FeedbackApp]:
    protocol = "grpc" if transport == "grpc" else "http/protobuf"
    settings = make_settings(
        telemetry={
            "otlp": {
                "endpoint": f"http://127.0.0.1:{collector[transport]}",
                "protocol": protocol,
                "metrics_interval_s": 3600,  # sent when the test asks (send_metrics)
                "resource_attributes": {"deployment.environment.name": "test"},
            }
        }
    )
    with FeedbackApp(settings) as running:
        wait_until(lambda: running.pipeline.started, 30, "schemas bound")
        yield running


def _send_feedback(app: FeedbackApp, transport: str, session_id: str) -> None:
    """The stock SDK exporter, with the sender's trace context as a request header."""
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    exporter: Any
    if transport == "grpc":
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{app.port}", insecure=True, headers=headers)
    else:
        exporter = HttpLogExporter(
            endpoint=f"http://127.0.0.1:{app.http_port}/v1/logs", headers=headers
        )
    assert exporter.export(sdk_log_records(session_id)).name == "SUCCESS"
    exporter.shutdown()


def _read_until(
    bootstrap: str, topic: str, parse: Callable[[bytes], Any], done: Callable[[list[Any]], bool]
) -> list[Any]:
    """Every message of ``topic`` parsed, read until ``done`` holds (a bound of 60 s fails)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"selftel-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    seen: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while not done(seen):
            assert time.monotonic() < deadline, f"{topic}: not there after 60 s: {seen!r:.2000}"
            seen.extend(parse(m.value()) for m in consumer.consume(100, 0.5) if not m.error())
    finally:
        consumer.close()
    return seen


def _spans(batches: list[TracesData]) -> list[tuple[dict[str, Any], Span]]:
    out = []
    for batch in batches:
        for resource_spans in batch.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            out.extend(
                (resource, span) for scope in resource_spans.scope_spans for span in scope.spans
            )
    return out


def _parse_traces(raw: bytes) -> TracesData:
    return TracesData.FromString(raw)


def _parse_metrics(raw: bytes) -> MetricsData:
    return MetricsData.FromString(raw)


def test_request_spans_and_metrics_reach_a_collector_joined_to_the_senders_trace(
    traced_app: FeedbackApp,
    collector: dict[str, Any],
    transport: str,
    kafka_bootstrap: str,
) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    _send_feedback(traced_app, transport, session_id)
    (record,) = read_raw(
        traced_app.settings, traced_app.settings.kafka.topic_for("user_feedback"), 1
    )
    receiver_id = dict(record.headers())["receiver_id"].decode()

    def ours(batches: list[TracesData]) -> list[tuple[dict[str, Any], Span]]:
        return [(r, s) for r, s in _spans(batches) if s.trace_id.hex() == TRACE_ID]

    batches = _read_until(
        kafka_bootstrap,
        collector["topics"]["traces"],
        _parse_traces,
        lambda seen: len(ours(seen)) >= 4,
    )
    found = {span.name: (resource, span) for resource, span in ours(batches)}
    assert set(found) == {"export logs", "ingest", "encode", "deliver"}
    resource, root = found["export logs"]
    assert root.parent_span_id.hex() == PARENT_ID  # under the sender's span
    assert root.kind == Span.SPAN_KIND_SERVER
    assert resource["service.name"] == "otlp-feedback"
    assert resource["service.instance.id"] == receiver_id  # the record's lineage header
    assert resource["deployment.environment.name"] == "test"
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["otlp_feedback.transport"].string_value == transport
    assert attributes["otlp_feedback.accepted"].int_value == 1
    for stage in ("ingest", "encode", "deliver"):
        assert found[stage][1].parent_span_id == root.span_id

    # The metrics: /metrics's families, with this request counted.
    assert traced_app.self_telemetry is not None and traced_app.self_telemetry.send_metrics()

    def accepted(batches: list[MetricsData]) -> dict[str, int]:
        values: dict[str, int] = {}
        for batch in batches:
            for rm in batch.resource_metrics:
                for scope in rm.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == "otlp_feedback_events_accepted":
                            for point in metric.sum.data_points:
                                key = {a.key: a.value.string_value for a in point.attributes}
                                values[key["event_type"]] = point.as_int
        return values

    metrics = _read_until(
        kafka_bootstrap,
        collector["topics"]["metrics"],
        _parse_metrics,
        lambda seen: accepted(seen).get("user_feedback", 0) >= 1,
    )
    names = {
        m.name
        for b in metrics
        for rm in b.resource_metrics
        for s in rm.scope_metrics
        for m in s.metrics
    }
    assert {"otlp_feedback_requests", "otlp_feedback_export_duration_seconds"} <= names
    assert traced_app.telemetry.values("otlp_feedback_telemetry_exports").get(("metrics", "ok"))
