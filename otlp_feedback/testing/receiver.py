"""Run a receiver in-process on free loopback ports (gRPC and HTTP), with in-memory twins by
default; await a status of its gRPC health service (``await_health``); drive the OTLP/HTTP
port's ASGI app with no socket at all (``http_test_client``, ``guarded_test_client``)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.testclient import TestClient

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.receiver.guard import RequestGuard
from otlp_feedback.receiver.http import HttpReceiver
from otlp_feedback.registry.client import InMemoryRegistry, SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.memory import InMemorySink


@contextmanager
def run_receiver(
    *,
    registry: SchemaRegistry | None = None,
    sink: Sink | None = None,
    **overrides: Any,
) -> Iterator[FeedbackApp]:
    """Yield a started app; ``overrides`` are config sections (e.g. ``receiver={...}``)."""
    receiver = {
        "endpoint": "127.0.0.1:0",
        "http": {"endpoint": "127.0.0.1:0"},
        **overrides.pop("receiver", {}),
    }
    overrides.setdefault("observability", {"endpoint": "127.0.0.1:0"})
    settings = load_config(receiver=receiver, **overrides)
    app = FeedbackApp(settings, registry or InMemoryRegistry(), sink or InMemorySink())
    app.start()
    try:
        yield app
    finally:
        app.shutdown(grace=2.0)


def await_health(
    channel: grpc.Channel,
    status: health_pb2.HealthCheckResponse.ServingStatus.ValueType,
    timeout: float,
    service: str = "",
) -> list[health_pb2.HealthCheckResponse.ServingStatus.ValueType]:
    """Watch ``service`` on ``channel``'s ``grpc.health.v1.Health`` until it reports ``status``
    (pushed by the server as it changes: no polling). Returns the statuses seen, the first being
    the one at the call. Raises ``grpc.RpcError`` (DEADLINE_EXCEEDED) after ``timeout``."""
    stream = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=service), timeout=timeout
    )
    seen = []
    try:
        for response in stream:
            seen.append(response.status)
            if response.status == status:
                return seen
    finally:
        stream.cancel()
    raise AssertionError(f"health stream ended before {status}; saw {seen}")


def http_test_client(
    pipeline: Any,
    executor: ThreadPoolExecutor,
    settings: Settings | None = None,
    *,
    telemetry: Telemetry | None = None,
    guard: RequestGuard | None = None,
) -> TestClient:
    """Starlette's ``TestClient`` on the ASGI app of an ``HttpReceiver`` over ``pipeline`` (any
    object with the pipeline's ``export``), configured by ``settings`` (the defaults if None);
    ``executor`` runs the exports. Without a ``guard``, the open one (no auth, no limits)."""
    settings = settings or load_config()
    telemetry = telemetry or Telemetry()
    receiver = HttpReceiver(
        settings.receiver,
        pipeline,
        settings.validation.max_rejection_messages,
        telemetry,
        guard=guard or RequestGuard.open(telemetry),
    )
    return TestClient(receiver.app(executor), base_url="http://otlp")


def guarded_test_client(pipeline: Any, executor: ThreadPoolExecutor, **sections: Any) -> TestClient:
    """``http_test_client`` on ``load_config(**sections)`` behind the guard those settings
    build (``auth``, ``rate_limit``, ``tokens``), as the app builds it."""
    settings = load_config(**sections)
    guard = RequestGuard.from_settings(settings, Telemetry())
    return http_test_client(pipeline, executor, settings, guard=guard)
