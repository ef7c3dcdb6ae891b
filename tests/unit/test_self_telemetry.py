"""Self-telemetry over OTLP: the config's loop guard, the /metrics -> OTLP translation, the
request spans (``RequestTracer``) and ``SelfTelemetry``'s exports, with the SDK's in-memory span
exporter and a recording metric exporter (the real collector is tests/integration)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
from otlp_builders import MINIMAL, RECEIVED_NS, log_record, logs_request

from otlp_feedback.config import Settings, load_config
from otlp_feedback.encoding.outbound import RECEIVER_ID
from otlp_feedback.errors import ConfigError, InvalidRequest
from otlp_feedback.observability.metrics import TELEMETRY_EXPORTS, Telemetry
from otlp_feedback.observability.otlp_metrics import metrics_data
from otlp_feedback.observability.selftelemetry import SelfTelemetry, resource_of
from otlp_feedback.observability.tracing import RequestOrigin, RequestTracer
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-01"
NOT_SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"


# -- config ----------------------------------------------------------------------------------


def _otlp(**otlp: Any) -> Settings:
    return load_config(telemetry={"otlp": otlp})


def test_off_by_default() -> None:
    assert not load_config().telemetry.otlp.enabled


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [
        ("http://localhost:4317", "grpc"),
        ("http://127.0.0.1:4317", "grpc"),
        ("http://[::1]:4317", "grpc"),
        ("http://localhost", "grpc"),  # gRPC's default port is 4317
        ("http://localhost:4318", "http/protobuf"),
        ("https://LOCALHOST", "http/protobuf"),  # OTLP/HTTP's default port is 4318
    ],
)
def test_the_receivers_own_port_is_refused(endpoint: str, protocol: str) -> None:
    with pytest.raises(ConfigError, match=r"own port .* for ever"):
        _otlp(endpoint=endpoint, protocol=protocol)


def test_own_port_moved_elsewhere_moves_the_refusal() -> None:
    load_config(telemetry={"otlp": {"endpoint": "http://localhost:4317"}}, receiver={
        "endpoint": "127.0.0.1:5317"})  # fmt: skip
    with pytest.raises(ConfigError, match="own port"):
        load_config(
            telemetry={"otlp": {"endpoint": "http://127.0.0.1:5317"}},
            receiver={"endpoint": "127.0.0.1:5317"},
        )


@pytest.mark.parametrize(
    "endpoint",
    ["http://collector:4317", "http://localhost:14317", "https://otel.example.com", "http://x:0"],
)
def test_a_collector_is_accepted(endpoint: str) -> None:
    assert _otlp(endpoint=endpoint).telemetry.otlp.enabled


@pytest.mark.parametrize("endpoint", ["collector:4317", "ftp://c:1", "http://c:99999", "http://"])
def test_a_malformed_endpoint_is_named(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"telemetry\.otlp\.endpoint: .*is not http\(s\)://"):
        _otlp(endpoint=endpoint)


def test_both_signals_off_is_off() -> None:
    settings = _otlp(endpoint="http://localhost:4317", traces=False, metrics=False)
    assert not settings.telemetry.otlp.enabled  # and so no loop either


# -- /metrics as OTLP ------------------------------------------------------------------------


def _points(data: MetricsData) -> dict[str, Any]:
    (resource_metrics,) = data.resource_metrics
    (scope,) = resource_metrics.scope_metrics
    return {m.name: m for m in scope.metrics}


def test_metrics_keep_their_names_kinds_and_values() -> None:
    telemetry = Telemetry()
    telemetry.count_published(["feedback.user_feedback"] * 3)
    telemetry.count_telemetry_export("spans", ok=False)
    telemetry.watch("otlp_feedback_inflight_events", lambda: 7.0)
    for seconds in (0.004, 0.004, 0.2):
        telemetry.export_seconds.labels("logs", "grpc").observe(seconds)
    data = metrics_data(telemetry.registry.collect(), resource_of(_config()), 100, 200)
    metrics = _points(data)

    requests = metrics["otlp_feedback_requests"]  # a counter without _total
    assert requests.data.is_monotonic
    assert requests.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert [(p.value, p.start_time_unix_nano, p.time_unix_nano) for p in requests.data.data_points]
    assert "otlp_feedback_requests_total" not in metrics
    assert "otlp_feedback_records_published" not in metrics  # no Kafka sink attached

    inflight = metrics["otlp_feedback_inflight_events"]
    assert [p.value for p in inflight.data.data_points] == [7]

    latency = metrics["otlp_feedback_export_duration_seconds"]
    assert latency.unit == "s"
    (point,) = latency.data.data_points
    assert dict(point.attributes) == {"signal": "logs", "transport": "grpc"}
    assert (point.count, round(point.sum, 3)) == (3, 0.208)
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1
    assert sum(point.bucket_counts) == 3  # per bucket, no longer cumulative
    assert point.bucket_counts[point.explicit_bounds.index(0.005)] == 2
    assert point.bucket_counts[point.explicit_bounds.index(0.25)] == 1


def test_a_telemetry_family_appears_once_attached() -> None:
    telemetry = Telemetry()
    telemetry.attach("telemetry")
    telemetry.count_telemetry_export("metrics", ok=True)
    data = metrics_data(telemetry.registry.collect(), resource_of(_config()), 1, 2)
    exports = _points(data)["otlp_feedback_telemetry_exports"]
    assert [(dict(p.attributes), p.value) for p in exports.data.data_points] == [
        ({"signal": "metrics", "outcome": "ok"}, 1)
    ]
    assert b"otlp_feedback_telemetry_exports_total" in telemetry.exposition()


def test_the_translation_encodes_as_otlp_protobuf() -> None:
    telemetry = Telemetry()
    telemetry.publish_seconds.observe(0.01)
    data = metrics_data(telemetry.registry.collect(), resource_of(_config()), 1, 2)
    request = encode_metrics(data)
    names = {m.name for m in request.resource_metrics[0].scope_metrics[0].metrics}
    assert "otlp_feedback_kafka_publish_duration_seconds" in names
    histogram = next(
        m.histogram
        for m in request.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "otlp_feedback_kafka_publish_duration_seconds"
    )
    assert not histogram.data_points[0].HasField("min")  # Prometheus keeps none: none sent


def test_the_resource_names_this_receiver() -> None:
    config = _config(resource_attributes={"deployment.environment.name": "prod"})
    attributes = resource_of(config).attributes
    assert attributes["service.name"] == "otlp-feedback"
    assert attributes["service.instance.id"] == RECEIVER_ID  # the records' receiver_id header
    assert attributes["deployment.environment.name"] == "prod"


# -- request spans ---------------------------------------------------------------------------


def _config(**overrides: Any) -> Any:
    return _otlp(endpoint="http://collector:4317", **overrides).telemetry.otlp


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _tracer(spans: InMemorySpanExporter, ratio: float = 1.0) -> RequestTracer:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return RequestTracer(provider.get_tracer("test"))


@pytest.fixture
def traced(spans: InMemorySpanExporter) -> Iterator[Pipeline]:
    settings = load_config(receiver={"endpoint": "127.0.0.1:0"})
    running = Pipeline(
        settings,
        InMemoryRegistry(),
        InMemorySink(),
        clock_ns=lambda: RECEIVED_NS,
        tracer=_tracer(spans),
    )
    running.start()
    yield running
    running.shutdown(1.0)


def _mixed() -> bytes:
    return logs_request(
        log_record("feedback.user_feedback", {"event.id": "ok", **MINIMAL["user_feedback"]}),
        log_record("feedback.user_feedback", {"event.id": "bad", "feedback.rating": 3}),
        log_record("", {"http.method": "GET"}),
    ).SerializeToString()


def _by_name(finished: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def test_a_request_is_a_server_span_with_a_child_per_stage_in_the_senders_trace(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    origin = RequestOrigin.of("grpc", [("traceparent", SAMPLED), ("x-other", "1")])
    outcome = traced.export("logs", _mixed(), "client-a", origin=origin)
    assert (outcome.accepted, outcome.rejected) == (1, 1)

    found = _by_name(spans.get_finished_spans())
    assert set(found) == {"export logs", "ingest", "encode", "deliver"}
    root = found["export logs"]
    assert root.kind is SpanKind.SERVER
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert root.parent is not None and format(root.parent.span_id, "016x") == PARENT_ID
    assert root.attributes == {
        "otlp_feedback.transport": "grpc",
        "otlp_feedback.client_id": "client-a",
        "otlp_feedback.records": 2,
        "otlp_feedback.accepted": 1,
        "otlp_feedback.rejected": 1,
    }
    stages = [found[name] for name in ("ingest", "encode", "deliver")]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in stages)
    # One after the other, inside the request.
    times = [(s.start_time, s.end_time) for s in stages]
    assert root.start_time == times[0][0]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(times))
    assert times[-1][1] is not None and root.end_time is not None
    assert times[-1][1] <= root.end_time
    assert found["ingest"].attributes is not None
    assert found["ingest"].attributes["otlp_feedback.ignored"] == 1
    assert found["encode"].attributes is not None
    assert found["encode"].attributes["otlp_feedback.rejected"] == 1
    assert found["deliver"].attributes == {
        "otlp_feedback.delivered": 1,
        "otlp_feedback.dead_lettered": 1,  # the invalid record
    }


def test_without_traceparent_a_request_with_feedback_starts_a_trace(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    traced.export("logs", _mixed(), origin=RequestOrigin("http"))
    root = _by_name(spans.get_finished_spans())["export logs"]
    assert root.parent is None
    assert root.attributes is not None and root.attributes["otlp_feedback.transport"] == "http"


def test_a_request_with_no_feedback_and_no_traceparent_makes_no_span(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    # Our own spans coming back through a collector: tracing them would make more, for ever.
    only_logs = logs_request(log_record("", {"http.method": "GET"})).SerializeToString()
    traced.export("logs", only_logs, origin=RequestOrigin("grpc"))
    assert spans.get_finished_spans() == ()
    traced.export("logs", only_logs, origin=RequestOrigin("grpc", SAMPLED))
    assert [s.name for s in spans.get_finished_spans()][-1] == "export logs"


def test_an_unsampled_parent_is_followed(traced: Pipeline, spans: InMemorySpanExporter) -> None:
    traced.export("logs", _mixed(), origin=RequestOrigin("grpc", NOT_SAMPLED))
    assert spans.get_finished_spans() == ()


def test_a_malformed_traceparent_starts_a_new_trace(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    traced.export("logs", _mixed(), origin=RequestOrigin("grpc", "00-not-a-trace-01"))
    root = _by_name(spans.get_finished_spans())["export logs"]
    assert root.parent is None


def test_the_stage_that_failed_is_the_last_span_and_marked(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(InvalidRequest):
        traced.export("logs", b"\xff\xff not protobuf", origin=RequestOrigin("grpc"))
    found = _by_name(spans.get_finished_spans())
    assert set(found) == {"export logs", "ingest"}
    for span in found.values():
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is None  # a message may quote what was sent
        assert span.attributes is not None
        assert span.attributes["error.type"] == "InvalidRequest"


def test_an_error_that_quotes_the_request_leaves_no_trace_of_it_in_the_spans(
    spans: InMemorySpanExporter,
) -> None:
    tracer = _tracer(spans)

    def failing(clock: Any) -> Any:
        raise InvalidRequest("timeUnixNano: couldn't parse 'jane.doe@example.com'")

    with pytest.raises(InvalidRequest):
        tracer.run("export logs", RequestOrigin("http", SAMPLED), failing)
    (span,) = spans.get_finished_spans()[-1:]
    assert "example.com" not in repr(span.to_json())


def test_an_unexpected_errors_message_stays_out_of_the_span(spans: InMemorySpanExporter) -> None:
    # A bug's exception may quote a record's value: the span names its class, not its text.
    def bug(clock: Any) -> Any:
        raise ValueError("ann@example.com")

    with pytest.raises(ValueError):
        _tracer(spans).run("export logs", RequestOrigin("grpc", SAMPLED), bug)
    found = _by_name(spans.get_finished_spans())
    assert set(found) == {"export logs", "ingest"}
    for span in found.values():
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is None
        assert span.attributes is not None and span.attributes["error.type"] == "ValueError"


def test_events_api_requests_are_traced_and_replays_are_not(
    traced: Pipeline, spans: InMemorySpanExporter
) -> None:
    from otlp_feedback.mapping.events_api import map_event

    event = map_event({"event_type": "user_feedback", **_api_event()}, "events[0]")
    traced.export_events([event], origin=RequestOrigin("http", SAMPLED))  # type: ignore[list-item]
    assert "export events" in _by_name(spans.get_finished_spans())
    spans.clear()
    event = map_event({"event_type": "user_feedback", **_api_event()}, "events[0]")
    traced.export_events([event])  # type: ignore[list-item]  # dead-letter replay: no origin
    assert spans.get_finished_spans() == ()


def _api_event() -> dict[str, Any]:
    return {"session_id": "s-1", "rating": 4}


def test_sampling_ratio_zero_traces_no_root_request(spans: InMemorySpanExporter) -> None:
    tracer = _tracer(spans, ratio=0.0)
    tracer.run("export logs", RequestOrigin("grpc"), lambda clock: _Outcome())
    tracer.run("export logs", RequestOrigin("grpc", SAMPLED), lambda clock: _Outcome())
    assert [s.name for s in spans.get_finished_spans()] == ["export logs"]  # the parent's say


class _Outcome:
    accepted = rejected = dead_lettered = 0
    redacted_by_type: dict[str, int] = {}  # noqa: RUF012


def test_an_untraced_pipeline_needs_no_origin(pipeline: Pipeline) -> None:
    assert not pipeline.tracing
    assert pipeline.export("logs", _mixed(), origin=RequestOrigin("grpc", SAMPLED)).accepted == 1


# -- SelfTelemetry: the exports --------------------------------------------------------------


class RecordingMetrics(MetricExporter):
    def __init__(self, result: MetricExportResult = MetricExportResult.SUCCESS) -> None:
        super().__init__()
        self.sent: list[MetricsData] = []
        self.result = result
        self.shut = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any) -> Any:
        self.sent.append(metrics_data)
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shut = True


def test_self_telemetry_sends_spans_and_metrics_and_counts_each_export(
    spans: InMemorySpanExporter,
) -> None:
    telemetry = Telemetry()
    metrics = RecordingMetrics()
    config = _config(metrics_interval_s=3600)
    own = SelfTelemetry(config, telemetry, span_exporter=spans, metric_exporter=metrics)
    own.start()
    assert own.tracer is not None
    own.tracer.run("export logs", RequestOrigin("grpc", SAMPLED), lambda clock: _Outcome())
    assert own.send_metrics()
    own.shutdown(2.0)  # flushes the queued span, sends the metrics once more
    own.shutdown(2.0)  # idempotent
    assert [s.name for s in spans.get_finished_spans()] == ["export logs"]
    assert spans.get_finished_spans()[0].resource.attributes["service.name"] == "otlp-feedback"
    assert len(metrics.sent) == 2 and metrics.shut
    assert telemetry.values(TELEMETRY_EXPORTS) == {("metrics", "ok"): 2, ("spans", "ok"): 1}


def test_a_failed_metrics_export_is_counted_and_the_next_still_goes(
    spans: InMemorySpanExporter,
) -> None:
    telemetry = Telemetry()
    metrics = RecordingMetrics(MetricExportResult.FAILURE)
    own = SelfTelemetry(_config(traces=False), telemetry, metric_exporter=metrics)
    assert own.tracer is None
    assert not own.send_metrics()
    metrics.result = MetricExportResult.SUCCESS
    assert own.send_metrics()
    assert telemetry.values(TELEMETRY_EXPORTS) == {("metrics", "failed"): 1, ("metrics", "ok"): 1}


def test_an_app_without_telemetry_otlp_has_none() -> None:
    from otlp_feedback.app import FeedbackApp

    app = FeedbackApp(load_config(), InMemoryRegistry(), InMemorySink())
    assert app.self_telemetry is None and not app.pipeline.tracing
    on = load_config(telemetry={"otlp": {"endpoint": "http://collector:4317"}})
    traced = FeedbackApp(on, InMemoryRegistry(), InMemorySink())
    assert traced.self_telemetry is not None and traced.pipeline.tracing
    traced.shutdown(1.0)


class StuckSpans(InMemorySpanExporter):
    """A collector that never answers: export waits (as the SDK's retries do) until shutdown."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.shutdowns = 0

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        self.released.wait()
        return super().export(spans)

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.released.set()


def test_shutdown_does_not_wait_for_a_collector_that_never_answers() -> None:
    stuck, metrics = StuckSpans(), RecordingMetrics()
    own = SelfTelemetry(_config(), Telemetry(), span_exporter=stuck, metric_exporter=metrics)
    own.start()
    assert own.tracer is not None
    own.tracer.run("export logs", RequestOrigin("grpc", SAMPLED), lambda clock: _Outcome())
    own.shutdown(0.2)  # returns: the stuck export is ended by the exporter's shutdown
    assert stuck.released.is_set() and metrics.shut
    assert stuck.shutdowns == 1  # once, though the SDK's processor calls it too


@pytest.mark.parametrize(
    ("protocol", "signal", "module", "endpoint"),
    [
        ("grpc", "traces", "grpc.trace_exporter", "c:4317"),
        ("grpc", "metrics", "grpc.metric_exporter", "c:4317"),
        ("http/protobuf", "traces", "http.trace_exporter", "https://c:4317/base/v1/traces"),
        ("http/protobuf", "metrics", "http.metric_exporter", "https://c:4317/base/v1/metrics"),
    ],
)
def test_each_signal_and_protocol_gets_the_sdks_exporter_at_the_right_url(
    protocol: str, signal: str, module: str, endpoint: str
) -> None:
    from otlp_feedback.observability.selftelemetry import _exporter

    config = _otlp(endpoint="https://c:4317/base", protocol=protocol).telemetry.otlp
    exporter = _exporter(config, signal)
    assert type(exporter).__module__ == f"opentelemetry.exporter.otlp.proto.{module}"
    assert exporter._endpoint == endpoint
    exporter.shutdown()
