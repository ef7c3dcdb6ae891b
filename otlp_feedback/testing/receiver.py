"""Run a receiver in-process on free loopback ports (gRPC and HTTP), with in-memory twins by
default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
