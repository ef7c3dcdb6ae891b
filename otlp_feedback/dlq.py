"""Dead letters: read them (``tail_dead_letters``), and replay refused records once their
cause is fixed.

``otlp-feedback dlq tail`` reads the dead-letter topic without a consumer group (every
partition assigned at once, so there is no join to wait for and nothing is committed), from
the end or, with ``--from-beginning``, from the oldest letter, and prints each letter (why it
was refused, then the record as sent) as ``tail`` prints events.

``otlp-feedback dlq replay`` reads the dead-letter topic from the replay group's committed
offsets up to the end offsets seen at start (so letters that fail again, and are dead-lettered
again at the end of the topic, are not re-read in the same run), maps each stored source record
again with its original event id, and runs it through the pipeline (``export_events``: the
entry for records that arrive already mapped). Offsets are committed only
after the batch's outcome is confirmed: replayed events are in Kafka, still-failing ones are
back on the dead-letter topic with the new reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from otlp_feedback.config import Settings
from otlp_feedback.consumer.reader import cluster_metadata
from otlp_feedback.encoding.dead_letter import DeadLetter, from_value, read_value
from otlp_feedback.errors import ConfigError, InvalidRequest, SinkUnavailable
from otlp_feedback.mapping import events_api
from otlp_feedback.mapping.events_api import CARRIER
from otlp_feedback.mapping.records import RawFeedback, raw_from_source
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import ConfluentRegistry
from otlp_feedback.sinks.kafka import KafkaSink

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    read: int = 0
    replayed: int = 0
    still_failing: int = 0
    unreadable: int = 0


@dataclass(frozen=True)
class ReadLetter:
    """One dead letter as read: decoded, with its stored JSON body and where it was."""

    letter: DeadLetter
    body: dict[str, Any]
    partition: int
    offset: int


def tail_dead_letters(
    settings: Settings,
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    broker_timeout: float = 10.0,
) -> Iterator[ReadLetter]:
    """Yield the dead letters of ``kafka.dlq_topic`` as they arrive (from the oldest with
    ``from_beginning``); stop after ``idle_timeout`` seconds without one (None: never). A value
    that is not a dead letter is logged and skipped.

    Raises ``ConfigError`` without a dead-letter topic, ``SinkUnavailable`` if no broker
    answers within ``broker_timeout`` seconds.
    """
    topic = settings.kafka.dlq_topic
    if not topic:
        raise ConfigError("invalid configuration: kafka.dlq_topic is not set")
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": "otlp-feedback-dlq-tail",  # required by librdkafka; never joined
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = cluster_metadata(
            consumer, settings.kafka.bootstrap_servers, broker_timeout, topic
        )
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            log.warning("dead-letter topic %s does not exist (yet): no dead letters", topic)
            return
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in found.partitions])
        last = time.monotonic()
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise SinkUnavailable(f"consumer error: {error.str()}")
            last = time.monotonic()
            try:
                letter, body = read_value(msg.value() or b"")
            except InvalidRequest as exc:
                log.warning("skipping unreadable dead letter at offset %s: %s", msg.offset(), exc)
                continue
            yield ReadLetter(letter, body, msg.partition() or 0, msg.offset() or 0)
    finally:
        consumer.close()


def replay_dead_letters(
    settings: Settings,
    *,
    group_id: str = "otlp-feedback-dlq-replay",
    batch_size: int = 500,
    poll_timeout_s: float = 30.0,
) -> ReplayReport:
    """Replay every dead letter up to the current end of the topic. Raises on delivery failure
    (nothing is committed for the failed batch, so the next run retries it)."""
    topic = settings.kafka.dlq_topic
    if not topic:
        raise ConfigError("invalid configuration: kafka.dlq_topic is not set")
    # Just the pipeline into Kafka: no receiver, metrics or spool (a failed batch is not
    # committed, so the next run retries it; the receiver's spool directory stays its own).
    pipeline = Pipeline(
        settings,
        ConfluentRegistry(settings.registry.client_config()),
        KafkaSink(settings.kafka, settings.kafka.all_topics()),
    )
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    report = ReplayReport()
    pipeline.start()
    try:
        end = _end_offsets(consumer, topic)
        starts = [_committed_or_start(consumer, topic, p) for p in end]
        consumer.assign(starts)
        remaining = {tp.partition for tp in starts if tp.offset < end[tp.partition]}
        idle_since = time.monotonic()
        while remaining:
            messages = consumer.consume(batch_size, 0.5)
            if not messages:
                if time.monotonic() - idle_since > poll_timeout_s:
                    raise InvalidRequest(f"no dead letters arrived within {poll_timeout_s}s")
                continue
            idle_since = time.monotonic()
            batch = []
            for m in messages:
                partition, offset = m.partition(), m.offset()
                if m.error() is not None or partition is None or offset is None:
                    continue
                if offset < end[partition]:
                    batch.append(m)
                if offset + 1 >= end[partition]:
                    remaining.discard(partition)
            _replay_batch(pipeline, batch, report)
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
        pipeline.shutdown()
    return report


def _replay_batch(pipeline: Pipeline, batch: list[Message], report: ReplayReport) -> None:
    feedback: list[RawFeedback] = []
    for msg in batch:
        report.read += 1
        try:
            letter = from_value(msg.value() or b"")
        except InvalidRequest as exc:
            log.warning("skipping unreadable dead letter at offset %d: %s", msg.offset(), exc)
            report.unreadable += 1
            continue
        # Each door's records are mapped again by that door's mapping.
        remap = events_api.raw_from_source if letter.source.carrier == CARRIER else raw_from_source
        feedback.append(remap(letter.source, letter.location, letter.event_id))
    outcome = pipeline.export_events(feedback)
    report.replayed += outcome.accepted
    report.still_failing += outcome.rejected


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in partitions
    }


def _committed_or_start(consumer: Consumer, topic: str, partition: int) -> TopicPartition:
    (committed,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
    offset: Any = committed.offset if committed.offset >= 0 else 0
    return TopicPartition(topic, partition, offset)
