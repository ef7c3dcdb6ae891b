"""Run a receiver in-process on free loopback ports (gRPC and HTTP), with in-memory twins by
default; await a status of its gRPC health service (``await_health``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import load_config
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
