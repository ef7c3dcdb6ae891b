"""Process: an admitted ``Batch`` -> validate -> redact -> encode -> ``Processed`` (the records to
produce, in request order, and the rejections with their reasons).

Called by the ``Pipeline`` facade once per admitted request, with the request's redactor (read
once per request with the native plan, so a reload never splits a request) and the
authenticated client id. Records the native fast path already encoded pass through as they
are; each mapped record goes through ``Validator.validate`` -> ``Redactor.redact_event`` ->
``EventEncoder.encode``, and what fails becomes a ``Rejection`` (``invalid``, ``encoding``, or
``too_large`` when the encoded event would not fit under ``kafka.message_max_bytes``).

A request with a ``RecordScope`` (a feedback token's, from its admission) holds each valid
event to it before redaction: one outside it is an ``out_of_scope`` rejection naming why (its
type, its session or trace id), which delivery does not dead-letter (it is not a bad record to
repair and replay, but one its sender may not send). Such a request never takes the native
path (``Pipeline.export``), so every record passes here.

Thread-safe: a ``Processor`` holds only immutable state; every request has its own outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from otlp_feedback.encoding.outbound import EventEncoder, OutboundRecord, add_request_headers
from otlp_feedback.errors import EncodingError
from otlp_feedback.events import EVENT_MODELS
from otlp_feedback.mapping import RawFeedback
from otlp_feedback.pipeline.admission import RecordScope
from otlp_feedback.pipeline.ingest import Batch
from otlp_feedback.pipeline.outcome import ExportOutcome
from otlp_feedback.validation import Rejection, Validator
from otlp_feedback.validation.redaction import Redactor

# The rejection category of a record outside its caller's scope (never dead-lettered).
OUT_OF_SCOPE = "out_of_scope"


@dataclass(slots=True)
class Processed:
    """What process hands delivery.

    ``records`` are the events to produce, in request order; ``origins[i]`` is the batch
    position of ``records[i]`` (for its source, should Kafka refuse it). ``outcome`` so far: the
    rejections, redactions, ignored and native/deferred counts; delivery adds the rest.
    """

    records: Sequence[OutboundRecord]
    origins: Sequence[int]
    outcome: ExportOutcome


class Processor:
    """validate -> redact -> encode for one request's mapped records."""

    def __init__(self, validator: Validator, encoder: EventEncoder, max_value_bytes: int) -> None:
        self._validator = validator
        self._encoder = encoder
        self._max_value_bytes = max_value_bytes

    def process(
        self,
        batch: Batch,
        redactor: Redactor,
        client_id: str | None,
        scope: RecordScope | None = None,
    ) -> Processed:
        """Every record of ``batch``, encoded or rejected. ``client_id`` (the authenticated
        sender) goes on every record as the Kafka header ``client_id``, and into the event's
        ``client_id`` field where its model has one; ``scope`` (if any) is asked of each valid
        event. Never raises for a record's content."""
        outcome = ExportOutcome(ignored=batch.ignored, native=batch.native, deferred=batch.deferred)
        entries = batch.entries
        if batch.native == len(entries):  # all encoded by C (or empty): nothing to process
            return Processed(
                cast("Sequence[OutboundRecord]", entries), range(len(entries)), outcome
            )
        received_ns = batch.received_ns
        received_at = datetime.fromtimestamp(received_ns / 1e9, UTC)
        records: list[OutboundRecord] = []
        origins: list[int] = []
        for position, entry in enumerate(entries):
            if isinstance(entry, RawFeedback):
                record = self._encode_one(
                    entry, redactor, client_id, received_ns, received_at, outcome, scope
                )
                if record is None:
                    continue
            else:
                assert scope is None, "a scoped request took the native path"
                record = entry
            records.append(record)
            origins.append(position)
        return Processed(records, origins, outcome)

    def _encode_one(
        self,
        raw: RawFeedback,
        redactor: Redactor,
        client_id: str | None,
        received_ns: int,
        received_at: datetime,
        outcome: ExportOutcome,
        scope: RecordScope | None,
    ) -> OutboundRecord | None:
        """One record through validate -> redact -> encode, or None with its rejection noted."""
        if client_id is not None and "client_id" in EVENT_MODELS[raw.event_type].model_fields:
            raw.fields["client_id"] = client_id  # the authenticated id beats anything sent
        result = self._validator.validate(raw, received_ns, received_at, redactor)
        if isinstance(result, Rejection):
            outcome.rejections.append(result)
            return None
        refusal = scope.refusal(result) if scope is not None else None
        if refusal is not None:
            outcome.rejections.append(Rejection.of(raw, refusal, OUT_OF_SCOPE))
            return None
        event, redacted = redactor.redact_event(result)
        try:
            record = self._encoder.encode(event)
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
