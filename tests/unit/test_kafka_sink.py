"""KafkaSink without a broker: how it classifies librdkafka's errors (every code, decided), and
what it does with a stuck producer, a full queue, refused records and fatal errors, against
stand-ins for ``confluent_kafka.Producer`` (``otlp_feedback.testing.kafka.FakeKafka``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.config import load_config
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import (
    DeliveryFailed,
    DeliveryTimeout,
    RetryableError,
    SinkUnavailable,
)
from otlp_feedback.sinks.kafka import KafkaSink
from otlp_feedback.testing.kafka import FakeKafka


class StuckProducer:
    """Queues everything and confirms nothing; ``flush`` reports what is still queued."""

    built: ClassVar[list[StuckProducer]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.queued = 0
        self.purged = False
        StuckProducer.built.append(self)

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None:
        self.queued += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return self.queued

    def purge(self, **kwargs: Any) -> None:
        self.purged = True
        self.queued = 0


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaSink]:
    StuckProducer.built = []
    monkeypatch.setattr(kafka_sink, "Producer", StuckProducer)
    running = KafkaSink(load_config(kafka={"create_topics": False}).kafka, ["feedback.t"])
    running.start()
    yield running
    running.shutdown(0.1)


def _record() -> OutboundRecord:
    return OutboundRecord("feedback.t", b"k", b"v", [], "id-1", "user_feedback")


def test_force_flush_replaces_a_producer_that_timed_out_instead_of_waiting_on_it(
    sink: KafkaSink,
) -> None:
    with pytest.raises(DeliveryTimeout):
        sink.deliver([_record()], timeout=0.05)
    stuck = StuckProducer.built[-1]
    assert stuck.queued == 1  # its caller was told it failed (and spools or retries it)

    assert sink.force_flush(0.1)
    assert stuck.purged and len(StuckProducer.built) == 2
    assert sink.rebuilds == 1


def test_force_flush_waits_on_a_healthy_producer(sink: KafkaSink) -> None:
    StuckProducer.built[-1].queued = 3  # in flight, no timeout seen: not a reason to replace
    assert not sink.force_flush(0.1)
    assert len(StuckProducer.built) == 1


# -- the error classification: every code confluent-kafka defines, decided -------------------


def _names(text: str) -> list[str]:
    return text.split()


# Refused for good: the record (size, content) or a rule of its topic. Dead-lettered.
PERMANENT = _names("""
    INVALID_MSG_SIZE MSG_SIZE_TOO_LARGE RECORD_LIST_TOO_LARGE INVALID_RECORD POLICY_VIOLATION
    TOPIC_EXCEPTION TOPIC_AUTHORIZATION_FAILED UNSUPPORTED_FOR_MESSAGE_FORMAT
""")
# Codes a producer meets (delivery report, produce(), error_cb) that retrying can fix: the caller
# retries (or spools) the whole Export.
RETRYABLE = _names("""
    _TRANSPORT _RESOLVE _ALL_BROKERS_DOWN _TIMED_OUT _MSG_TIMED_OUT _TIMED_OUT_QUEUE _SSL
    _AUTHENTICATION _DESTROY _DESTROY_BROKER _FAIL _BAD_MSG _BAD_COMPRESSION _CRIT_SYS_RESOURCE
    _QUEUE_FULL _ISR_INSUFF _UNKNOWN_TOPIC _UNKNOWN_PARTITION _INVALID_ARG _STATE
    _UNSUPPORTED_FEATURE _NOT_IMPLEMENTED _RETRY _UNKNOWN_BROKER _NODE_UPDATE _INTR
    _UNKNOWN_PROTOCOL UNKNOWN
    _PURGE_QUEUE _PURGE_INFLIGHT _FATAL _INCONSISTENT _GAPLESS_GUARANTEE
    _INVALID_DIFFERENT_RECORD
    INVALID_MSG UNKNOWN_TOPIC_OR_PART LEADER_NOT_AVAILABLE NOT_LEADER_FOR_PARTITION
    REQUEST_TIMED_OUT BROKER_NOT_AVAILABLE REPLICA_NOT_AVAILABLE NETWORK_EXCEPTION
    NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS_AFTER_APPEND KAFKA_STORAGE_ERROR FENCED_LEADER_EPOCH
    UNKNOWN_LEADER_EPOCH THROTTLING_QUOTA_EXCEEDED REBOOTSTRAP_REQUIRED
    OUT_OF_ORDER_SEQUENCE_NUMBER DUPLICATE_SEQUENCE_NUMBER INVALID_PRODUCER_EPOCH
    INVALID_PRODUCER_ID_MAPPING UNKNOWN_PRODUCER_ID PRODUCER_FENCED
    CLUSTER_AUTHORIZATION_FAILED INVALID_REQUIRED_ACKS INVALID_TIMESTAMP
    UNSUPPORTED_SASL_MECHANISM ILLEGAL_SASL_STATE SASL_AUTHENTICATION_FAILED
    UNACCEPTABLE_CREDENTIAL UNSUPPORTED_VERSION UNSUPPORTED_COMPRESSION_TYPE SECURITY_DISABLED
""")
# Codes of consumers, groups, transactions, admin and KRaft requests that this producer never
# meets: the default (retryable) covers them, as it covers a code added by a later librdkafka.
NOT_MET = _names("""
    NO_ERROR _PARTITION_EOF _FS _WAIT_COORD _UNKNOWN_GROUP _IN_PROGRESS _PREV_IN_PROGRESS
    _EXISTING_SUBSCRIPTION _ASSIGN_PARTITIONS _REVOKE_PARTITIONS _CONFLICT _NO_OFFSET _OUTDATED
    _WAIT_CACHE _KEY_SERIALIZATION _VALUE_SERIALIZATION _KEY_DESERIALIZATION
    _VALUE_DESERIALIZATION _PARTIAL _READ_ONLY _NOENT _UNDERFLOW _INVALID_TYPE
    _MAX_POLL_EXCEEDED _NOT_CONFIGURED _FENCED _APPLICATION _ASSIGNMENT_LOST _NOOP
    _AUTO_OFFSET_RESET _LOG_TRUNCATION OFFSET_OUT_OF_RANGE STALE_CTRL_EPOCH
    OFFSET_METADATA_TOO_LARGE COORDINATOR_LOAD_IN_PROGRESS COORDINATOR_NOT_AVAILABLE
    NOT_COORDINATOR ILLEGAL_GENERATION INCONSISTENT_GROUP_PROTOCOL INVALID_GROUP_ID
    UNKNOWN_MEMBER_ID INVALID_SESSION_TIMEOUT REBALANCE_IN_PROGRESS INVALID_COMMIT_OFFSET_SIZE
    GROUP_AUTHORIZATION_FAILED TOPIC_ALREADY_EXISTS INVALID_PARTITIONS
    INVALID_REPLICATION_FACTOR INVALID_REPLICA_ASSIGNMENT INVALID_CONFIG NOT_CONTROLLER
    INVALID_REQUEST INVALID_TXN_STATE INVALID_TRANSACTION_TIMEOUT CONCURRENT_TRANSACTIONS
    TRANSACTION_COORDINATOR_FENCED TRANSACTIONAL_ID_AUTHORIZATION_FAILED OPERATION_NOT_ATTEMPTED
    LOG_DIR_NOT_FOUND REASSIGNMENT_IN_PROGRESS DELEGATION_TOKEN_AUTH_DISABLED
    DELEGATION_TOKEN_NOT_FOUND DELEGATION_TOKEN_OWNER_MISMATCH
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED DELEGATION_TOKEN_AUTHORIZATION_FAILED
    DELEGATION_TOKEN_EXPIRED INVALID_PRINCIPAL_TYPE NON_EMPTY_GROUP GROUP_ID_NOT_FOUND
    FETCH_SESSION_ID_NOT_FOUND INVALID_FETCH_SESSION_EPOCH LISTENER_NOT_FOUND
    TOPIC_DELETION_DISABLED STALE_BROKER_EPOCH OFFSET_NOT_AVAILABLE MEMBER_ID_REQUIRED
    PREFERRED_LEADER_NOT_AVAILABLE GROUP_MAX_SIZE_REACHED FENCED_INSTANCE_ID
    ELIGIBLE_LEADERS_NOT_AVAILABLE ELECTION_NOT_NEEDED NO_REASSIGNMENT_IN_PROGRESS
    GROUP_SUBSCRIBED_TO_TOPIC UNSTABLE_OFFSET_COMMIT RESOURCE_NOT_FOUND DUPLICATE_RESOURCE
    INCONSISTENT_VOTER_SET INVALID_UPDATE_VERSION FEATURE_UPDATE_FAILED
    PRINCIPAL_DESERIALIZATION_FAILURE UNKNOWN_TOPIC_ID INCONSISTENT_TOPIC_ID FENCED_MEMBER_EPOCH
    UNRELEASED_INSTANCE_ID UNSUPPORTED_ASSIGNOR STALE_MEMBER_EPOCH MISMATCHED_ENDPOINT_TYPE
    UNSUPPORTED_ENDPOINT_TYPE UNKNOWN_CONTROLLER_ID UNKNOWN_SUBSCRIPTION_ID TELEMETRY_TOO_LARGE
    INVALID_REGISTRATION TRANSACTION_ABORTABLE INVALID_RECORD_STATE SHARE_SESSION_NOT_FOUND
    INVALID_SHARE_SESSION_EPOCH FENCED_STATE_EPOCH INVALID_VOTER_KEY DUPLICATE_VOTER
    VOTER_NOT_FOUND INVALID_REGULAR_EXPRESSION STREAMS_INVALID_TOPOLOGY
    STREAMS_INVALID_TOPOLOGY_EPOCH STREAMS_TOPOLOGY_FENCED SHARE_SESSION_LIMIT_REACHED
""")


def _error_codes() -> dict[str, int]:
    """Every error code confluent-kafka defines, by name (local ones start with ``_``)."""
    return {
        name: value
        for name, value in vars(KafkaError).items()
        if isinstance(value, int) and name.lstrip("_")[:1].isupper()
    }


def test_every_kafka_error_code_has_a_documented_classification() -> None:
    table = [*PERMANENT, *RETRYABLE, *NOT_MET]
    assert len(table) == len(set(table)), "a code is listed twice"
    defined = set(_error_codes())
    assert sorted(defined - set(table)) == [], "new codes: decide permanent or retryable"
    assert sorted(set(table) - defined) == [], "codes confluent-kafka no longer defines"


@pytest.mark.parametrize("name", sorted(_error_codes()))
def test_the_sink_classifies_each_code_as_the_table_says(name: str) -> None:
    error = KafkaError(getattr(KafkaError, name))
    assert kafka_sink.is_permanent(error) is (name in PERMANENT)


def test_the_sinks_permanent_set_is_exactly_the_documented_one() -> None:
    # The rule is a set plus a default: the set is the table's permanent column, and every
    # other code (retryable, never met, or unknown to this confluent-kafka) is retryable.
    assert {getattr(KafkaError, n) for n in PERMANENT} == kafka_sink.PERMANENT_ERRORS
    assert not kafka_sink.is_permanent(KafkaError(-100))  # a code no librdkafka defines yet


# -- delivery against a scripted producer --------------------------------------------------


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    cluster = FakeKafka()
    monkeypatch.setattr(kafka_sink, "Producer", cluster.producer)
    return cluster


@pytest.fixture
def scripted(kafka: FakeKafka) -> Iterator[KafkaSink]:
    running = KafkaSink(load_config(kafka={"create_topics": False}).kafka, ["feedback.t"])
    running.start()
    yield running
    running.shutdown(0.1)


def _records(*event_ids: str) -> list[OutboundRecord]:
    return [
        OutboundRecord("feedback.t", b"k", b"v", [("event_id", i.encode())], i, "user_feedback")
        for i in event_ids
    ]


def test_every_record_confirmed_returns_and_counts_them(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    scripted.deliver(_records("a", "b", "c"), timeout=5.0)
    assert sorted(kafka.delivered) == ["a", "b", "c"]
    assert scripted.published_by_topic() == {"feedback.t": 3}


def test_a_full_producer_queue_is_waited_out_and_everything_delivered(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    kafka.raise_on_produce("b", BufferError(), BufferError(), BufferError())
    scripted.deliver(_records("a", "b", "c"), timeout=5.0)
    assert sorted(kafka.delivered) == ["a", "b", "c"]
    assert kafka.produced.count("b") == 4  # three refusals, then queued once


def test_a_queue_full_until_the_deadline_is_retryable(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    kafka.raise_on_produce("b", BufferError(), forever=True)
    with pytest.raises(DeliveryTimeout) as caught:
        scripted.deliver(_records("a", "b"), timeout=0.05)
    assert isinstance(caught.value, RetryableError) and caught.value.retry_after
    assert scripted.failures_by_kind() == {"timeout": 1}


def test_refused_records_are_named_with_reasons_and_the_rest_are_delivered_once(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    kafka.report("b", KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too big"))
    kafka.report("d", KafkaError(KafkaError.POLICY_VIOLATION, "no such keys"))
    # A local refusal: produce() itself raises, and no delivery report will come.
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "over message.max.bytes")
    kafka.raise_on_produce("e", KafkaException(too_large), forever=True)
    with pytest.raises(DeliveryFailed) as caught:
        scripted.deliver(_records("a", "b", "c", "d", "e"), timeout=5.0)
    assert caught.value.failed == {
        "b": "too big",
        "d": "no such keys",
        "e": "over message.max.bytes",
    }
    assert sorted(kafka.delivered) == ["a", "c"]  # delivered once, not sent again
    assert sorted(set(kafka.produced)) == ["a", "b", "c", "d", "e"]
    assert scripted.failures_by_kind() == {"refused": 1}


def test_a_permanent_and_a_transient_error_together_make_the_batch_retryable(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    kafka.report("a", KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    kafka.report("b", KafkaError(KafkaError._MSG_TIMED_OUT))
    with pytest.raises(SinkUnavailable):  # b must be retried, so the whole call is
        scripted.deliver(_records("a", "b"), timeout=5.0)


def test_records_failed_only_for_an_invalid_neighbour_are_sent_again_alone(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    # KIP-467: the broker refuses the batch for "b"; the others fail with
    # _INVALID_DIFFERENT_RECORD. Retried together they would meet "b" again, forever.
    kafka.report("a", KafkaError(KafkaError._INVALID_DIFFERENT_RECORD))
    kafka.report("b", KafkaError(KafkaError.INVALID_RECORD, "null key on a compacted topic"))
    kafka.report("c", KafkaError(KafkaError._INVALID_DIFFERENT_RECORD))
    with pytest.raises(DeliveryFailed) as caught:
        scripted.deliver(_records("a", "b", "c"), timeout=5.0)
    assert caught.value.failed == {"b": "null key on a compacted topic"}
    assert sorted(kafka.delivered) == ["a", "c"]


def test_a_missing_topic_is_retryable_and_recreated_before_the_next_delivery(
    kafka: FakeKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[float] = []
    sink = KafkaSink(load_config(kafka={"create_topics": True}).kafka, ["feedback.t"])
    made = threading.Event()

    def create_topics(timeout: float = 5.0) -> None:
        created.append(timeout)
        made.set()

    monkeypatch.setattr(sink, "create_topics", create_topics)
    with sink:
        assert made.wait(30.0)  # at start, by the background thread
        assert len(created) == 1
        # produce() refuses at once when the metadata says the topic does not exist.
        missing = KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC))
        kafka.raise_on_produce("a", missing, missing)  # the first call and _produce's retry
        with pytest.raises(SinkUnavailable):
            sink.deliver(_records("a"), timeout=5.0)
        sink.deliver(_records("a"), timeout=5.0)
        assert len(created) == 2
        kafka.report("b", KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        with pytest.raises(SinkUnavailable):
            sink.deliver(_records("b"), timeout=5.0)
        sink.deliver(_records("b"), timeout=5.0)
        assert len(created) == 3
    assert sorted(kafka.delivered) == ["a", "b"]


def test_a_fatal_producer_error_rebuilds_the_producer_and_loses_nothing(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    # After a broker restart the idempotent producer can fail fatally (UNKNOWN_PRODUCER_ID):
    # "a" is already queued, "b" and "c" are refused by the fatal producer.
    kafka.fail_fatally_after("a", KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, fatal=True))
    records = _records("a", "b", "c")
    with pytest.raises(SinkUnavailable) as caught:
        scripted.deliver(records, timeout=5.0)
    assert isinstance(caught.value, RetryableError)  # the client retries (or it is spooled)
    assert kafka.delivered == []

    scripted.deliver(records, timeout=5.0)  # the caller's retry
    assert len(kafka.producers) == 2 and scripted.rebuilds == 1
    assert sorted(kafka.delivered) == ["a", "b", "c"]


def test_a_fatal_error_reported_only_through_error_cb_rebuilds_the_producer(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    kafka.fail_fatally(KafkaError(KafkaError._FATAL, "idempotence broken", fatal=True))
    scripted.deliver(_records("a"), timeout=5.0)
    assert kafka.producers[0].purged and scripted.rebuilds == 1
    assert kafka.delivered == ["a"]


def test_an_epoch_bump_reported_without_a_fatal_error_is_retried_on_the_same_producer(
    kafka: FakeKafka, scripted: KafkaSink
) -> None:
    # librdkafka recovers from a non-fatal UNKNOWN_PRODUCER_ID itself (it bumps the epoch).
    kafka.report("a", KafkaError(KafkaError.UNKNOWN_PRODUCER_ID))
    with pytest.raises(SinkUnavailable):
        scripted.deliver(_records("a"), timeout=5.0)
    scripted.deliver(_records("a"), timeout=5.0)
    assert scripted.rebuilds == 0 and kafka.delivered == ["a"]


def test_interrupt_ends_a_delivery_waiting_on_a_broker_that_never_answers(
    sink: KafkaSink,
) -> None:
    # What a stopping FailoverSink does to its replayer's delivery: the records stay spooled.
    failed: list[BaseException] = []

    def deliver() -> None:
        try:
            sink.deliver([_record()], timeout=3600.0)
        except SinkUnavailable as exc:
            failed.append(exc)

    waiting = threading.Thread(target=deliver)
    waiting.start()
    sink.interrupt()
    waiting.join(30.0)  # a bound far under the hour the delivery would otherwise wait
    assert not waiting.is_alive()
    assert len(failed) == 1
