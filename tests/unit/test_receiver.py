"""The OTLP/gRPC receiver, run in-process on a free port with the in-memory registry and sink,
called through a real gRPC channel with the generated OTLP stubs."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from otlp_builders import (
    MINIMAL,
    event_records,
    genai_span,
    log_record,
    logs_request,
    traces_request,
)

from otlp_feedback import errors
from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.errors import (
    BackpressureError,
    DeliveryTimeout,
    OtlpFeedbackError,
)
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver import GrpcReceiver
from otlp_feedback.receiver.service import LOGS_SERVICE, TRACE_SERVICE
from otlp_feedback.receiver.status import (
    RETRY_INFO_KEY,
    STATUS_DETAILS_KEY,
    rpc_status_for,
    status_for,
)
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

TIMEOUT = 10.0  # per RPC; a healthy in-process call takes milliseconds


def app_settings(**receiver: Any) -> Settings:
    # The fixtures are dated 2025-01-01; widen the age limit so they never expire.
    return load_config(
        receiver={"endpoint": "127.0.0.1:0", **receiver}, validation={"max_age_days": 36500}
    )


@pytest.fixture
def app(sink: InMemorySink) -> Iterator[FeedbackApp]:
    with FeedbackApp(app_settings(), InMemoryRegistry(), sink) as running:
        yield running


@pytest.fixture
def channel(app: FeedbackApp) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as open_channel:
        yield open_channel


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


def python_sdk_retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    """RetryInfo where the OTel Python SDK reads it: the bare ``google.rpc.retryinfo-bin``."""
    raw = dict(error.trailing_metadata() or ()).get(RETRY_INFO_KEY)
    if raw is None:
        return None
    return error_details_pb2.RetryInfo.FromString(raw)


def valid_request(count: int = 1) -> ExportLogsServiceRequest:
    return logs_request(
        *(log_record("feedback.user_feedback", MINIMAL["user_feedback"]) for _ in range(count))
    )


def fresh_records() -> ExportLogsServiceRequest:
    """Records without a time, so they carry the receive time (the real clock is in use)."""
    return logs_request(
        log_record("feedback.user_feedback", MINIMAL["user_feedback"], time_ns=0),
        log_record("feedback.system_health", MINIMAL["system_health"], time_ns=0),
    )


# --- Export ---------------------------------------------------------------------------------


def test_rejected_record_is_counted_in_partial_success(
    channel: grpc.Channel, sink: InMemorySink, logs_fixture: ExportLogsServiceRequest
) -> None:
    response = LogsServiceStub(channel).Export(logs_fixture, timeout=TIMEOUT)
    assert response.partial_success.rejected_log_records == 2
    message = response.partial_success.error_message
    assert message.startswith("2 feedback record(s) rejected: ")
    assert "log_records[11] (user_feedback): feedback.rating" in message
    assert "log_records[12] (user_feedback): session.id is required" in message
    assert len(event_records(sink)) == 10


def test_fully_accepted_export_has_no_partial_success(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    response = LogsServiceStub(channel).Export(fresh_records(), timeout=TIMEOUT)
    assert response == ExportLogsServiceResponse()
    assert [record.event_type for record in sink.records] == ["user_feedback", "system_health"]


def test_rejected_span_event_is_counted_in_partial_success(
    channel: grpc.Channel, sink: InMemorySink, traces_fixture: ExportTraceServiceRequest
) -> None:
    response = TraceServiceStub(channel).Export(traces_fixture, timeout=TIMEOUT)
    assert response.partial_success.rejected_spans == 1
    assert "spans[5].events[0] (experiment_result): feedback.experiment.type" in (
        response.partial_success.error_message
    )
    assert len(event_records(sink)) == 9


def test_partial_success_names_at_most_the_configured_number_of_problems(
    sink: InMemorySink,
) -> None:
    settings = load_config(
        receiver={"endpoint": "127.0.0.1:0"}, validation={"max_rejection_messages": 1}
    )
    bad = log_record("feedback.user_feedback", {"feedback.rating": 1})
    with (
        FeedbackApp(settings, InMemoryRegistry(), sink) as running,
        grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        response = LogsServiceStub(channel).Export(logs_request(bad, bad, bad), timeout=TIMEOUT)
    assert response.partial_success.rejected_log_records == 3
    assert response.partial_success.error_message.count("session.id is required") == 1
    assert response.partial_success.error_message.endswith("; and 2 more")


def test_gzip_compressed_request_is_accepted(channel: grpc.Channel, sink: InMemorySink) -> None:
    response = LogsServiceStub(channel).Export(
        fresh_records(), timeout=TIMEOUT, compression=grpc.Compression.Gzip
    )
    assert not response.HasField("partial_success")
    assert len(sink.records) == 2


@pytest.mark.parametrize("service", [LOGS_SERVICE, TRACE_SERVICE])
def test_undecodable_request_is_invalid_argument(
    channel: grpc.Channel, sink: InMemorySink, service: str
) -> None:
    export = channel.unary_unary(
        f"/{service}/Export",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    with pytest.raises(grpc.RpcError) as caught:
        export(b"\xff\xff\xff\xff not a protobuf", timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode Export" in caught.value.details()
    assert retry_info(caught.value) is None
    assert python_sdk_retry_info(caught.value) is None
    assert sink.records == []


def test_request_over_the_size_limit_is_resource_exhausted(sink: InMemorySink) -> None:
    settings = app_settings(max_recv_msg_size_mib=0.01)  # about 10 KiB
    big = log_record("feedback.user_feedback", {**MINIMAL["user_feedback"], "pad": "x" * 20_000})
    with (
        FeedbackApp(settings, InMemoryRegistry(), sink) as running,
        grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = LogsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(logs_request(big), timeout=TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_info(caught.value) is None  # resending the same request cannot succeed
        assert python_sdk_retry_info(caught.value) is None
        stub.Export(fresh_records(), timeout=TIMEOUT)  # a small one still goes through
    assert len(sink.records) == 2


def test_sink_timeout_is_unavailable_with_retry_info(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    sink.fail_with = DeliveryTimeout("Kafka did not confirm 1 record", retry_after=2.5)
    with pytest.raises(grpc.RpcError) as caught:
        LogsServiceStub(channel).Export(valid_request(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "Kafka did not confirm 1 record"
    info = retry_info(caught.value)
    assert info is not None
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (2, 500_000_000)
    assert python_sdk_retry_info(caught.value) == info


def test_retryable_error_without_delay_gets_the_default_retry_info(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    sink.fail_with = DeliveryTimeout("slow")
    with pytest.raises(grpc.RpcError) as caught:
        LogsServiceStub(channel).Export(valid_request(), timeout=TIMEOUT)
    info = retry_info(caught.value)
    assert info is not None
    assert info.retry_delay.ToTimedelta().total_seconds() == 1.0


def test_backpressure_is_resource_exhausted_with_retry_info(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    sink.fail_with = BackpressureError("in-flight budget full", retry_after=0.25)
    with pytest.raises(grpc.RpcError) as caught:
        TraceServiceStub(channel).Export(traces_request(genai_span()), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = retry_info(caught.value)
    assert info is not None
    assert info.retry_delay.nanos == 250_000_000
    assert python_sdk_retry_info(caught.value) == info


def test_unexpected_error_is_internal_and_the_receiver_keeps_serving(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    stub = LogsServiceStub(channel)
    sink.fail_with = RuntimeError("boom")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(valid_request(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error: RuntimeError (the receiver logged it)"
    sink.fail_with = None
    stub.Export(fresh_records(), timeout=TIMEOUT)
    assert len(sink.records) == 2


# --- health and lifecycle ---------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", LOGS_SERVICE, TRACE_SERVICE])
def test_health_check_is_serving_after_start(channel: grpc.Channel, service: str) -> None:
    request = health_pb2.HealthCheckRequest(service=service)
    response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_goes_not_serving_on_shutdown(app: FeedbackApp, channel: grpc.Channel) -> None:
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT
    )
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopping = threading.Thread(target=app.shutdown, kwargs={"grace": 5.0})
    stopping.start()
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        watch.cancel()  # lets the graceful stop finish without waiting out the grace period
        stopping.join(TIMEOUT)
    assert not stopping.is_alive()


def test_after_shutdown_the_port_is_closed(app: FeedbackApp, channel: grpc.Channel) -> None:
    stub = LogsServiceStub(channel)
    stub.Export(fresh_records(), timeout=TIMEOUT)
    app.shutdown(grace=1.0)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(fresh_records(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_shutdown_stops_the_sink(app: FeedbackApp, sink: InMemorySink) -> None:
    assert sink.started
    app.shutdown(grace=1.0)
    assert not sink.started


def test_port_is_unknown_before_start() -> None:
    idle = FeedbackApp(app_settings(), InMemoryRegistry(), InMemorySink())
    with pytest.raises(RuntimeError, match="not started"):
        _ = idle.port


class Component(Protocol):
    def start(self) -> None: ...
    def shutdown(self, timeout: float, /) -> None: ...


def _sink() -> Component:
    return InMemorySink()


def _pipeline() -> Component:
    return Pipeline(app_settings(), InMemoryRegistry(), InMemorySink())


def _receiver() -> Component:
    pipeline = Pipeline(app_settings(), InMemoryRegistry(), InMemorySink())
    pipeline.start()
    return GrpcReceiver(app_settings().receiver, pipeline)


def _app() -> Component:
    return FeedbackApp(app_settings(), InMemoryRegistry(), InMemorySink())


COMPONENTS = [
    pytest.param(_sink, id="in-memory-sink"),
    pytest.param(_pipeline, id="pipeline"),
    pytest.param(_receiver, id="grpc-receiver"),
    pytest.param(_app, id="feedback-app"),
]


@pytest.mark.parametrize("make", COMPONENTS)
def test_start_then_shutdown_twice_is_safe(make: Callable[[], Component]) -> None:
    for _ in range(2):  # a second instance starts cleanly after the first one stopped
        component = make()
        component.start()
        component.shutdown(1.0)
        component.shutdown(1.0)  # idempotent


@pytest.mark.parametrize("make", COMPONENTS)
def test_shutdown_before_start_is_safe(make: Callable[[], Component]) -> None:
    component = make()
    component.shutdown(1.0)
    component.shutdown(1.0)


def test_unbindable_endpoint_fails_start_and_releases_the_pipeline(sink: InMemorySink) -> None:
    settings = load_config(receiver={"endpoint": "256.0.0.1:0"})
    app = FeedbackApp(settings, InMemoryRegistry(), sink)
    with pytest.raises(OSError, match=r"256\.0\.0\.1"):
        app.start()
    assert not sink.started


# --- the one error -> status mapping ----------------------------------------------------------

EXPECTED_STATUS: dict[type[OtlpFeedbackError], tuple[grpc.StatusCode, bool]] = {
    # error class: (gRPC code, carries RetryInfo)
    errors.OtlpFeedbackError: (grpc.StatusCode.INTERNAL, False),
    errors.ConfigError: (grpc.StatusCode.INTERNAL, False),
    errors.RetryableError: (grpc.StatusCode.UNAVAILABLE, True),
    errors.DeliveryTimeout: (grpc.StatusCode.UNAVAILABLE, True),
    errors.BackpressureError: (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    errors.SpoolFull: (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    errors.RateLimited: (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    errors.SinkUnavailable: (grpc.StatusCode.UNAVAILABLE, True),
    errors.RegistryUnavailable: (grpc.StatusCode.UNAVAILABLE, True),
    errors.PermanentError: (grpc.StatusCode.INTERNAL, False),
    errors.InvalidRequest: (grpc.StatusCode.INVALID_ARGUMENT, False),
    # OTLP/HTTP's 415; its gRPC column (the HTTP columns: test_receiver_http.py).
    errors.UnsupportedMediaType: (grpc.StatusCode.INVALID_ARGUMENT, False),
    errors.RequestTooLarge: (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
    errors.SchemaError: (grpc.StatusCode.INTERNAL, False),
    errors.EncodingError: (grpc.StatusCode.INTERNAL, False),
    errors.DeliveryFailed: (grpc.StatusCode.INTERNAL, False),
    errors.InternalError: (grpc.StatusCode.INTERNAL, False),
    errors.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, False),
    errors.PermissionDenied: (grpc.StatusCode.PERMISSION_DENIED, False),
    # Read-side errors (consumer); the receiver never raises them, but the mapping is total.
    errors.UnreadableRecord: (grpc.StatusCode.INTERNAL, False),
    errors.CorruptFrame: (grpc.StatusCode.INTERNAL, False),
    errors.UnknownSchemaId: (grpc.StatusCode.INTERNAL, False),
}


def all_error_classes() -> set[type[OtlpFeedbackError]]:
    found: set[type[OtlpFeedbackError]] = set()
    pending = [OtlpFeedbackError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return {cls for cls in found if cls.__module__ == errors.__name__}


def test_every_error_class_in_errors_py_has_an_expected_status() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, OtlpFeedbackError) and cls.__module__ == errors.__name__
    }
    assert all_error_classes() == defined == set(EXPECTED_STATUS)


@pytest.mark.parametrize(
    ("error_class", "expected"),
    [pytest.param(cls, exp, id=cls.__name__) for cls, exp in EXPECTED_STATUS.items()],
)
def test_error_maps_to_its_grpc_status(
    error_class: type[OtlpFeedbackError], expected: tuple[grpc.StatusCode, bool]
) -> None:
    code, retry_after = status_for(error_class("x"))
    assert (code, retry_after is not None) == expected


def test_retry_after_of_the_error_is_the_retry_info_delay() -> None:
    assert status_for(errors.SinkUnavailable("x", retry_after=4.0)) == (
        grpc.StatusCode.UNAVAILABLE,
        4.0,
    )
    assert status_for(errors.SinkUnavailable("x")) == (grpc.StatusCode.UNAVAILABLE, 1.0)


@pytest.mark.parametrize(
    ("error_class", "expected"),
    [pytest.param(cls, exp, id=cls.__name__) for cls, exp in EXPECTED_STATUS.items()],
)
def test_retryable_status_carries_retry_info_in_both_trailers_and_permanent_in_neither(
    error_class: type[OtlpFeedbackError], expected: tuple[grpc.StatusCode, bool]
) -> None:
    code, retryable = expected
    if issubclass(error_class, errors.RetryableError):
        exc: OtlpFeedbackError = error_class("x", retry_after=2.5)
    else:
        exc = error_class("x")
    status = rpc_status_for(exc)
    trailers = dict(status.trailing_metadata)
    assert (status.code, status.details) == (code, "x")
    if not retryable:
        assert trailers == {}
        return
    assert set(trailers) == {STATUS_DETAILS_KEY, RETRY_INFO_KEY}
    # Where the OTel Python SDK looks: a bare RetryInfo.
    bare = error_details_pb2.RetryInfo.FromString(trailers[RETRY_INFO_KEY])
    assert bare.retry_delay.ToTimedelta().total_seconds() == 2.5
    # Where grpc-status readers (Go, .NET SDKs) look: the same RetryInfo inside google.rpc.Status.
    rich = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
    assert (rich.code, rich.message) == (code.value[0], "x")
    [detail] = rich.details
    packed = error_details_pb2.RetryInfo()
    assert detail.Unpack(packed)
    assert packed == bare
