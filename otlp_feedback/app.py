"""Assemble a running receiver from settings: registry client + sinks + pipeline + gRPC server.

The sink chain is Kafka behind a ``FailoverSink`` (circuit breaker, in-flight budget and, when
``spool.enabled``, the disk spool). ``FeedbackApp`` is what ``otlp-feedback serve``/``dev`` run
and what tests start in-process; tests may pass their own ``registry``/``sink`` (e.g. the
in-memory doubles), which then replace the whole chain.
"""

from __future__ import annotations

import logging

from otlp_feedback.config import Settings
from otlp_feedback.httpserve import BackgroundHttpServer
from otlp_feedback.observability.http import create_app as create_http_app
from otlp_feedback.observability.metrics import Telemetry
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
        self.telemetry = Telemetry()
        self.registry = registry or ConfluentRegistry(settings.registry.client_config())
        self.kafka: KafkaSink | None = None
        self.failover: FailoverSink | None = None
        if sink is None:
            self.kafka = KafkaSink(settings.kafka, settings.kafka.all_topics(), self.telemetry)
            spool = Spool(settings.spool) if settings.spool.enabled else None
            self.failover = FailoverSink(self.kafka, spool, settings.delivery)
            sink = self.failover
        self.sink = sink
        self.pipeline = Pipeline(settings, self.registry, sink)
        if self.failover is not None:
            self.failover.on_permanent_failure = self.pipeline.dead_letter_refused
        self.receiver = GrpcReceiver(
            settings.receiver,
            self.pipeline,
            settings.validation.max_rejection_messages,
            self.telemetry,
        )
        self.telemetry.bind(self)
        self.http: BackgroundHttpServer | None = None

    @property
    def port(self) -> int:
        if self.receiver.port is None:
            raise RuntimeError("not started")
        return self.receiver.port

    def start(self) -> None:
        """Resolve schemas, open the spool, start Kafka, then open the port."""
        self.pipeline.start()
        try:
            obs = self.settings.observability
            if obs.enabled:
                self._start_http(*obs.host_port)
            self.receiver.start()
        except BaseException:
            self.pipeline.shutdown(1.0)
            if self.http is not None:
                self.http.shutdown(1.0)
            raise

    def _start_http(self, host: str, port: int) -> None:
        http = BackgroundHttpServer(
            create_http_app(self), host=host, port=port, name="otlp-feedback-http"
        )
        try:
            http.start()
        except OSError as exc:
            # Several receiver processes sharing the gRPC port (SO_REUSEPORT) on one host
            # cannot share this one: the first serves it; the others run without it.
            log.warning(
                "metrics/health endpoint %s:%d unavailable (%s); this process serves none",
                host,
                port,
                exc,
            )
            return
        self.http = http
        log.info("metrics and health on %s (/metrics /healthz /readyz)", http.url)

    def shutdown(self, grace: float = 10.0) -> None:
        """Health NOT_SERVING, finish in-flight RPCs, flush Kafka, keep the rest spooled."""
        self.receiver.shutdown(grace)  # also shuts the pipeline and its sinks down
        if self.http is not None:
            self.http.shutdown(2.0)

    def __enter__(self) -> FeedbackApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
