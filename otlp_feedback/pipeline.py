"""Wires the stages: map -> validate -> redact -> encode -> deliver (dead letters alongside).

``export_logs_payload`` takes the request as sent: the native fast path (``native``) maps,
validates and encodes the records it can prove the Python stages would accept unchanged, and
hands the rest to them, so both give the same records and the same partial_success.

``Pipeline.start`` resolves a registry id for each event type's newest local schema (registering
the local history and setting the subject's compatibility mode when ``registry.auto_register``
is on) and starts the sink. ``export_logs``/``export_traces`` return an ``ExportOutcome`` once
every accepted event (and every dead letter) is confirmed by the sink, or raise a
``RetryableError`` so the client retries the whole request.

Lifecycle: ``start`` once; ``shutdown`` idempotent and safe before ``start``.

Redaction reload (``set_redaction``): the redactor and the native plan compiled from it are one
immutable ``RedactionRules``, swapped by one assignment and read once per request, so a request
never pairs one rule set's C gate with another's redactor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_feedback.config import RedactionConfig, Settings
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.dead_letter import DeadLetter, to_outbound
from otlp_feedback.encoding.outbound import EventEncoder, OutboundRecord, add_request_headers
from otlp_feedback.errors import (
    DeliveryFailed,
    EncodingError,
    InvalidRequest,
    OtlpFeedbackError,
    RequestTooLarge,
    SinkUnavailable,
)
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType
from otlp_feedback.mapping import (
    MappedRequest,
    RawFeedback,
    map_logs_request,
    map_traces_request,
)
from otlp_feedback.native import NativeLogs, NativeResult, build_plan
from otlp_feedback.observability.metrics import (
    ACCEPTED,
    DEAD_LETTER_FAILURES,
    DEAD_LETTERED,
    DELIVERY_FAILURES,
    IGNORED,
    NATIVE,
    REDACTED,
    REJECTED,
    REQUESTS,
    Telemetry,
)
from otlp_feedback.registry.client import SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.validation import Rejection, Validator
from otlp_feedback.validation.redaction import Redactor

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

# Room for the record's key, headers and batch framing under kafka.message_max_bytes.
_RECORD_OVERHEAD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """One rule set: the redactor and the native plan whose gate was compiled from it (None
    when the fast path is off or not built). Replaced whole, never changed."""

    redactor: Redactor
    native: NativeLogs | None = None


@dataclass(slots=True)
class ExportOutcome:
    """What happened to one request's records."""

    accepted: int = 0
    ignored: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    dead_lettered: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    redacted_by_type: Counter[str] = field(default_factory=Counter)
    native: int = 0  # events the native fast path encoded
    deferred: int = 0  # feedback records it handed to the Python stages

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


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """The pipeline's counters since start, read from its telemetry (``Pipeline.stats``).

    A copy: the counts themselves live in ``Telemetry``, which the pipeline reports to once per
    request and which the metrics endpoint reads. ``accepted``/``rejected`` are the sums of the
    by-type counts.
    """

    requests: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    dead_letter_failures: int = 0
    delivery_failures: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    rejected_by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    redacted_by_type: Counter[str] = field(default_factory=Counter)
    native_events: int = 0
    native_deferred: int = 0

    @classmethod
    def of(cls, telemetry: Telemetry) -> PipelineStats:
        counts = telemetry.snapshot()

        def total(family: str) -> int:
            return int(counts.get((family,), 0))

        def by(family: str) -> Counter[tuple[str, ...]]:
            return Counter({k[1:]: int(v) for k, v in counts.items() if k[0] == family})

        return cls(
            requests=total(REQUESTS),
            ignored=total(IGNORED),
            dead_lettered=total(DEAD_LETTERED),
            dead_letter_failures=total(DEAD_LETTER_FAILURES),
            delivery_failures=total(DELIVERY_FAILURES),
            accepted_by_type=Counter({k[0]: v for k, v in by(ACCEPTED).items()}),
            rejected_by_type=Counter({(k[0], k[1]): v for k, v in by(REJECTED).items()}),
            redacted_by_type=Counter({k[0]: v for k, v in by(REDACTED).items()}),
            native_events=int(counts.get((NATIVE, "native"), 0)),
            native_deferred=int(counts.get((NATIVE, "deferred"), 0)),
        )

    @property
    def accepted(self) -> int:
        return sum(self.accepted_by_type.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_type.values())


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
        telemetry: Telemetry | None = None,
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry or Telemetry()
        self._registry = registry
        self._sink = sink
        self._clock_ns = clock_ns
        self._validator = Validator(settings.validation)
        # Read once per request (``self._rules``), replaced by one assignment on reload.
        self._rules = RedactionRules(self._redactor_for(settings.redaction))
        self._encoder: EventEncoder | None = None
        self._serializers: dict[EventType, AvroEventSerializer] = {}
        self._dlq_topic = settings.kafka.dlq_topic
        self._max_value_bytes = settings.kafka.message_max_bytes - _RECORD_OVERHEAD_BYTES
        self._shut_down = False
        self.started = False

    @property
    def stats(self) -> PipelineStats:
        """The counters since start (a copy, read from the telemetry)."""
        return PipelineStats.of(self._telemetry)

    @property
    def topics(self) -> dict[EventType, str]:
        return {t: self._settings.kafka.topic_for(t) for t in EVENT_TYPES}

    def start(self) -> None:
        """Resolve schema ids and start the sink. Raises SchemaError/RegistryUnavailable."""
        self._serializers = self._resolve_serializers()
        self._encoder = EventEncoder(self._serializers, self.topics)
        self._rules = self._compile(self._rules.redactor.config)
        self._sink.start()
        self.started = True
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

    def _compile(self, config: RedactionConfig) -> RedactionRules:
        """A redactor for ``config`` and, once schemas are resolved, the native plan built
        from that very redactor."""
        redactor = self._redactor_for(config)
        if not self._settings.receiver.native_fast_path or not self._serializers:
            return RedactionRules(redactor)
        native = build_plan(
            self._serializers, self.topics, self._settings.validation, redactor,
            self._max_value_bytes,
        )  # fmt: skip
        return RedactionRules(redactor, native)

    def _redactor_for(self, config: RedactionConfig) -> Redactor:
        return Redactor(config, self._settings.validation.max_attribute_value_len)

    @property
    def rules(self) -> RedactionRules:
        """The rule set the next request will use."""
        return self._rules

    def set_redaction(self, config: RedactionConfig) -> None:
        """Swap the redaction rules (config reload). Requests already running keep the old
        pair whole: both are built first, then published by one assignment."""
        self._rules = self._compile(config)

    def export_logs_payload(
        self,
        payload: bytes,
        client_id: str | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> ExportOutcome:
        """``export_logs`` for a serialized request. Raises ``InvalidRequest`` if undecodable."""
        rules = self._rules  # the one read: this request's plan and redactor
        native = rules.native
        if native is not None and self._encoder is not None and not self._shut_down:
            received_ns = self._clock_ns()
            result = native.export(payload, received_ns, client_id)
            if result is not None:
                return self._process_native(
                    result, payload, received_ns, rules.redactor, client_id, admit
                )
        mapped = map_logs_request(decode(ExportLogsServiceRequest, payload))
        return self._process(
            mapped.feedback, mapped.ignored, client_id, admit, redactor=rules.redactor
        )

    def export_traces_payload(
        self,
        payload: bytes,
        client_id: str | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> ExportOutcome:
        """``export_traces`` for a serialized request. Raises ``InvalidRequest`` if undecodable."""
        return self.export_traces(decode(ExportTraceServiceRequest, payload), client_id, admit)

    def _process_native(
        self,
        result: NativeResult,
        payload: bytes,
        received_ns: int,
        redactor: Redactor,
        client_id: str | None,
        admit: Callable[[int], None] | None,
    ) -> ExportOutcome:
        deferred: list[RawFeedback] = []
        if result.deferred:
            # The C parser accepted the bytes, so protobuf does too.
            request = decode(ExportLogsServiceRequest, payload)
            deferred = map_logs_request(request, only=frozenset(result.deferred)).feedback

        def sources() -> list[RawFeedback]:
            # Only when Kafka refuses events: every feedback record, in the order of ``slots``.
            return map_logs_request(decode(ExportLogsServiceRequest, payload)).feedback

        return self._process(
            deferred,
            result.ignored,
            client_id,
            admit,
            received_ns=received_ns,
            redactor=redactor,
            slots=result.slots,
            native_sources=sources,
        )

    def export_logs(
        self,
        request: ExportLogsServiceRequest,
        client_id: str | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> ExportOutcome:
        return self.process(map_logs_request(request), client_id, admit)

    def export_traces(
        self,
        request: ExportTraceServiceRequest,
        client_id: str | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> ExportOutcome:
        return self.process(map_traces_request(request), client_id, admit)

    def process(
        self,
        mapped: MappedRequest,
        client_id: str | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> ExportOutcome:
        """Validate, encode and deliver mapped feedback; dead-letter what is refused.

        ``client_id`` (the authenticated sender) goes on every event record as the Kafka header
        ``client_id``. ``admit`` is called with the number of feedback records once the request
        passed the size check and before any validation; it raises to refuse the request whole
        (the receiver's rate limit raises ``RateLimited``).
        """
        return self._process(mapped.feedback, mapped.ignored, client_id, admit)

    def _process(
        self,
        feedback: list[RawFeedback],
        ignored: int,
        client_id: str | None,
        admit: Callable[[int], None] | None,
        *,
        received_ns: int | None = None,
        redactor: Redactor | None = None,
        slots: list[OutboundRecord | None] | None = None,
        native_sources: Callable[[], list[RawFeedback]] | None = None,
    ) -> ExportOutcome:
        """``process``, with the native path's records: ``slots`` holds one entry per feedback
        record of the request, its encoded record or None where ``feedback`` (in order) has it.
        """
        encoder = self._encoder
        if encoder is None or self._shut_down:
            raise SinkUnavailable("pipeline is not running", retry_after=1.0)
        limit = self._settings.validation.max_feedback_per_request
        count = len(feedback) if slots is None else len(slots)
        if count > limit:
            # Validating and dead-lettering each of a flood of bad records costs far more than
            # receiving them; refuse the request whole so the sender splits it.
            raise RequestTooLarge(
                f"request carries {count} feedback records, over the limit of "
                f"{limit} (validation.max_feedback_per_request): send smaller batches"
            )
        if admit is not None:
            admit(count)
        outcome = ExportOutcome(ignored=ignored)
        if received_ns is None:
            received_ns = self._clock_ns()
        received_at = datetime.fromtimestamp(received_ns / 1e9, UTC)
        records: list[OutboundRecord] = []
        # Where each record came from, for the rejection if Kafka refuses it: the mapped
        # record, or (native path) its position among the request's feedback records.
        origins: list[RawFeedback | int] = []
        if redactor is None:
            redactor = self._rules.redactor  # one rule set per request, even across a reload

        def encode(raw: RawFeedback) -> None:
            record = self._encode_one(
                raw, encoder, redactor, client_id, received_ns, received_at, outcome
            )
            if record is not None:
                records.append(record)
                origins.append(raw)

        if slots is None:
            for raw in feedback:
                encode(raw)
        else:
            outcome.deferred = len(feedback)
            outcome.native = count - len(feedback)
            pending = iter(feedback)
            for position, slot in enumerate(slots):
                if slot is None:
                    encode(next(pending))
                else:
                    records.append(slot)
                    origins.append(position)
        events = len(records)
        letters = self._dead_letters(outcome.rejections, redactor)
        if not records and not letters:
            self._telemetry.count_request(outcome)
            return outcome
        try:
            self._sink.deliver([*records, *letters], self._settings.receiver.delivery_timeout_s)
        except DeliveryFailed as exc:
            # Kafka refused some records for good; the rest are delivered.
            sources = self._sources(records, origins, native_sources)
            refused = [
                Rejection.of(source, f"Kafka refused it: {reason}", "kafka_refused")
                for event_id, reason in exc.failed.items()
                if (source := sources.get(event_id)) is not None
            ]
            outcome.rejections.extend(refused)
            outcome.accepted = events - len(refused)
            refused_ids = exc.failed.keys()
            outcome.accepted_by_type.update(
                r.event_type for r in records if r.event_id not in refused_ids
            )
            lost_letters = len(exc.failed) - len(refused)  # refused ids that were letters
            if lost_letters:
                log.error("Kafka refused %d dead letters: %s", lost_letters, exc)
                self._telemetry.count_dead_letter_failures(lost_letters)
            outcome.dead_lettered = len(letters) + self._send_dead_letters(refused, redactor)
        except OtlpFeedbackError:
            self._telemetry.count_delivery_failure()
            raise
        else:
            outcome.accepted = events
            outcome.accepted_by_type.update(r.event_type for r in records)
            outcome.dead_lettered = len(letters)
        self._telemetry.count_request(outcome)
        return outcome

    @staticmethod
    def _sources(
        records: list[OutboundRecord],
        origins: list[RawFeedback | int],
        native_sources: Callable[[], list[RawFeedback]] | None,
    ) -> dict[str, RawFeedback]:
        """Event id -> mapped record (the last one, where two records share an id)."""
        mapped = native_sources() if native_sources is not None else []
        return {
            record.event_id: mapped[origin] if isinstance(origin, int) else origin
            for record, origin in zip(records, origins, strict=True)
        }

    def _encode_one(
        self,
        raw: RawFeedback,
        encoder: EventEncoder,
        redactor: Redactor,
        client_id: str | None,
        received_ns: int,
        received_at: datetime,
        outcome: ExportOutcome,
    ) -> OutboundRecord | None:
        """One record through validate -> redact -> encode, or None with its rejection noted."""
        if client_id is not None and "client_id" in EVENT_MODELS[raw.event_type].model_fields:
            raw.fields["client_id"] = client_id  # the authenticated id beats anything sent
        result = self._validator.validate(raw, received_ns, received_at, redactor)
        if isinstance(result, Rejection):
            outcome.rejections.append(result)
            return None
        event, redacted = redactor.redact_event(result)
        try:
            record = encoder.encode(event)
        except EncodingError as exc:
            outcome.rejections.append(Rejection.of(raw, str(exc), "encoding"))
            return None
        if len(record.value) > self._max_value_bytes:
            outcome.rejections.append(
                Rejection.of(
                    raw,
                    f"encoded event is {len(record.value)} bytes, over the "
                    f"{self._max_value_bytes}-byte limit (kafka.message_max_bytes)",
                    "too_large",
                )
            )
            return None
        if redacted:
            outcome.redacted_by_type[event.event_type] += 1
        add_request_headers(record, redacted, client_id)
        return record

    def _dead_letters(
        self, rejections: Sequence[Rejection], redactor: Redactor
    ) -> list[OutboundRecord]:
        """Dead letters keep the record as sent, scrubbed as its event would have been and cut
        to fit Kafka (``dead_letter.to_outbound``). Replay re-redacts; redaction is idempotent."""
        if not self._dlq_topic:
            return []
        topic = self._dlq_topic
        max_bytes = self._settings.kafka.message_max_bytes
        return [
            to_outbound(
                DeadLetter(r.reason, r.location, r.event_id, r.source), topic, redactor, max_bytes
            )
            for r in rejections
        ]

    def _send_dead_letters(self, rejections: Sequence[Rejection], redactor: Redactor) -> int:
        """Best effort for records Kafka itself refused: the client is told either way."""
        letters = self._dead_letters(rejections, redactor)
        if not letters:
            return 0
        try:
            self._sink.deliver(letters, self._settings.receiver.delivery_timeout_s)
        except OtlpFeedbackError as exc:
            log.error("could not dead-letter %d refused events: %s", len(letters), exc)
            self._telemetry.count_dead_letter_failures(len(letters))
            return 0
        return len(letters)

    def dead_letter_refused(self, records: list[OutboundRecord], exc: DeliveryFailed) -> None:
        """Spooled records Kafka refused for good during replay (called by the failover sink).

        Only the encoded event is left by then, not the OTLP source a dead letter needs, so they
        are logged and counted. Rare: oversized events are refused before they are spooled.
        """
        log.error("Kafka refused %d spooled events permanently: %s", len(records), exc)
        self._telemetry.count_dead_letter_failures(len(records))

    def force_flush(self, timeout: float) -> bool:
        return self._sink.force_flush(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking requests and flush the sink. Idempotent; safe before start."""
        if self._shut_down:
            return
        self._shut_down = True
        self._sink.shutdown(timeout)


def decode(cls: type[M], payload: bytes) -> M:
    """Parse an OTLP request. Raises ``InvalidRequest`` naming the message type."""
    try:
        return cls.FromString(payload)
    except DecodeError as exc:
        reason = exc or "malformed protobuf"
        raise InvalidRequest(f"cannot decode {cls.__name__}: {reason}") from exc
