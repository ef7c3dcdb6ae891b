"""Start-up never waits on the registry or Kafka (issue 14 item 9): the ports open at once; with
the registry down requests are answered UNAVAILABLE/503 with a retry delay and ``/readyz`` says
why, gRPC health is NOT_SERVING, the schema binding is retried in the background until the
registry answers (then health turns SERVING, notified by ``Pipeline.when_ready``), and shutdown
interrupts that retry (and topic creation) at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_health.v1.health_pb2 import HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from otlp_builders import MINIMAL, log_record, logs_request

import otlp_feedback.pipeline.facade as facade
import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import load_config
from otlp_feedback.errors import SchemaError
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.service import LOGS_SERVICE, TRACE_SERVICE
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.kafka import KafkaSink
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.kafka import FakeKafka
from otlp_feedback.testing.receiver import await_health
from otlp_feedback.testing.registry import DownRegistry
from otlp_feedback.testing.waiting import wait_until

WAIT_S = 30.0  # a generous bound for what takes milliseconds; never a measure


def request() -> ExportLogsServiceRequest:
    return logs_request(log_record("feedback.user_feedback", MINIMAL["user_feedback"]))


@pytest.fixture
def registry() -> DownRegistry:
    return DownRegistry()


@pytest.fixture
def app(registry: DownRegistry, sink: InMemorySink) -> Iterator[FeedbackApp]:
    settings = load_config(
        receiver={"endpoint": "127.0.0.1:0", "http": {"endpoint": "127.0.0.1:0"}},
        observability={"endpoint": "127.0.0.1:0"},
        validation={"max_age_days": 36500},
    )
    app = FeedbackApp(settings, registry, sink)
    app.start()  # returns although the registry answers nothing
    try:
        yield app
    finally:
        app.shutdown(grace=2.0)


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


def test_registry_down_grpc_is_unavailable_with_retry_info_then_accepted_once_it_answers(
    app: FeedbackApp, registry: DownRegistry, sink: InMemorySink
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = LogsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(request(), timeout=WAIT_S)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "registry" in (caught.value.details() or "")
        info = retry_info(caught.value)
        assert info is not None and info.retry_delay.ToTimedelta().total_seconds() > 0
        assert sink.records == []

        registry.bring_up()
        wait_until(lambda: app.pipeline.started, "the background binding")
        stub.Export(request(), timeout=WAIT_S)
    assert len(sink.records) == 1


def test_registry_down_http_is_503_with_retry_after_and_readyz_says_why(
    app: FeedbackApp, registry: DownRegistry, sink: InMemorySink
) -> None:
    assert app.http is not None
    body = request().SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    with httpx.Client(timeout=WAIT_S) as client:
        refused = client.post(
            f"http://127.0.0.1:{app.http_port}/v1/logs", content=body, headers=headers
        )
        assert refused.status_code == 503
        assert float(refused.headers["retry-after"]) > 0
        ready = client.get(f"{app.http.url}/readyz")
        assert ready.status_code == 503
        assert any("registry unavailable" in p for p in ready.json()["problems"])

        registry.bring_up()
        wait_until(lambda: client.get(f"{app.http.url}/readyz").status_code == 200, "ready")
        accepted = client.post(
            f"http://127.0.0.1:{app.http_port}/v1/logs", content=body, headers=headers
        )
        assert accepted.status_code == 200
    assert len(sink.records) == 1


def test_registry_down_grpc_health_is_not_serving_until_the_schemas_are_bound(
    app: FeedbackApp, registry: DownRegistry
) -> None:
    assert registry.refused.wait(WAIT_S)
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        check = HealthStub(channel).Check
        for name in ("", LOGS_SERVICE, TRACE_SERVICE):
            answer = check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT_S)
            assert answer.status == HealthCheckResponse.NOT_SERVING, name

        registry.bring_up()  # the watch below is pushed the change: nothing polls
        seen = await_health(channel, HealthCheckResponse.SERVING, WAIT_S)
        assert seen[-1] == HealthCheckResponse.SERVING
        assert app.pipeline.not_ready is None
        for name in (LOGS_SERVICE, TRACE_SERVICE):
            answer = check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT_S)
            assert answer.status == HealthCheckResponse.SERVING, name

        # Shutdown (the fixture's second one is a no-op) turns a watcher's status over first.
        stream = HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=WAIT_S)
        assert next(stream).status == HealthCheckResponse.SERVING
        stopping = threading.Thread(target=app.shutdown, args=(WAIT_S,))
        stopping.start()
        assert next(stream).status == HealthCheckResponse.NOT_SERVING
        stream.cancel()  # the grace period waits for open streams
        stopping.join(WAIT_S)
        assert not stopping.is_alive()


def test_when_ready_is_called_once_by_the_binding_or_at_once_when_bound(
    registry: DownRegistry, sink: InMemorySink
) -> None:
    pipeline = Pipeline(load_config(), registry, sink)
    calls: list[str] = []
    bound = threading.Event()
    pipeline.when_ready(lambda: calls.append("before start"))
    pipeline.when_ready(bound.set)
    pipeline.start()
    try:
        assert registry.refused.wait(WAIT_S)
        assert calls == []
        pipeline.when_ready(lambda: calls.append("while binding"))
        registry.bring_up()
        assert bound.wait(WAIT_S)
        assert calls == ["before start", "while binding"]
        pipeline.when_ready(lambda: calls.append("after"))  # bound: called at once, here
        assert calls == ["before start", "while binding", "after"]
    finally:
        pipeline.shutdown(1.0)


def test_when_ready_is_never_called_if_shutdown_comes_first(
    registry: DownRegistry, sink: InMemorySink
) -> None:
    pipeline = Pipeline(load_config(), registry, sink)
    called = threading.Event()
    pipeline.when_ready(called.set)
    pipeline.start()
    assert registry.refused.wait(WAIT_S)
    pipeline.shutdown(1.0)
    registry.bring_up()
    # Asserted at once, a binding still under way would not have called yet: await its end.
    binding = pipeline._bootstrap
    assert binding is not None
    binding.join(WAIT_S)
    assert not binding.is_alive()
    assert not pipeline.started and not called.is_set()


def test_shutdown_interrupts_the_binding_backoff(
    registry: DownRegistry, sink: InMemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backoff far longer than the bound below: only an interrupted wait ends in time.
    monkeypatch.setattr(facade, "_BOOTSTRAP_INITIAL_BACKOFF_S", 3600.0)
    pipeline = Pipeline(load_config(), registry, sink)
    pipeline.start()
    assert registry.refused.wait(WAIT_S)
    wait_until(lambda: registry.attempts >= 2, "the background attempt")  # now in its backoff
    stopper = threading.Thread(target=pipeline.shutdown, args=(2.0,))
    stopper.start()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert not pipeline.started


def test_a_schema_the_registry_refuses_still_fails_start() -> None:
    class Refusing(InMemoryRegistry):
        def register(self, subject: str, schema_text: str) -> int:
            raise SchemaError("incompatible (test)")

    pipeline = Pipeline(load_config(), Refusing(), InMemorySink())
    with pytest.raises(SchemaError):
        pipeline.start()
    pipeline.shutdown(1.0)


class _SilentAdmin:
    """An AdminClient whose broker never answers: every future stays pending."""

    calls = 0

    def __init__(self, conf: dict[str, Any]) -> None:
        pass

    def create_topics(self, topics: list[Any], **_: Any) -> dict[str, Future[None]]:
        type(self).calls += 1
        return {t.topic: Future() for t in topics}


def test_kafka_down_start_returns_at_once_and_shutdown_interrupts_topic_creation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_sink, "Producer", FakeKafka().producer)
    monkeypatch.setattr(kafka_sink, "AdminClient", _SilentAdmin)
    monkeypatch.setattr(_SilentAdmin, "calls", 0)  # a class attribute: count this run's only
    sink = KafkaSink(load_config(kafka={"create_topics": True}).kafka, ["feedback.t"])
    sink.start()  # before: waited out the creation timeout, then raised SinkUnavailable
    wait_until(lambda: _SilentAdmin.calls >= 1, "the background topic creation")
    stopper = threading.Thread(target=sink.shutdown, args=(1.0,))
    stopper.start()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
