"""Assemble a running receiver from settings: registry client + sinks + pipeline + gRPC server.

The sink chain is Kafka behind a ``FailoverSink`` (circuit breaker, in-flight budget and, when
``spool.enabled``, the disk spool). ``FeedbackApp`` is what ``otlp-feedback serve``/``dev`` run
and what tests start in-process; tests may pass their own ``registry``/``sink`` (e.g. the
in-memory doubles), which then replace the whole chain.
"""

from __future__ import annotations

import logging

from otlp_feedback.config import Settings
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver import GrpcReceiver
from otlp_feedback.registry.client import ConfluentRegistry, SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.failover import FailoverSink
from otlp_feedback.sinks.kafka import KafkaSink
from otlp_feedback.sinks.spool import Spool

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
        self.registry = registry or ConfluentRegistry(settings.registry.client_config())
        self.kafka: KafkaSink | None = None
        self.failover: FailoverSink | None = None
        if sink is None:
            self.kafka = KafkaSink(settings.kafka, settings.kafka.all_topics())
            spool = Spool(settings.spool) if settings.spool.enabled else None
            self.failover = FailoverSink(self.kafka, spool, settings.delivery)
            sink = self.failover
        self.sink = sink
        self.pipeline = Pipeline(settings, self.registry, sink)
        if self.failover is not None:
            self.failover.on_permanent_failure = self.pipeline.dead_letter_refused
        self.receiver = GrpcReceiver(
            settings.receiver, self.pipeline, settings.validation.max_rejection_messages
        )

    @property
    def port(self) -> int:
        if self.receiver.port is None:
            raise RuntimeError("not started")
        return self.receiver.port

    def start(self) -> None:
        """Resolve schemas, open the spool, start Kafka, then open the port."""
        self.pipeline.start()
        try:
            self.receiver.start()
        except BaseException:
            self.pipeline.shutdown(1.0)
            raise

    def shutdown(self, grace: float = 10.0) -> None:
        """Health NOT_SERVING, finish in-flight RPCs, flush Kafka, keep the rest spooled."""
        self.receiver.shutdown(grace)  # also shuts the pipeline and its sinks down

    def __enter__(self) -> FeedbackApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
