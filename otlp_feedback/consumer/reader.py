"""``FeedbackConsumer``: iterate the feedback topics as typed events, committing after processing.

Offsets (``enable.auto.commit`` is off; nothing is committed behind the caller's back):

- An event counts as *processed* once the caller asks the iterator for the next one, or calls
  ``commit()``. Leaving the loop (``break``, an exception) hands the event in hand back instead:
  iterating again, or the next consumer of the group, meets it again. At-least-once.
- A processed event's offset is stored locally and committed to the group asynchronously at most
  every ``commit_interval_s`` seconds, synchronously by ``commit()`` and ``close()``, and for the
  partitions a rebalance takes away just before they go.
- A record skipped under ``on_error="skip"`` counts as processed (the group moves past it).
- Under ``on_error="raise"`` the error ends the iteration and the consumer seeks back to the
  record, so iterating again meets it again; nothing from it onwards was committed.

Used by ``otlp-feedback tail`` and by downstream applications. Not thread-safe (one thread
iterates, as with confluent-kafka's ``Consumer``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import ClusterMetadata

from otlp_feedback.config import Settings
from otlp_feedback.consumer.decoder import EventDecoder, frame_schema_id
from otlp_feedback.encoding.schemas import SchemaSet
from otlp_feedback.errors import SinkUnavailable, UnreadableRecord
from otlp_feedback.events import EVENT_TYPES, EventType, FeedbackEvent
from otlp_feedback.registry.client import ConfluentRegistry, SchemaRegistry

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
_Position = tuple[str, int, int]  # topic, partition, offset

# Errors a consumer reports that leave it working; anything else ends the iteration.
_BENIGN = {KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART}


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """One typed event and where it was read from."""

    event: FeedbackEvent
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    schema_id: int
    """The writer schema's registry id (the reader schema is the decoder's choice)."""
    kafka_timestamp: datetime | None
    """The Kafka record time (when it was produced), not the event's own ``timestamp``."""


class FeedbackConsumer:
    """Iterates typed events from the feedback topics of ``settings``.

    ``group_id`` names the consumer group whose committed offsets say where to resume; without
    one, an ephemeral group is used and commits are moot. ``from_beginning`` starts a group with
    no committed offsets at the oldest record instead of the newest. ``event_types`` limits the
    topics read (default: all five). ``reader_versions`` pins reader schema versions per type
    (see ``EventDecoder``). ``on_error`` says what an unreadable record (``UnreadableRecord``:
    ``CorruptFrame``, ``UnknownSchemaId``) does: ``"raise"`` it, or ``"skip"`` it, counted in
    ``skipped`` and logged as a warning. ``RegistryUnavailable`` and ``SinkUnavailable`` are
    always raised: skipping on them would lose records that are fine.

    Raises ``SchemaError`` for a pinned version with no local schema.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
        event_types: Iterable[EventType] | None = None,
        reader_versions: Mapping[EventType, int] | None = None,
        on_error: OnError = "raise",
        commit_interval_s: float = 1.0,
        registry: SchemaRegistry | None = None,
        schemas: SchemaSet | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        all_topics = {settings.kafka.topic_for(t): t for t in EVENT_TYPES}
        wanted = set(event_types) if event_types is not None else set(EVENT_TYPES)
        self.topics = [topic for topic, t in all_topics.items() if t in wanted]
        self.decoder = EventDecoder(
            registry or ConfluentRegistry(settings.registry.client_config()),
            all_topics,
            schemas=schemas,
            reader_versions=reader_versions,
        )
        self._on_error = on_error
        self._bootstrap = settings.kafka.bootstrap_servers
        self._commit_interval_s = commit_interval_s
        self.skipped = 0
        self._held: _Position | None = None  # yielded to the caller, not yet processed
        self._uncommitted = False  # offsets stored since the last commit
        self._last_commit = time.monotonic()
        self._warned_topics: set[str] = set()
        self._closed = False
        self._consumer = Consumer(
            {
                **settings.kafka.client_config(),
                "group.id": group_id or f"otlp-feedback-tail-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Joins are slow on some brokers (Tansu) with the 45 s default.
                "session.timeout.ms": 6000,
                "on_commit": self._on_commit_result,
            }
        )
        # When the group first handed this consumer its partitions (possibly none): the idle
        # clock starts there, not at construction, so a slow join is not mistaken for silence.
        self._assigned_at: float | None = None
        self._consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def __iter__(self) -> Iterator[ConsumedEvent]:
        return self.records()

    def records(self, *, idle_timeout: float | None = None) -> Generator[ConsumedEvent, None, None]:
        """Yield events as they arrive; stop after ``idle_timeout`` seconds in which no record
        arrived (None: never), counted from the group's first assignment at the earliest (a
        group join takes seconds on some brokers; until it completes nothing can arrive).
        Asking for the next event marks the previous one processed.

        Raises ``UnreadableRecord`` (with ``on_error="raise"``), ``RegistryUnavailable`` and
        ``SinkUnavailable`` (a consumer error other than end-of-partition / unknown topic).
        """
        last_record = time.monotonic()
        while not self._closed:
            msg = self._consumer.poll(0.5)
            if msg is None:
                self._maybe_commit()
                if (
                    idle_timeout is not None
                    and self._assigned_at is not None
                    and time.monotonic() - max(last_record, self._assigned_at) > idle_timeout
                ):
                    return
                continue
            if self._is_benign_error(msg):
                continue
            last_record = time.monotonic()
            consumed = self._read(msg)
            if consumed is None:  # skipped
                self._mark_processed(_position(msg))
                continue
            held = self._held = _position(msg)
            try:
                yield consumed
            except GeneratorExit:
                # The caller left the loop (break, exception) without processing the event:
                # hand it back, so iterating again meets it again.
                if self._held is held:
                    self._held = None
                    self._seek_back(held)
                raise
            # The caller asked for more: the event it held is processed.
            self._process_held()
            self._maybe_commit()

    def events(self, *, idle_timeout: float | None = None) -> Generator[FeedbackEvent, None, None]:
        """``records()`` without the Kafka coordinates: the typed events alone, same contract."""
        for item in self.records(idle_timeout=idle_timeout):
            yield item.event

    def check_broker(self, timeout: float) -> None:
        """Raise ``SinkUnavailable`` unless a broker answers a metadata request within
        ``timeout`` seconds (a consumer alone would wait for one in silence)."""
        cluster_metadata(self._consumer, self._bootstrap, timeout)

    def commit(self) -> None:
        """Mark the event in hand processed and commit every processed offset, synchronously.

        Raises ``SinkUnavailable`` if the broker refuses or cannot be reached.
        """
        self._process_held()
        self._commit(asynchronous=False)

    def close(self) -> None:
        """Commit processed offsets (not the event in hand) and leave the group. Idempotent.

        A failed final commit is logged, not raised: those events will be delivered again.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._commit(asynchronous=False)
        except SinkUnavailable as exc:
            log.warning("final commit failed; uncommitted events will be read again: %s", exc)
        self._consumer.close()

    def __enter__(self) -> FeedbackConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    def _read(self, msg: Message) -> ConsumedEvent | None:
        topic, partition, offset = position = _position(msg)
        headers = _headers(msg)
        value = msg.value()
        try:
            event = self.decoder.decode(topic, value, headers)
        except UnreadableRecord as exc:
            exc.topic, exc.partition, exc.offset = topic, partition, offset
            if self._on_error == "raise":
                self._seek_back(position)
                raise
            self.skipped += 1
            log.warning("skipped unreadable record %s[%d]@%d: %s", topic, partition, offset, exc)
            return None
        ts_type, ts_ms = msg.timestamp()
        return ConsumedEvent(
            event=event,
            topic=topic,
            partition=partition,
            offset=offset,
            key=msg.key(),
            headers=headers,
            schema_id=frame_schema_id(value),
            kafka_timestamp=(
                None
                if ts_type == TIMESTAMP_NOT_AVAILABLE
                else datetime.fromtimestamp(ts_ms / 1000, UTC)
            ),
        )

    def _is_benign_error(self, msg: Message) -> bool:
        error = msg.error()
        if error is None:
            return False
        if error.code() not in _BENIGN:
            raise SinkUnavailable(f"consumer error: {error.str()}")
        topic = msg.topic() or ""
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART and topic not in self._warned_topics:
            self._warned_topics.add(topic)
            log.warning("topic %s does not exist (yet); waiting for it", topic)
        return True

    def _process_held(self) -> None:
        if self._held is not None:
            self._mark_processed(self._held)
            self._held = None

    def _mark_processed(self, position: _Position) -> None:
        topic, partition, offset = position
        try:
            # The committed offset is the next record to read.
            self._consumer.store_offsets(offsets=[TopicPartition(topic, partition, offset + 1)])
        except KafkaException as exc:
            # The partition was revoked meanwhile; its new owner reads the record again.
            log.info("not storing the offset of %s[%d]@%d: %s", topic, partition, offset, exc)
            return
        self._uncommitted = True

    def _maybe_commit(self) -> None:
        if self._uncommitted and time.monotonic() - self._last_commit >= self._commit_interval_s:
            self._commit(asynchronous=True)

    def _commit(self, *, asynchronous: bool) -> None:
        if not self._uncommitted:
            return
        try:
            if asynchronous:
                self._consumer.commit(asynchronous=True)
            else:
                self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise SinkUnavailable(f"committing offsets failed: {exc}") from exc
        self._uncommitted = False
        self._last_commit = time.monotonic()

    def _seek_back(self, position: _Position) -> None:
        if self._closed:
            return
        try:
            self._consumer.seek(TopicPartition(*position))
        except KafkaException as exc:
            log.info("could not seek back to %s[%d]@%d: %s", *position, exc)

    def _on_commit_result(self, error: KafkaError | None, _: list[TopicPartition]) -> None:
        # Asynchronous commits report here (from poll, on this thread). After a failure the
        # stored offsets are committed again at the next opportunity.
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.warning("committing offsets failed, will retry: %s", error.str())
            self._uncommitted = True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._assigned_at is None:
            self._assigned_at = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what was processed on the partitions that are leaving, while they are ours.
        # (No event is in the caller's hands here: poll runs only after it was processed.)
        try:
            self._commit(asynchronous=False)
        except SinkUnavailable as exc:
            log.warning("commit on rebalance failed; events will be read again: %s", exc)


def _position(msg: Message) -> _Position:
    return msg.topic() or "", msg.partition() or 0, msg.offset() or 0


def _headers(msg: Message) -> tuple[tuple[str, bytes | None], ...]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)


def cluster_metadata(
    consumer: Consumer, bootstrap: str, timeout: float, topic: str | None = None
) -> ClusterMetadata:
    """The cluster's metadata (``topic``'s alone, if given), asked of ``bootstrap`` through
    ``consumer``. Raises ``SinkUnavailable`` saying how to start a broker unless one answers
    within ``timeout`` seconds (a consumer alone would wait for one in silence)."""
    try:
        return consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise SinkUnavailable(
            f"no Kafka broker answered at {bootstrap} within {timeout:g}s ({exc}); "
            "start one with `otlp-feedback dev`, or set kafka.bootstrap_servers"
        ) from exc
