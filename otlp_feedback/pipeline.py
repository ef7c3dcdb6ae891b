"""Wires the stages: map -> validate -> encode -> deliver. The receiver calls ``export_*``.

``Pipeline.start`` resolves a registry id for each event type's newest local schema (registering
it and setting the subject's compatibility mode when ``registry.auto_register`` is on) and starts
the sink. ``export_logs``/``export_traces`` return an ``ExportOutcome`` once every accepted event
is confirmed by the sink, or raise a ``RetryableError`` so the client retries the request.

Lifecycle: ``start`` once; ``shutdown`` idempotent and safe before ``start``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_feedback.config import Settings
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.outbound import EventEncoder, OutboundRecord
from otlp_feedback.errors import DeliveryFailed, EncodingError, SinkUnavailable
from otlp_feedback.events import EVENT_TYPES, EventType
from otlp_feedback.mapping import (
    MappedRequest,
    RawFeedback,
    map_logs_request,
    map_traces_request,
)
from otlp_feedback.registry.client import SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.validation import Rejection, Validator

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ExportOutcome:
    """What happened to one request's records."""

    accepted: int = 0
    ignored: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def message(self, limit: int) -> str:
        """English summary naming the first ``limit`` problems (for OTLP partial_success)."""
        if not self.rejections:
            return ""
        shown = "; ".join(r.describe() for r in self.rejections[:limit])
        more = self.rejected - limit
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} feedback record(s) rejected: {shown}{suffix}"


@dataclass
class PipelineStats:
    """Counters since start (the Prometheus exporter reads these)."""

    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    ignored: int = 0
    delivery_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: ExportOutcome) -> None:
        with self._lock:
            self.requests += 1
            self.accepted += outcome.accepted
            self.rejected += outcome.rejected
            self.ignored += outcome.ignored


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value schema of ``topic`` lives under ``<topic>-value``."""
    return f"{topic}-value"


class Pipeline:
    """The processing pipeline of one receiver process. Thread-safe after ``start``."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        sink: Sink,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._sink = sink
        self._clock_ns = clock_ns
        self._validator = Validator(settings.validation)
        self._encoder: EventEncoder | None = None
        self._started = False
        self._shut_down = False
        self.stats = PipelineStats()

    @property
    def topics(self) -> dict[EventType, str]:
        return {t: self._settings.kafka.topic_for(t) for t in EVENT_TYPES}

    def start(self) -> None:
        """Resolve schema ids and start the sink. Raises SchemaError/RegistryUnavailable."""
        self._encoder = EventEncoder(self._resolve_serializers(), self.topics)
        self._sink.start()
        self._started = True
        log.info("pipeline started; schema ids %s", self._encoder.schema_ids())

    def _resolve_serializers(self) -> dict[EventType, AvroEventSerializer]:
        cfg = self._settings.registry
        schemas = load_schemas(cfg.schemas_dir)
        serializers: dict[EventType, AvroEventSerializer] = {}
        for event_type, topic in self.topics.items():
            subject = subject_for(topic)
            latest = schemas.latest(event_type)
            if cfg.auto_register:
                self._registry.set_compatibility(subject, cfg.compatibility)
                for schema in schemas.versions[event_type]:  # history first, oldest to newest
                    schema_id = self._registry.register(subject, schema.text)
            else:
                schema_id = self._registry.lookup(subject, latest.text)
            serializers[event_type] = AvroEventSerializer(latest, schema_id)
        return serializers

    def export_logs(self, request: ExportLogsServiceRequest) -> ExportOutcome:
        return self._process(map_logs_request(request))

    def export_traces(self, request: ExportTraceServiceRequest) -> ExportOutcome:
        return self._process(map_traces_request(request))

    def _process(self, mapped: MappedRequest) -> ExportOutcome:
        encoder = self._encoder
        if encoder is None or self._shut_down:
            raise SinkUnavailable("pipeline is not running", retry_after=1.0)
        outcome = ExportOutcome(ignored=mapped.ignored)
        received_ns = self._clock_ns()
        received_at = datetime.fromtimestamp(received_ns / 1e9, UTC)
        records: list[OutboundRecord] = []
        sources: dict[str, RawFeedback] = {}
        for raw in mapped.feedback:
            result = self._validator.validate(raw, received_ns, received_at)
            if isinstance(result, Rejection):
                outcome.rejections.append(result)
                continue
            try:
                records.append(encoder.encode(result))
            except EncodingError as exc:
                outcome.rejections.append(Rejection.of(raw, str(exc)))
                continue
            sources[result.event_id] = raw
        if records:
            try:
                self._sink.deliver(records, self._settings.receiver.delivery_timeout_s)
            except DeliveryFailed as exc:
                # Kafka refused some records for good; the rest are delivered.
                for event_id, reason in exc.failed.items():
                    if (source := sources.get(event_id)) is not None:
                        refused = Rejection.of(source, f"Kafka refused it: {reason}")
                        outcome.rejections.append(refused)
                outcome.accepted = len(records) - len(exc.failed)
            except Exception:
                self.stats.delivery_failures += 1
                raise
            else:
                outcome.accepted = len(records)
        self.stats.add(outcome)
        return outcome

    def force_flush(self, timeout: float) -> bool:
        return self._sink.force_flush(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking requests and flush the sink. Idempotent; safe before start."""
        if self._shut_down:
            return
        self._shut_down = True
        self._sink.shutdown(timeout)
