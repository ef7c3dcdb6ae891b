"""Deliver: ``Processed`` -> the sink, with the dead letters -> the completed ``ExportOutcome``.

Called by the ``Pipeline`` facade once per processed request. One request's events and the
dead letters of its rejections go to the sink in one ``deliver`` call, and the outcome is
returned once the sink confirmed every one (Kafka, or the spool behind the failover sink).

- A retryable failure (``SinkUnavailable``, ``DeliveryTimeout``, ``BackpressureError``, ...)
  propagates: the client retries the whole request. Counted as a delivery failure.
- ``DeliveryFailed`` (Kafka refused some records for good; the rest are delivered): each refused
  event becomes a ``kafka_refused`` rejection, found from its source (``Batch.sources``, which
  maps only the refused records) and dead-lettered in a second, best-effort delivery; refused
  dead letters are logged and counted.

Dead letters keep the record as sent, scrubbed as its event would have been and cut to fit
Kafka (``encoding.dead_letter.to_outbound``); none are written when ``kafka.dlq_topic`` is unset,
nor for a record outside its sender's scope (``out_of_scope``).

Owns the sink's lifecycle for the pipeline (``start``/``force_flush``/``shutdown``).
Thread-safe (the sink is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from otlp_feedback.config import Settings
from otlp_feedback.encoding.dead_letter import DeadLetter, to_outbound
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import DeliveryFailed, OtlpFeedbackError
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline.ingest import Batch
from otlp_feedback.pipeline.outcome import ExportOutcome
from otlp_feedback.pipeline.process import OUT_OF_SCOPE, Processed
from otlp_feedback.sinks.base import Sink
from otlp_feedback.validation import Rejection
from otlp_feedback.validation.redaction import Redactor

log = logging.getLogger(__name__)


class Delivery:
    """The sink and the dead-letter topic, as the pipeline uses them."""

    def __init__(self, sink: Sink, settings: Settings, telemetry: Telemetry) -> None:
        self._sink = sink
        self._telemetry = telemetry
        self._timeout_s = settings.receiver.delivery_timeout_s
        self._dlq_topic = settings.kafka.dlq_topic
        self._max_bytes = settings.kafka.message_max_bytes

    def start(self) -> None:
        self._sink.start()

    def force_flush(self, timeout: float) -> bool:
        return self._sink.force_flush(timeout)

    def shutdown(self, timeout: float) -> None:
        self._sink.shutdown(timeout)

    def deliver(self, batch: Batch, processed: Processed, redactor: Redactor) -> ExportOutcome:
        """Deliver the events and dead letters of one request; return its outcome, complete.

        Raises the sink's ``OtlpFeedbackError`` (other than ``DeliveryFailed``) when nothing can
        be confirmed, and whatever else the sink raises (a bug) as it is.
        """
        records, outcome = processed.records, processed.outcome
        events = len(records)
        letters = self._dead_letters(outcome.rejections, redactor)
        if not records and not letters:
            return outcome
        try:
            self._sink.deliver([*records, *letters], self._timeout_s)
        except DeliveryFailed as exc:
            # Kafka refused some records for good; the rest are delivered.
            refused = self._refused(batch, processed, exc)
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
        return outcome

    @staticmethod
    def _refused(batch: Batch, processed: Processed, exc: DeliveryFailed) -> list[Rejection]:
        """A ``kafka_refused`` rejection for each refused event, in the order Kafka reported
        them (the last record, where two share an event id); refused dead letters have none."""
        position_of = {
            record.event_id: origin
            for record, origin in zip(processed.records, processed.origins, strict=True)
        }
        refused = {eid: position_of[eid] for eid in exc.failed if eid in position_of}
        sources = batch.sources(refused.values())
        return [
            Rejection.of(sources[position], f"Kafka refused it: {exc.failed[eid]}", "kafka_refused")
            for eid, position in refused.items()
        ]

    def _dead_letters(
        self, rejections: Sequence[Rejection], redactor: Redactor
    ) -> list[OutboundRecord]:
        """Dead letters keep the record as sent, scrubbed as its event would have been and cut
        to fit Kafka. Replay re-redacts; redaction is idempotent. A record outside its
        sender's scope gets none: replayed, it would bypass the scope that refused it."""
        if not self._dlq_topic:
            return []
        topic, max_bytes = self._dlq_topic, self._max_bytes
        return [
            to_outbound(
                DeadLetter(r.reason, r.location, r.event_id, r.source), topic, redactor, max_bytes
            )
            for r in rejections
            if r.category != OUT_OF_SCOPE
        ]

    def _send_dead_letters(self, rejections: Sequence[Rejection], redactor: Redactor) -> int:
        """Best effort for records Kafka itself refused: the client is told either way."""
        letters = self._dead_letters(rejections, redactor)
        if not letters:
            return 0
        try:
            self._sink.deliver(letters, self._timeout_s)
        except OtlpFeedbackError as exc:
            log.error("could not dead-letter %d refused events: %s", len(letters), exc)
            self._telemetry.count_dead_letter_failures(len(letters))
            return 0
        return len(letters)
