"""Assemble a running receiver from settings: registry client + sink + pipeline + gRPC server.

``FeedbackApp`` is what ``otlp-feedback serve``/``dev`` run and what tests start in-process.
Tests pass their own ``registry``/``sink`` (e.g. the in-memory doubles).
"""

from __future__ import annotations

import logging

from otlp_feedback.config import Settings
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver import GrpcReceiver
from otlp_feedback.registry.client import ConfluentRegistry, SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.kafka import KafkaSink

log = logging.getLogger(__name__)


class FeedbackApp:
    """The whole service. ``start`` then ``shutdown`` (idempotent, safe before start)."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        topics = [settings.kafka.topic_for(t) for t in EVENT_TYPES]
        self.registry = registry or ConfluentRegistry(settings.registry.client_config())
        self.sink = sink or KafkaSink(settings.kafka, topics)
        self.pipeline = Pipeline(settings, self.registry, self.sink)
        self.receiver = GrpcReceiver(
            settings.receiver, self.pipeline, settings.validation.max_rejection_messages
        )

    @property
    def port(self) -> int:
        if self.receiver.port is None:
            raise RuntimeError("not started")
        return self.receiver.port

    def start(self) -> None:
        """Resolve schemas, create topics, start the producer, then open the port."""
        self.pipeline.start()
        try:
            self.receiver.start()
        except BaseException:
            self.pipeline.shutdown(1.0)
            raise

    def shutdown(self, grace: float = 10.0) -> None:
        self.receiver.shutdown(grace)  # also shuts the pipeline down

    def __enter__(self) -> FeedbackApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
