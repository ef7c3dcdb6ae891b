"""Deliver records to Kafka with confluent-kafka and wait for their delivery reports.

One idempotent producer (acks=all) per process; a background thread serves delivery callbacks
so request threads only enqueue and wait. Each ``deliver`` call tracks its own records and
returns when all of them are confirmed. A fatal producer error (e.g. UNKNOWN_PRODUCER_ID after a
broker restart) makes the sink rebuild the producer; the records in flight at that moment fail
their batch, which the caller reports as retryable, so nothing acknowledged is lost.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from otlp_feedback.backoff import retry_until
from otlp_feedback.config import KafkaConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import DeliveryFailed, DeliveryTimeout, SinkUnavailable
from otlp_feedback.observability.metrics import (
    KAFKA_FAILURES,
    PUBLISHED,
    REBUILDS,
    Telemetry,
)

log = logging.getLogger(__name__)

# How long one attempt to create the topics waits for the broker (a delivery waits no longer
# than its own deadline).
_CREATE_TOPICS_TIMEOUT_S = 5.0

# -- how a librdkafka error is classified: this table is the one place -------------------
# tests/unit/test_kafka_sink.py holds every code confluent-kafka defines to it, so a new code (a
# librdkafka upgrade) fails that test until someone decides where it belongs.

#: Codes that refuse the record itself (its size or content) or a rule of its topic (ACL, name,
#: policy, message format): re-sending it unchanged fails the same way, so ``deliver`` raises
#: ``DeliveryFailed`` naming it, the pipeline dead-letters it with the reason, and
#: ``otlp-feedback dlq replay`` re-submits it after the fix. Every other code is retryable (the
#: default): broker, connection, leadership, timeouts, the producer's idempotence state, purges
#: and fatal errors recover by themselves or by a producer rebuild; a producer-wide setting
#: (SASL, cluster ACL, compression, a skewed clock: INVALID_TIMESTAMP, since records carry the
#: produce time) refuses every record alike, and the spool holds them until an operator fixes
#: it. An unknown code is retryable too: dead-lettering data on a guess is worse than waiting.
PERMANENT_ERRORS: frozenset[int] = frozenset(
    {
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.MSG_SIZE_TOO_LARGE,  # also produce()'s local refusal (message.max.bytes)
        KafkaError.TOPIC_EXCEPTION,  # the topic name is invalid
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,  # the topic's format predates headers
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_RECORD,
    }
)
#: Retryable codes saying a topic is missing (a broker restart can forget topics): the topics
#: are re-created (if configured) before the next delivery.
TOPIC_MISSING_ERRORS: frozenset[int] = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
)
#: KIP-467: the broker refused a whole batch for one invalid record; librdkafka fails the others
#: with this code. They are innocent, and would meet the invalid record again in one batch if
#: the caller retried them together, forever: the sink re-sends them once, alone.
INNOCENT_ERRORS: frozenset[int] = frozenset({KafkaError._INVALID_DIFFERENT_RECORD})


def is_permanent(error: KafkaError) -> bool:
    """True if Kafka refused the record for good (see ``PERMANENT_ERRORS``); else retryable."""
    return error.code() in PERMANENT_ERRORS


class _Batch:
    """Delivery reports of one ``deliver`` call."""

    __slots__ = ("_lock", "done", "errors", "pending")

    def __init__(self, count: int) -> None:
        self.pending = count
        self.errors: list[tuple[KafkaError, str]] = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        if count == 0:
            self.done.set()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # once per record on the poll thread: the success case inline
            with self._lock:
                self.pending -= 1
                if self.pending == 0:
                    self.done.set()
        else:
            self._settle((err, _header(msg, "event_id")))

    def _settle(self, error: tuple[KafkaError, str] | None) -> None:
        # Reports arrive on the poll thread, local refusals on the request thread.
        with self._lock:
            if error is not None:
                self.errors.append(error)
            self.pending -= 1
            if self.pending == 0:
                self.done.set()


class KafkaSink:
    """The Kafka sink. Thread-safe: any number of request threads may call ``deliver``."""

    def __init__(
        self, config: KafkaConfig, topics: Sequence[str], telemetry: Telemetry | None = None
    ) -> None:
        self._config = config
        self._telemetry = telemetry or Telemetry()  # where it counts; /metrics reads that
        self._telemetry.attach("kafka")
        self._topics = list(dict.fromkeys(topics))
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        # Why the producer must be replaced before the next delivery, if it must.
        self._rebuild_reason: str | None = None
        self._shut_down = False
        # Topics are (re)created lazily when this is set: at start-up with the broker down,
        # and after a broker restart (Tansu's memory storage forgets topics).
        self._topics_pending = config.create_topics
        self._topic_maker: threading.Thread | None = None
        self._interrupted = threading.Event()  # set by ``interrupt``: waits end at once

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the producer and poll thread; return at once (``sinks.base``).

        The topics (if configured) are created by a background thread that retries with
        jittered backoff until the broker answers or ``shutdown``; a delivery before then
        creates them itself first (and fails retryably if it cannot).
        """
        with self._lock:
            self._producer = self._new_producer()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._poller.start()
        if self._topics_pending:
            self._topic_maker = threading.Thread(
                target=self._make_topics, name="kafka-topics", daemon=True
            )
            self._topic_maker.start()

    def interrupt(self) -> None:
        """Fail every delivery waiting now or later with ``SinkUnavailable``, at once, and cut
        topic creation short: the owner is stopping and still holds those records (the spool's
        replayer commits only what Kafka confirmed). ``shutdown`` still flushes what is queued."""
        self._interrupted.set()

    def force_flush(self, timeout: float) -> bool:
        if self._rebuild_reason is not None and not self._shut_down:
            # A producer marked for replacement may never drain (a stuck idempotent epoch after
            # a broker outage), and every record queued in it belongs to a caller already told
            # it failed (spooled or retried): replace it instead of waiting on it.
            try:
                self._current_producer()
            except SinkUnavailable:
                return True  # shut down meanwhile: nothing left to flush here
        producer = self._producer
        if producer is None:
            return True
        return int(producer.flush(timeout)) == 0

    def shutdown(self, timeout: float = 10.0) -> None:
        """Flush what is queued within ``timeout``, then stop. Idempotent; safe before start."""
        if self._shut_down:
            return
        self._shut_down = True
        left = 0
        if self._producer is not None:
            left = int(self._producer.flush(timeout))
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2.0)
        if self._topic_maker is not None:
            self._topic_maker.join(timeout=1.0)  # create_topics sees the stop within 0.1 s
        with self._lock:
            # Dropping the last reference closes librdkafka's threads and connections now.
            self._producer = None
        if left:
            log.warning("kafka sink shut down with %d records unconfirmed", left)

    def __enter__(self) -> KafkaSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- the work ------------------------------------------------------------------------

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        """Produce ``records`` and wait for every delivery report (see ``sinks.base``)."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._deliver(records, deadline, timeout)
        except DeliveryFailed:
            self._count_failure("refused")
            raise
        except DeliveryTimeout:
            self._count_failure("timeout")
            raise
        except SinkUnavailable:
            self._count_failure("unavailable")
            raise
        telemetry = self._telemetry
        telemetry.count_published(r.topic for r in records)
        telemetry.publish_seconds.observe(time.monotonic() - started)
        telemetry.publish_batch_records.observe(len(records))

    def published_by_topic(self) -> dict[str, int]:
        """Records confirmed by Kafka since start, by topic (read from the telemetry)."""
        return {k[0]: int(v) for k, v in self._telemetry.values(PUBLISHED).items()}

    def failures_by_kind(self) -> dict[str, int]:
        """Failed ``deliver`` calls since start: timeout, unavailable, refused."""
        return {k[0]: int(v) for k, v in self._telemetry.values(KAFKA_FAILURES).items()}

    @property
    def rebuilds(self) -> int:
        """Producers replaced since start (read from the telemetry)."""
        return int(self._telemetry.value(REBUILDS))

    def _count_failure(self, kind: str) -> None:
        self._telemetry.count_kafka_failure(kind)

    def _deliver(self, records: Sequence[OutboundRecord], deadline: float, timeout: float) -> None:
        errors = self._send(records, deadline, timeout)
        innocent = {event_id for e, event_id in errors if e.code() in INNOCENT_ERRORS}
        if innocent and all(e.code() in INNOCENT_ERRORS or is_permanent(e) for e, _ in errors):
            # Only the invalid records are at fault: send the others again, without them.
            again = [r for r in records if r.event_id in innocent]
            errors = [error for error in errors if error[1] not in innocent]
            errors += self._send(again, deadline, timeout)
        if errors:
            self._raise_for(errors, len(records))

    def _send(
        self, records: Sequence[OutboundRecord], deadline: float, timeout: float
    ) -> list[tuple[KafkaError, str]]:
        """Produce ``records``, wait for their reports; return the errors with their event ids.

        Raises ``DeliveryTimeout`` (no confirmation by the deadline) or ``SinkUnavailable``.
        """
        producer = self._current_producer()
        if self._topics_pending:  # rare (start-up, a broker that forgot them): no clock read
            self._ensure_topics(
                max(0.1, min(_CREATE_TOPICS_TIMEOUT_S, deadline - time.monotonic()))
            )
        batch = _Batch(len(records))
        produce, on_delivery = producer.produce, batch.on_delivery
        for record in records:
            try:  # the hot loop: one call per record, the rare cases in _produce
                produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=record.headers,  # type: ignore[arg-type]  # list is invariant
                    on_delivery=on_delivery,
                )
            except (BufferError, KafkaException):
                # Nothing was queued: _produce tries again, waits for room, or classifies.
                self._produce(producer, record, batch, deadline)
        if not self._await(batch, deadline):
            # A stuck producer looks like this too: after a broker restart librdkafka can loop
            # forever bumping its idempotent epoch (UNKNOWN_PRODUCER_ID) without surfacing a
            # fatal error. Replacing it is always safe: every queued record belongs to a caller
            # that is told it failed (and spools or retries it).
            self._rebuild_reason = f"no delivery confirmation within {timeout:g}s"
            raise DeliveryTimeout(
                f"Kafka confirmed {len(records) - batch.pending} of {len(records)} events "
                f"within {timeout:g}s",
                retry_after=1.0,
            )
        return batch.errors

    def _await(self, batch: _Batch, deadline: float) -> bool:
        """Wait for every report of ``batch`` until ``deadline``; False if some did not come.
        Raises ``SinkUnavailable`` as soon as ``interrupt`` is called."""
        while True:
            left = deadline - time.monotonic()
            if batch.done.wait(max(0.0, min(left, 0.1))):
                return True
            if self._interrupted.is_set():
                raise SinkUnavailable("Kafka sink is shutting down", retry_after=1.0)
            if left <= 0.1:
                return batch.done.is_set()

    def _produce(
        self, producer: Producer, record: OutboundRecord, batch: _Batch, deadline: float
    ) -> None:
        while True:
            try:
                producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,  # type: ignore[arg-type]  # list is invariant
                    on_delivery=batch.on_delivery,
                )
                return
            except BufferError:
                # librdkafka's local queue is full: that is our bounded in-flight budget.
                if time.monotonic() >= deadline:
                    raise DeliveryTimeout(
                        "Kafka producer queue stayed full until the delivery deadline",
                        retry_after=1.0,
                    ) from None
                time.sleep(0.005)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError):
                    if is_permanent(error):
                        # Refused before it was queued (e.g. too large): no report will come.
                        batch._settle((error, record.event_id))
                        return
                    self._note(error)
                raise SinkUnavailable(f"Kafka producer refused the record: {exc}") from exc

    def _raise_for(self, errors: list[tuple[KafkaError, str]], total: int) -> None:
        first, _ = errors[0]
        for error, _ in errors:
            self._note(error)
        if all(is_permanent(e) for e, _ in errors):
            raise DeliveryFailed(
                f"Kafka refused {len(errors)} of {total} events permanently: {first.str()}",
                failed={event_id: e.str() for e, event_id in errors},
            )
        raise SinkUnavailable(
            f"Kafka failed {len(errors)} of {total} events: {first.str()}", retry_after=1.0
        )

    def _note(self, error: KafkaError) -> None:
        """Act on what a retryable error says about the producer or the topics."""
        if error.code() in TOPIC_MISSING_ERRORS:
            self._topics_pending = self._config.create_topics
        if error.fatal() and self._rebuild_reason is None:
            # error_cb says so too, but on the poll thread, maybe after the caller retried.
            self._rebuild_reason = f"fatal error {error.str()}"

    # -- producer management ---------------------------------------------------------------

    def _current_producer(self) -> Producer:
        with self._lock:
            if self._shut_down or self._producer is None:
                raise SinkUnavailable("Kafka sink is not running")
            if self._rebuild_reason is not None:
                log.warning("rebuilding Kafka producer: %s", self._rebuild_reason)
                old = self._producer
                # Purge fails the old producer's in-flight batches; their callers answer
                # UNAVAILABLE and the clients retry, so nothing acknowledged is lost.
                old.purge(in_queue=True, in_flight=True)
                old.flush(0.5)  # serves the purge reports, so waiting callers fail fast
                self._producer = self._new_producer()
                self._rebuild_reason = None
                self._topics_pending = self._config.create_topics
                self._telemetry.count_producer_rebuild()
            return self._producer

    def _new_producer(self) -> Producer:
        c = self._config
        conf: dict[str, Any] = {
            **c.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": c.compression,
            "linger.ms": c.linger_ms,
            "batch.size": c.batch_size_bytes,
            "queue.buffering.max.messages": c.queue_max_messages,
            "message.max.bytes": c.message_max_bytes,
            "error_cb": self._on_error,
            **c.extra,
        }
        return Producer(conf)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal Kafka producer error: %s", err.str())
            self._rebuild_reason = f"fatal error {err.str()}"
        else:
            log.debug("Kafka client error: %s", err.str())

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is None:
                self._stop.wait(0.05)
                continue
            producer.poll(0.05)

    def _ensure_topics(self, timeout: float = _CREATE_TOPICS_TIMEOUT_S) -> None:
        if self._topics_pending:
            self.create_topics(timeout)
            self._topics_pending = False

    def _make_topics(self) -> None:
        """The start-up thread: create the topics, retrying until the broker answers."""

        def attempt() -> bool:
            if not self._topics_pending:
                return True  # a delivery made them meanwhile
            try:
                self._ensure_topics()
            except SinkUnavailable as exc:
                if self._stop.is_set() or self._interrupted.is_set():
                    return True  # stopping: nothing to retry or report
                log.warning("cannot create topics yet, retrying: %s", exc)
                return False
            return True

        retry_until(attempt, self._stop, initial=0.5, maximum=10.0)

    def create_topics(self, timeout: float = _CREATE_TOPICS_TIMEOUT_S) -> None:
        """Create the configured topics; existing ones are left as they are.

        Raises ``SinkUnavailable`` if the broker does not answer within ``timeout`` or the sink
        is shut down meanwhile (the wait is cut short, so shutdown never waits on a broker).
        """
        admin = AdminClient(self._config.client_config())
        wanted = [
            NewTopic(t, self._config.partitions, self._config.replication_factor)
            for t in self._topics
        ]
        futures = admin.create_topics(wanted, request_timeout=timeout, operation_timeout=timeout)
        deadline = time.monotonic() + timeout + 1
        pending = set(futures.values())
        while pending and time.monotonic() < deadline:
            if self._stop.is_set() or self._interrupted.is_set():
                raise SinkUnavailable("Kafka sink is shutting down")
            pending = concurrent.futures.wait(pending, timeout=0.1).not_done
        for topic, future in futures.items():
            try:
                future.result(timeout=0)
            except concurrent.futures.TimeoutError as exc:
                raise SinkUnavailable(f"timed out creating topic {topic}") from exc
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    continue
                raise SinkUnavailable(f"cannot create topic {topic}: {exc}") from exc


def _header(msg: Message, name: str) -> str:
    headers = msg.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    for key, value in pairs:
        if key == name and isinstance(value, bytes):
            return value.decode()
    return ""
