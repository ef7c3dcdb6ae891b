"""The read side without a broker: decoding and projection (``EventDecoder`` fed raw bytes), and
``FeedbackConsumer``'s commit-after-processing and error contract over a scripted Kafka double.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import fastavro
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, KafkaException, TopicPartition

from otlp_feedback.config import Settings
from otlp_feedback.consumer import ConsumedEvent, EventDecoder, FeedbackConsumer, frame_schema_id
from otlp_feedback.consumer import reader as reader_module
from otlp_feedback.encoding import AvroEventSerializer, LocalSchema, load_schemas
from otlp_feedback.errors import (
    CorruptFrame,
    RegistryUnavailable,
    SchemaError,
    SinkUnavailable,
    UnknownSchemaId,
    UnreadableRecord,
)
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType, FeedbackEvent
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.testing.events import sample_events

SCHEMAS = load_schemas()
EVENTS = sample_events()
TOPICS: dict[str, EventType] = {f"feedback.{t}": t for t in EVENT_TYPES}
PM_TOPIC = "feedback.performance_metrics"


def register(registry: InMemoryRegistry, schema: LocalSchema | dict[str, Any]) -> int:
    text = schema.text if isinstance(schema, LocalSchema) else json.dumps(schema)
    return registry.register("any-value", text)


def frame(registry: InMemoryRegistry, event: FeedbackEvent, version: int | None = None) -> bytes:
    """``event`` as the pipeline writes it, with the newest (or the given) schema version."""
    t = event.event_type
    schema = SCHEMAS.latest(t) if version is None else SCHEMAS.version(t, version)
    return AvroEventSerializer(schema, register(registry, schema))(event)


def frame_with(registry: InMemoryRegistry, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """``record`` written with an arbitrary writer schema (one no local file has)."""
    body = BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return struct.pack(">bI", 0, register(registry, schema)) + body.getvalue()


def with_extra_field(schema: LocalSchema, name: str) -> dict[str, Any]:
    """``schema`` plus one optional field at the end: what a future producer version writes."""
    definition = json.loads(schema.text)
    definition["fields"].append({"name": name, "type": ["null", "string"], "default": None})
    return definition


@pytest.fixture
def decoder(registry: InMemoryRegistry) -> EventDecoder:
    return EventDecoder(registry, TOPICS)


# --- decoding and projection ----------------------------------------------------------------


def test_sample_events_set_every_field_away_from_its_default() -> None:
    # Guards the round-trip tests below: a field left at its default would not be exercised.
    for event in EVENTS.values():
        for name, info in type(event).model_fields.items():
            default = info.get_default(call_default_factory=True)
            assert getattr(event, name) != default, f"{event.event_type}.{name}"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_decodes_to_an_equal_typed_event(
    decoder: EventDecoder, registry: InMemoryRegistry, event_type: EventType
) -> None:
    sent = EVENTS[event_type]
    got = decoder.decode(f"feedback.{event_type}", frame(registry, sent))
    assert type(got) is EVENT_MODELS[event_type]
    assert got == sent


def test_default_reader_is_the_newest_local_schema_of_each_type(decoder: EventDecoder) -> None:
    for event_type in EVENT_TYPES:
        assert decoder.reader_schema(event_type) == SCHEMAS.latest(event_type)


def test_v1_data_read_with_the_newest_reader_gets_defaults_for_newer_fields(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    sent = EVENTS["performance_metrics"]
    got = decoder.decode(PM_TOPIC, frame(registry, sent, version=1))
    v1_fields = {f["name"] for f in SCHEMAS.version("performance_metrics", 1).definition["fields"]}
    newer = set(type(sent).model_fields) - v1_fields
    assert newer == {
        "cache_read_input_tokens", "reasoning_output_tokens", "client_id", "redacted_fields",
        "tokens_total",
    }  # fmt: skip
    defaults = {name: type(sent).model_fields[name].get_default(call_default_factory=True)
                for name in newer}  # fmt: skip
    assert got == sent.model_copy(update=defaults)


def test_pinned_v1_reader_reads_newest_data_and_newer_fields_take_model_defaults(
    registry: InMemoryRegistry,
) -> None:
    pinned = EventDecoder(registry, TOPICS, reader_versions={"performance_metrics": 1})
    sent = EVENTS["performance_metrics"]
    assert sent.cache_read_input_tokens == 64  # type: ignore[attr-defined]

    got = pinned.decode(PM_TOPIC, frame(registry, sent))

    assert pinned.reader_schema("performance_metrics").version == 1
    assert got == sent.model_copy(
        update={
            "cache_read_input_tokens": None,
            "reasoning_output_tokens": None,
            "client_id": None,
            "redacted_fields": [],
            # The v1 reader has no total, and reading back (READ_BACK) derives none.
            "tokens_total": None,
        }
    )
    # Other types still read with their newest version.
    assert pinned.reader_schema("model_response") == SCHEMAS.latest("model_response")


def test_fields_from_a_future_writer_version_are_dropped(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    sent = EVENTS["user_feedback"]
    future = with_extra_field(SCHEMAS.latest("user_feedback"), "sentiment")
    value = frame_with(registry, future, {**sent.__dict__, "sentiment": "positive"})
    assert decoder.decode("feedback.user_feedback", value) == sent


def test_pinning_a_version_that_has_no_local_schema_is_a_schema_error(
    registry: InMemoryRegistry,
) -> None:
    with pytest.raises(SchemaError, match="no local schema performance_metrics v99"):
        EventDecoder(registry, TOPICS, reader_versions={"performance_metrics": 99})
    with pytest.raises(SchemaError, match="unknown event type 'nope'"):
        EventDecoder(registry, TOPICS, reader_versions={"nope": 1})  # type: ignore[dict-item]


class CountingRegistry(InMemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[int] = []

    def schema_text(self, schema_id: int) -> str:
        self.fetched.append(schema_id)
        return super().schema_text(schema_id)


def test_writer_schema_is_fetched_from_the_registry_once_per_id() -> None:
    registry = CountingRegistry()
    decoder = EventDecoder(registry, TOPICS)
    values = [frame(registry, e) for e in sample_events(1).values()]
    values += [frame(registry, e) for e in sample_events(2).values()]
    for n, value in enumerate(values):
        decoder.decode(f"feedback.{EVENT_TYPES[n % 5]}", value)
    assert sorted(registry.fetched) == sorted({frame_schema_id(v) for v in values})


def test_event_type_comes_from_the_topic_else_from_the_event_type_header(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    sent = EVENTS["system_health"]
    value = frame(registry, sent)
    assert decoder.decode("mirror.health", value, [("event_type", b"system_health")]) == sent
    with pytest.raises(UnreadableRecord, match="cannot tell the event type"):
        decoder.decode("mirror.health", value, [("event_type", b"bogus")])


# --- unreadable records -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(None, r"too short .*no value", id="tombstone"),
        pytest.param(b"", r"too short .*0 bytes", id="empty"),
        pytest.param(b"\x00\x00\x01", r"too short .*3 bytes", id="shorter-than-header"),
        pytest.param(b"\x01\x00\x00\x00\x01{}", r"magic byte is 0x01", id="wrong-magic"),
        pytest.param(b'{"event_id": "x"}', r"magic byte is 0x7b", id="json"),
    ],
)
def test_a_value_that_is_not_a_confluent_frame_is_a_corrupt_frame(
    decoder: EventDecoder, value: bytes | None, problem: str
) -> None:
    with pytest.raises(CorruptFrame, match=problem):
        decoder.decode(PM_TOPIC, value)


def test_a_truncated_body_is_a_corrupt_frame(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    value = frame(registry, EVENTS["performance_metrics"])
    with pytest.raises(CorruptFrame, match="body does not decode with schema id"):
        decoder.decode(PM_TOPIC, value[:-10])


def test_a_garbage_body_is_a_corrupt_frame(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    schema_id = register(registry, SCHEMAS.latest("performance_metrics"))
    value = struct.pack(">bI", 0, schema_id) + b"\xff" * 40
    with pytest.raises(CorruptFrame):
        decoder.decode(PM_TOPIC, value)


def test_bytes_after_the_body_make_a_corrupt_frame(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    value = frame(registry, EVENTS["performance_metrics"]) + b"\x00\x00"
    with pytest.raises(CorruptFrame, match="2 bytes left over"):
        decoder.decode(PM_TOPIC, value)


def test_a_schema_id_the_registry_does_not_know_is_unknown_schema_id(
    decoder: EventDecoder,
) -> None:
    with pytest.raises(UnknownSchemaId, match="schema id 4242 is unknown"):
        decoder.decode(PM_TOPIC, struct.pack(">bI", 0, 4242) + b"\x00")


def test_a_schema_id_naming_something_other_than_avro_is_unknown_schema_id(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    schema_id = registry.register("x-value", json.dumps({"type": "no-such-type"}))
    with pytest.raises(UnknownSchemaId, match="not a usable Avro schema"):
        decoder.decode(PM_TOPIC, struct.pack(">bI", 0, schema_id) + b"\x00")


def test_another_types_record_on_a_topic_is_unreadable_but_not_corrupt(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    value = frame(registry, EVENTS["user_feedback"])
    newest = SCHEMAS.latest("performance_metrics").version
    expected = f"cannot be read as performance_metrics v{newest}"
    with pytest.raises(UnreadableRecord, match=expected) as err:
        decoder.decode(PM_TOPIC, value)
    assert not isinstance(err.value, CorruptFrame | UnknownSchemaId)


def test_a_record_that_fails_the_models_validation_is_unreadable(
    decoder: EventDecoder, registry: InMemoryRegistry
) -> None:
    record = {**EVENTS["user_feedback"].__dict__, "rating": 9.0}
    value = frame_with(registry, SCHEMAS.latest("user_feedback").definition, record)
    with pytest.raises(UnreadableRecord, match=r"not a valid user_feedback .*rating"):
        decoder.decode("feedback.user_feedback", value)


class DownRegistry(InMemoryRegistry):
    def schema_text(self, schema_id: int) -> str:
        raise RegistryUnavailable("schema registry unreachable")


def test_an_unreachable_registry_is_retryable_not_an_unreadable_record() -> None:
    value = frame(InMemoryRegistry(), EVENTS["user_feedback"])
    with pytest.raises(RegistryUnavailable):
        EventDecoder(DownRegistry(), TOPICS).decode("feedback.user_feedback", value)


def test_frame_schema_id_reads_the_big_endian_id() -> None:
    assert frame_schema_id(b"\x00\x00\x01\x00\x02rest") == 65538


# --- FeedbackConsumer over a scripted Kafka double ---------------------------------------------


class FakeMessage:
    def __init__(
        self,
        topic: str,
        offset: int,
        value: bytes | None,
        partition: int = 0,
        error: KafkaError | None = None,
    ) -> None:
        self._topic, self._offset, self._value = topic, offset, value
        self._partition, self._error = partition, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"k-%d" % self._offset

    def headers(self) -> list[tuple[str, bytes]]:
        return [("event_id", b"e-%d" % self._offset)]

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 1_740_832_215_000

    def error(self) -> KafkaError | None:
        return self._error


REVOKE = object()  # in the log: the group takes partition 0 away at this point


class FakeKafka:
    """Stands in for ``confluent_kafka.Consumer``: serves ``log`` in order (``seek`` rewinds),
    and records stored and committed offsets by (topic, partition)."""

    last: FakeKafka

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.log: list[Any] = []
        self.position = 0
        self.stored: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.sync_commits = 0
        self.async_commits = 0
        self.failing_async_commits = 0
        self.commit_reports: list[KafkaError] = []  # delivered to on_commit at the next poll
        self.closed = False
        FakeKafka.last = self

    join_polls = 0  # polls before the group assigns partitions (a slow join)

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self.topics = topics
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.polls = 0

    def poll(self, timeout: float) -> FakeMessage | None:
        assert not self.closed
        self.polls += 1
        if self.polls <= self.join_polls:
            return None
        if self.polls == self.join_polls + 1:
            self.on_assign(self, [TopicPartition(PM_TOPIC, 0)])
        while self.commit_reports:
            self.conf["on_commit"](self.commit_reports.pop(0), [])
        while self.position < len(self.log):
            item = self.log[self.position]
            self.position += 1
            if item is REVOKE:
                self.on_revoke(self, [TopicPartition(PM_TOPIC, 0)])
                self.stored.clear()
                continue
            return item
        return None

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.stored[(tp.topic, tp.partition)] = tp.offset

    def commit(self, asynchronous: bool = True) -> None:
        if not self.stored:
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        if asynchronous:
            self.async_commits += 1
            if self.failing_async_commits:
                self.failing_async_commits -= 1
                self.commit_reports.append(KafkaError(KafkaError.REQUEST_TIMED_OUT))
                return
        self.committed.update(self.stored)
        self.sync_commits += not asynchronous

    def seek(self, tp: TopicPartition) -> None:
        self.position = next(
            i
            for i, m in enumerate(self.log)
            if isinstance(m, FakeMessage) and (m.topic(), m.offset()) == (tp.topic, tp.offset)
        )

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeKafka]]:
    monkeypatch.setattr(reader_module, "Consumer", FakeKafka)
    yield FakeKafka


def consumer_over(
    settings: Settings, registry: InMemoryRegistry, log: list[Any], **options: Any
) -> FeedbackConsumer:
    consumer = FeedbackConsumer(settings, registry=registry, **options)
    FakeKafka.last.log = log
    return consumer


def pm_log(registry: InMemoryRegistry, count: int) -> list[Any]:
    return [
        FakeMessage(PM_TOPIC, n, frame(registry, sample_events(n)["performance_metrics"]))
        for n in range(count)
    ]


def ids(items: list[ConsumedEvent]) -> list[str]:
    return [item.event.event_id for item in items]


def test_kafka_auto_commit_is_off_and_the_session_timeout_suits_slow_joins(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    FeedbackConsumer(settings, registry=registry, group_id="g", from_beginning=True)
    conf = kafka.last.conf
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["session.timeout.ms"] == 6000
    assert (conf["group.id"], conf["auto.offset.reset"]) == ("g", "earliest")


def test_only_the_chosen_event_types_topics_are_read(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    FeedbackConsumer(settings, registry=registry, event_types=["system_health", "user_feedback"])
    assert sorted(kafka.last.topics) == ["feedback.system_health", "feedback.user_feedback"]


def test_consumed_event_says_where_it_was_read_from(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    log = pm_log(registry, 1)
    consumer = consumer_over(settings, registry, log)
    (item,) = consumer.records(idle_timeout=0)
    assert item.event == sample_events(0)["performance_metrics"]
    assert (item.topic, item.partition, item.offset, item.key) == (PM_TOPIC, 0, 0, b"k-0")
    assert item.headers == (("event_id", b"e-0"),)
    assert item.schema_id == frame_schema_id(log[0].value())
    assert item.kafka_timestamp is not None and item.kafka_timestamp.year == 2025


def test_an_event_is_committed_only_once_the_caller_asks_for_the_next(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 3), commit_interval_s=0)
    events = consumer.records(idle_timeout=0)

    assert next(events).offset == 0
    assert kafka.last.committed == {}  # in the caller's hands: not processed yet
    assert next(events).offset == 1
    assert kafka.last.committed == {(PM_TOPIC, 0): 1}  # the next offset to read


def test_processed_offsets_wait_for_the_commit_interval_or_close(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 3), commit_interval_s=3600)
    events = consumer.records(idle_timeout=0)
    next(events), next(events), next(events)
    assert kafka.last.committed == {}

    events.close()
    consumer.close()
    assert kafka.last.committed == {(PM_TOPIC, 0): 2}  # the 3rd was in hand: not processed
    assert kafka.last.closed


def test_a_failed_asynchronous_commit_is_retried_at_the_next_opportunity(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 1), commit_interval_s=0)
    kafka.last.failing_async_commits = 1

    assert [item.offset for item in consumer.records(idle_timeout=0)] == [0]

    assert kafka.last.async_commits == 2
    assert kafka.last.committed == {(PM_TOPIC, 0): 1}


def test_leaving_the_loop_hands_the_event_back_and_iterating_again_meets_it(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 4))
    for item in consumer:
        if item.offset == 1:
            break  # offset 0 processed, offset 1 not

    again = list(consumer.records(idle_timeout=0))

    assert [item.offset for item in again] == [1, 2, 3]


def test_an_exception_in_the_callers_loop_does_not_commit_the_event_in_hand(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 3))
    with pytest.raises(RuntimeError):
        for item in consumer.records(idle_timeout=0):
            if item.offset == 1:
                raise RuntimeError("handler failed")
    consumer.close()
    assert kafka.last.committed == {(PM_TOPIC, 0): 1}


def test_events_gives_the_typed_events_alone_under_the_same_contract(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 3))
    events = consumer.events(idle_timeout=0)
    assert next(events) == sample_events(0)["performance_metrics"]
    next(events)
    events.close()  # left with offset 1 in hand

    assert [e.event_id for e in consumer.events(idle_timeout=0)] == [
        "performance_metrics-1",
        "performance_metrics-2",
    ]


def test_commit_marks_the_event_in_hand_processed_and_commits_synchronously(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = consumer_over(settings, registry, pm_log(registry, 3), commit_interval_s=3600)
    events = consumer.records(idle_timeout=0)
    next(events), next(events)

    consumer.commit()

    assert kafka.last.committed == {(PM_TOPIC, 0): 2}
    assert kafka.last.sync_commits == 1
    assert next(events).offset == 2


def test_close_is_idempotent_and_commits_nothing_when_nothing_was_processed(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    with consumer_over(settings, registry, []) as consumer:
        assert list(consumer.records(idle_timeout=0)) == []
    consumer.close()
    assert kafka.last.closed and kafka.last.committed == {}


def test_skip_counts_logs_and_moves_past_unreadable_records(
    kafka: type[FakeKafka],
    settings: Settings,
    registry: InMemoryRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = pm_log(registry, 4)
    log = [good[0], FakeMessage(PM_TOPIC, 1, b"\x07junk"), good[2], good[3]]
    consumer = consumer_over(settings, registry, log, on_error="skip")

    with caplog.at_level(logging.WARNING):
        read = list(consumer.records(idle_timeout=0))
    consumer.close()

    assert [item.offset for item in read] == [0, 2, 3]
    assert consumer.skipped == 1
    assert f"skipped unreadable record {PM_TOPIC}[0]@1: magic byte is 0x07" in caplog.text
    assert kafka.last.committed == {(PM_TOPIC, 0): 4}  # the skipped one is passed too


def test_raise_names_the_record_and_iterating_again_meets_it_again(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    good = pm_log(registry, 3)
    log = [good[0], FakeMessage(PM_TOPIC, 1, b"\x00\x00\x00\x10\x00\x00"), good[2]]
    consumer = consumer_over(settings, registry, log)

    read: list[ConsumedEvent] = []
    with pytest.raises(UnknownSchemaId) as err:
        read.extend(consumer.records(idle_timeout=0))
    with pytest.raises(UnknownSchemaId):
        list(consumer.records(idle_timeout=0))
    consumer.close()

    assert ids(read) == ["performance_metrics-0"]
    assert (err.value.topic, err.value.partition, err.value.offset) == (PM_TOPIC, 0, 1)
    assert kafka.last.committed == {(PM_TOPIC, 0): 1}  # not past the bad record


def test_an_unreachable_registry_is_raised_even_when_skipping(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    consumer = FeedbackConsumer(settings, registry=DownRegistry(), on_error="skip")
    kafka.last.log = pm_log(registry, 1)
    with pytest.raises(RegistryUnavailable):
        list(consumer.records(idle_timeout=0))
    assert consumer.skipped == 0


def test_a_rebalance_commits_what_was_processed_before_the_partitions_go(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    good = pm_log(registry, 3)
    consumer = consumer_over(
        settings, registry, [good[0], good[1], REVOKE, good[2]], commit_interval_s=3600
    )
    read = list(consumer.records(idle_timeout=0))
    assert [item.offset for item in read] == [0, 1, 2]
    assert kafka.last.committed == {(PM_TOPIC, 0): 2}  # at the revocation, 0 and 1 were done


def test_a_kafka_error_other_than_a_missing_topic_ends_the_iteration(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    missing = FakeMessage(PM_TOPIC, 0, None, error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    broken = FakeMessage(PM_TOPIC, 0, None, error=KafkaError(KafkaError._AUTHENTICATION))
    consumer = consumer_over(settings, registry, [missing, *pm_log(registry, 1), broken])
    events = consumer.records(idle_timeout=0)
    assert next(events).offset == 0
    with pytest.raises(SinkUnavailable, match="consumer error"):
        next(events)


def test_on_error_must_be_raise_or_skip(
    kafka: type[FakeKafka], settings: Settings, registry: InMemoryRegistry
) -> None:
    with pytest.raises(ValueError, match="on_error"):
        FeedbackConsumer(settings, registry=registry, on_error="ignore")  # type: ignore[arg-type]


def test_the_idle_clock_starts_when_the_group_assigns_partitions(
    kafka: type[FakeKafka],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    registry: InMemoryRegistry,
) -> None:
    # A join that takes four polls of a clock that advances one second each: with the clock
    # started at construction, idle_timeout=3 would end the iteration before the record came.
    now = iter(range(1000))
    monkeypatch.setattr(reader_module.time, "monotonic", lambda: float(next(now)))
    monkeypatch.setattr(FakeKafka, "join_polls", 4)
    consumer = consumer_over(settings, registry, pm_log(registry, 1))
    assert [item.offset for item in consumer.records(idle_timeout=3)] == [0]
