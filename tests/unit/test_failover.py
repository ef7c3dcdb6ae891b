"""The failover sink: Kafka first, the real disk spool when Kafka fails, the circuit breaker and
in-flight budget in front of it, and the replayer thread that drains the spool back to Kafka.

Kafka is ``FakeKafka`` below: the test decides whether each ``deliver`` succeeds, raises a
retryable error, refuses some event ids for good, or blocks until released. Breakers that must
stay open get a fake clock; the replayer thread is awaited with ``wait_until``, never a sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otlp_feedback.config import DeliveryConfig, SpoolConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import (
    BackpressureError,
    DeliveryFailed,
    DeliveryTimeout,
    RetryableError,
    SinkUnavailable,
    SpoolFull,
)
from otlp_feedback.observability.metrics import DEAD_LETTER_FAILURES, Telemetry
from otlp_feedback.sinks.breaker import CircuitBreaker
from otlp_feedback.sinks.failover import FailoverSink
from otlp_feedback.sinks.spool import Spool
from otlp_feedback.testing.waiting import wait_until

WAIT_S = 30.0  # generous upper bound for the replayer; a passing test never waits this long
# A held gate is released by the test itself; this bound only keeps a forgotten one from hanging
# pytest. Were it WAIT_S, a slow test body would see the "held" delivery go through on its own.
GATE_HANG_GUARD_S = 60.0
RESET_S = 30.0  # breaker reset timeout under a fake clock: the circuit stays open until advanced


# -- doubles and helpers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    thread: threading.Thread
    event_ids: list[str]
    timeout: float


class FakeKafka:
    """The primary sink. ``fail_with`` makes every ``deliver`` raise it; ``refuse`` maps event
    ids Kafka refuses for good (the rest of the call is delivered, then ``DeliveryFailed``);
    clearing ``gate`` holds every ``deliver`` until it is set again. Like ``KafkaSink``, a failed
    ``start`` leaves it usable."""

    def __init__(self) -> None:
        self.fail_with: Exception | None = None
        self.refuse: dict[str, str] = {}
        self.start_error: Exception | None = None
        self.flush_result = True
        self.gate = threading.Event()
        self.gate.set()
        self.delivered: list[OutboundRecord] = []
        self.calls: list[Call] = []  # noted on entry, before the outcome
        self.failed: list[Call] = []  # noted once the call is about to raise ``fail_with``
        self.shutdowns = 0
        self._changed = threading.Condition()

    def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        with self._changed:
            call = Call(threading.current_thread(), ids(records), timeout)
            self.calls.append(call)
            self._changed.notify_all()
        self.gate.wait(GATE_HANG_GUARD_S)
        if (error := self.fail_with) is not None:
            with self._changed:
                self.failed.append(call)
                self._changed.notify_all()
            raise error
        refused = {
            r.event_id: self.refuse[r.event_id] for r in records if r.event_id in self.refuse
        }
        with self._changed:
            self.delivered += [r for r in records if r.event_id not in refused]
            self._changed.notify_all()
        if refused:
            raise DeliveryFailed(f"Kafka refused {len(refused)} events", failed=refused)

    def force_flush(self, timeout: float) -> bool:
        return self.flush_result

    def shutdown(self, timeout: float) -> None:
        self.shutdowns += 1

    def calls_from(self, thread: threading.Thread) -> list[Call]:
        with self._changed:
            return [c for c in self.calls if c.thread is thread]

    def replay_calls(self) -> list[Call]:
        """Calls made by the sink's own thread (the replayer), not by a request thread."""
        with self._changed:
            return [c for c in self.calls if c.thread.name == "spool-replay"]

    def await_calls(self, predicate: Callable[[], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, WAIT_S), "primary never reached that state"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_record(event_id: str, value_size: int = 64) -> OutboundRecord:
    return OutboundRecord(
        topic="feedback.user_feedback",
        key=b"session-1",
        value=b"v" * value_size,
        headers=[("event_id", event_id.encode())],
        event_id=event_id,
        event_type="user_feedback",
    )


def make_records(prefix: str, n: int) -> list[OutboundRecord]:
    return [make_record(f"{prefix}-{i}") for i in range(n)]


def ids(records: Sequence[OutboundRecord]) -> list[str]:
    return [r.event_id for r in records]


def delivery_config(**overrides: Any) -> DeliveryConfig:
    """Fast retries; a threshold high enough that the breaker only opens where a test opens it."""
    values: dict[str, Any] = {
        "attempt_timeout_s": 1.0,
        "retry_initial_backoff_s": 0.005,
        "retry_max_backoff_s": 0.02,
        "breaker_failure_threshold": 1000,
        "refuse_retry_after_s": 2.0,
    }
    values.update(overrides)
    return DeliveryConfig(**values)


def make_spool(directory: Path, **overrides: Any) -> Spool:
    values: dict[str, Any] = {"directory": directory, "fsync": "never"}
    values.update(overrides)
    return Spool(SpoolConfig(**values))


def fake_clock_breaker(clock: FakeClock, threshold: int = 1) -> CircuitBreaker:
    return CircuitBreaker(threshold, RESET_S, clock=clock)


@contextmanager
def running(sink: FailoverSink) -> Iterator[FailoverSink]:
    sink.start()
    try:
        yield sink
    finally:
        sink.shutdown(2.0)


def replayer_caught_up(sink: FailoverSink) -> bool:
    # The replayer clears the backlog flag one loop after its last commit; nothing public says
    # so, and until then new records still queue behind the (empty) spool.
    return not sink._backlog


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return make_spool(tmp_path / "spool")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- Kafka healthy -------------------------------------------------------------------------------


def test_healthy_primary_receives_every_record_and_nothing_is_spooled(
    kafka: FakeKafka, spool: Spool
) -> None:
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 3), timeout=5.0)
        sink.deliver(make_records("b", 2), timeout=5.0)
        assert ids(kafka.delivered) == ["a-0", "a-1", "a-2", "b-0", "b-1"]
        assert [c.event_ids for c in kafka.calls_from(threading.main_thread())] == [
            ["a-0", "a-1", "a-2"],
            ["b-0", "b-1"],
        ]
        assert spool.pending_records == 0
        assert sink.spooled == 0
        assert sink.backlog == 0
        assert sink.breaker.state == "closed"


def test_direct_attempt_is_bounded_by_attempt_timeout_and_the_callers_deadline(
    kafka: FakeKafka, spool: Spool
) -> None:
    with running(FailoverSink(kafka, spool, delivery_config(attempt_timeout_s=1.0))) as sink:
        sink.deliver([make_record("long-deadline")], timeout=30.0)
        sink.deliver([make_record("short-deadline")], timeout=0.25)
    assert [c.timeout for c in kafka.calls] == [1.0, 0.25]


# -- Kafka failing: spool, count, breaker -------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [DeliveryTimeout("no acks in time"), SinkUnavailable("broker down")],
    ids=["timeout", "unavailable"],
)
def test_retryable_failure_spools_the_records_and_deliver_returns(
    kafka: FakeKafka, spool: Spool, clock: FakeClock, error: RetryableError
) -> None:
    kafka.fail_with = error
    breaker = fake_clock_breaker(clock, threshold=1)
    with running(FailoverSink(kafka, spool, delivery_config(), breaker)) as sink:
        sink.deliver(make_records("a", 3), timeout=5.0)  # returns: the events are on disk
        assert len(kafka.calls_from(threading.main_thread())) == 1
        assert spool.pending_records == 3
        assert sink.spooled == 3
        assert sink.backlog == 3
        assert breaker.state == "open"  # the failure was recorded (threshold 1)
        assert breaker.opened_count == 1


def test_spooled_records_are_on_disk_after_shutdown(
    kafka: FakeKafka, spool: Spool, tmp_path: Path
) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 3), timeout=5.0)
    with make_spool(tmp_path / "spool") as reopened:
        batch = reopened.peek(100)
        assert batch is not None
        assert ids(batch.records) == ["a-0", "a-1", "a-2"]


def test_open_circuit_sends_records_straight_to_the_spool_without_calling_primary(
    kafka: FakeKafka, spool: Spool, clock: FakeClock
) -> None:
    breaker = fake_clock_breaker(clock, threshold=1)
    with running(FailoverSink(kafka, spool, delivery_config(), breaker)) as sink:
        breaker.record_failure()
        assert breaker.state == "open"
        assert sink.backlog == 0  # no backlog: it is the open circuit that diverts them
        sink.deliver(make_records("a", 2), timeout=5.0)
        assert kafka.calls == []
        assert spool.pending_records == 2
        assert sink.spooled == 2


# -- backlog and replay --------------------------------------------------------------------------


def test_new_records_queue_behind_a_backlog_and_are_replayed_in_order(
    kafka: FakeKafka, spool: Spool
) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    request = threading.main_thread()
    with running(FailoverSink(kafka, spool, delivery_config(replay_batch_records=2))) as sink:
        sink.deliver(make_records("a", 3), timeout=5.0)
        assert len(kafka.calls_from(request)) == 1
        sink.deliver(make_records("b", 2), timeout=5.0)
        sink.deliver(make_records("c", 1), timeout=5.0)
        assert len(kafka.calls_from(request)) == 1  # queued behind the backlog, no attempt
        assert spool.pending_records == 6

        kafka.fail_with = None  # Kafka is back
        # The replayer thread has no event to wait on.
        wait_until(lambda: replayer_caught_up(sink), "the spool is drained", WAIT_S)

        assert ids(kafka.delivered) == ["a-0", "a-1", "a-2", "b-0", "b-1", "c-0"]
        assert all(len(c.event_ids) <= 2 for c in kafka.replay_calls())
        assert spool.pending_records == 0
        assert sink.replayed == 6
        assert sink.backlog == 0

        sink.deliver([make_record("d-0")], timeout=5.0)
        assert len(kafka.calls_from(request)) == 2  # direct again
        assert kafka.calls_from(request)[-1].event_ids == ["d-0"]
        assert sink.spooled == 6


def test_force_flush_returns_true_once_the_spool_is_drained(kafka: FakeKafka, spool: Spool) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 4), timeout=5.0)
        # Wait for a replay to have failed, not merely begun: a call is noted before fail_with is
        # read, so clearing it then could let the first replay succeed and retry nothing.
        kafka.await_calls(lambda: any(c.thread.name == "spool-replay" for c in kafka.failed))
        kafka.fail_with = None
        assert sink.force_flush(WAIT_S)
        assert spool.pending_records == 0
        assert ids(kafka.delivered) == ["a-0", "a-1", "a-2", "a-3"]


def test_force_flush_returns_false_while_the_primary_stays_down(
    kafka: FakeKafka, spool: Spool
) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 2), timeout=5.0)
        assert not sink.force_flush(0.2)
        assert spool.pending_records == 2
        assert kafka.delivered == []


def test_force_flush_returns_false_when_the_primary_cannot_flush(
    kafka: FakeKafka, spool: Spool
) -> None:
    kafka.flush_result = False
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        assert not sink.force_flush(1.0)


def test_force_flush_without_a_spool_is_the_primarys_flush(kafka: FakeKafka) -> None:
    with running(FailoverSink(kafka, None, delivery_config())) as sink:
        assert sink.force_flush(1.0)
        kafka.flush_result = False
        assert not sink.force_flush(1.0)


# -- refusing: spool full, no spool, in-flight budget --------------------------------------------


def test_full_spool_refuses_with_retry_after_and_counts_the_refusal(
    kafka: FakeKafka, tmp_path: Path
) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    spool = make_spool(tmp_path / "spool", max_bytes=1 << 16)
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver([make_record("fits", value_size=40_000)], timeout=5.0)
        with pytest.raises(SpoolFull) as caught:
            sink.deliver([make_record("too-much", value_size=40_000)], timeout=5.0)
        assert isinstance(caught.value, BackpressureError)
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        assert sink.refused == 1
        assert sink.spooled == 1
        assert spool.pending_records == 1


def test_without_a_spool_the_primarys_retryable_error_reaches_the_caller(
    kafka: FakeKafka,
) -> None:
    error = DeliveryTimeout("no acks in time", retry_after=1.0)
    kafka.fail_with = error
    with running(FailoverSink(kafka, None, delivery_config())) as sink:
        with pytest.raises(DeliveryTimeout) as caught:
            sink.deliver([make_record("a-0")], timeout=5.0)
        assert caught.value is error


def test_without_a_spool_an_open_circuit_refuses_with_the_time_until_the_probe(
    kafka: FakeKafka, clock: FakeClock
) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    breaker = fake_clock_breaker(clock, threshold=1)
    with running(FailoverSink(kafka, None, delivery_config(), breaker)) as sink:
        with pytest.raises(SinkUnavailable):
            sink.deliver([make_record("a-0")], timeout=5.0)
        assert breaker.state == "open"

        with pytest.raises(SinkUnavailable) as caught:
            sink.deliver([make_record("a-1")], timeout=5.0)
        assert caught.value.retry_after == pytest.approx(RESET_S)
        clock.advance(RESET_S - 0.5)
        with pytest.raises(SinkUnavailable) as caught:
            sink.deliver([make_record("a-2")], timeout=5.0)
        assert caught.value.retry_after == pytest.approx(2.0)  # never below refuse_retry_after_s
        assert len(kafka.calls) == 1  # the open circuit kept the primary out of it
        assert sink.refused == 2


@pytest.fixture
def busy_primary(kafka: FakeKafka) -> Iterator[tuple[FakeKafka, Callable[[FailoverSink], None]]]:
    """Kafka holding a 3-event delivery from another request thread until the test ends."""
    kafka.gate.clear()
    threads: list[threading.Thread] = []

    def occupy(sink: FailoverSink) -> None:
        t = threading.Thread(target=sink.deliver, args=(make_records("held", 3), 5.0))
        t.start()
        threads.append(t)
        kafka.await_calls(lambda: any(c.thread is t for c in kafka.calls))

    yield kafka, occupy
    kafka.gate.set()
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive()


def test_over_budget_request_is_spooled_instead_of_waiting_on_the_primary(
    busy_primary: tuple[FakeKafka, Callable[[FailoverSink], None]], spool: Spool
) -> None:
    kafka, occupy = busy_primary
    with running(FailoverSink(kafka, spool, delivery_config(max_inflight_events=3))) as sink:
        occupy(sink)
        sink.deliver([make_record("extra-0")], timeout=5.0)  # returns although Kafka is held
        assert kafka.calls_from(threading.main_thread()) == []
        assert sink.spooled == 1
        kafka.gate.set()
        assert sink.force_flush(WAIT_S)
        assert sorted(ids(kafka.delivered)) == ["extra-0", "held-0", "held-1", "held-2"]


def test_over_budget_request_without_a_spool_is_refused_with_backpressure(
    busy_primary: tuple[FakeKafka, Callable[[FailoverSink], None]],
) -> None:
    kafka, occupy = busy_primary
    config = delivery_config(max_inflight_events=3, refuse_retry_after_s=1.5)
    with running(FailoverSink(kafka, None, config)) as sink:
        occupy(sink)
        with pytest.raises(BackpressureError) as caught:
            sink.deliver([make_record("extra-0")], timeout=5.0)
        assert not isinstance(caught.value, SpoolFull)
        assert caught.value.retry_after == 1.5
        assert kafka.calls_from(threading.main_thread()) == []
        assert sink.refused == 1


def test_a_batch_larger_than_the_budget_goes_direct_when_nothing_is_in_flight(
    kafka: FakeKafka, spool: Spool
) -> None:
    with running(FailoverSink(kafka, spool, delivery_config(max_inflight_events=2))) as sink:
        sink.deliver(make_records("big", 5), timeout=5.0)
        assert ids(kafka.delivered) == [f"big-{i}" for i in range(5)]
        assert sink.spooled == 0


# -- permanent refusals during replay ------------------------------------------------------------


def test_replay_counts_permanently_refused_records_as_dead_letter_failures_and_moves_on(
    kafka: FakeKafka, spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the encoded event is left in the spool, not the source a dead letter needs: the
    # sink logs and counts them itself (no call back up into the pipeline).
    caplog.set_level(logging.ERROR, logger="otlp_feedback.sinks.failover")
    telemetry = Telemetry()
    kafka.fail_with = SinkUnavailable("broker down")
    sink = FailoverSink(kafka, spool, delivery_config(replay_batch_records=2), telemetry=telemetry)
    with running(sink):
        sink.deliver(make_records("a", 5), timeout=5.0)
        kafka.refuse = {"a-1": "MSG_SIZE_TOO_LARGE", "a-2": "MSG_SIZE_TOO_LARGE"}
        kafka.fail_with = None
        assert sink.force_flush(WAIT_S)  # the refused records do not block the spool

    assert telemetry.value(DEAD_LETTER_FAILURES) == 2
    refusals = [r.getMessage() for r in caplog.records if "spooled events" in r.getMessage()]
    assert refusals == ["Kafka refused 1 spooled events for good: Kafka refused 1 events"] * 2
    assert ids(kafka.delivered) == ["a-0", "a-3", "a-4"]
    assert spool.pending_records == 0


def test_replay_moves_past_refused_records(kafka: FakeKafka, spool: Spool) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 3), timeout=5.0)
        kafka.refuse = {"a-0": "INVALID_MSG_SIZE"}
        kafka.fail_with = None
        assert sink.force_flush(WAIT_S)
        assert ids(kafka.delivered) == ["a-1", "a-2"]


# -- lifecycle -----------------------------------------------------------------------------------


def test_start_succeeds_with_the_primary_down_when_a_spool_exists(
    kafka: FakeKafka, spool: Spool
) -> None:
    kafka.start_error = SinkUnavailable("cannot create topics")
    kafka.fail_with = SinkUnavailable("broker down")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        sink.deliver(make_records("a", 2), timeout=5.0)
        assert spool.pending_records == 2
        kafka.fail_with = None
        assert sink.force_flush(WAIT_S)
        assert ids(kafka.delivered) == ["a-0", "a-1"]


def test_start_raises_the_primarys_error_without_a_spool(kafka: FakeKafka) -> None:
    kafka.start_error = SinkUnavailable("cannot create topics")
    sink = FailoverSink(kafka, None, delivery_config())
    with pytest.raises(SinkUnavailable):
        sink.start()
    sink.shutdown(1.0)


def test_spool_left_by_a_previous_run_is_resumed_and_replayed_first(
    kafka: FakeKafka, tmp_path: Path
) -> None:
    leftovers = make_records("old", 3)
    with make_spool(tmp_path / "spool") as previous_run:
        previous_run.append(leftovers)

    kafka.fail_with = SinkUnavailable("broker down")
    spool = make_spool(tmp_path / "spool")
    with running(FailoverSink(kafka, spool, delivery_config())) as sink:
        assert sink.backlog == 3
        sink.deliver([make_record("new-0")], timeout=5.0)
        assert kafka.calls_from(threading.main_thread()) == []  # queued behind the leftovers
        kafka.fail_with = None
        assert sink.force_flush(WAIT_S)
        assert ids(kafka.delivered) == ["old-0", "old-1", "old-2", "new-0"]
        assert sink.replayed == 4


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "no-spool"])
def test_shutdown_is_idempotent_and_safe_before_start(
    kafka: FakeKafka, tmp_path: Path, with_spool: bool
) -> None:
    never_started = FailoverSink(
        kafka, make_spool(tmp_path / "a") if with_spool else None, delivery_config()
    )
    never_started.shutdown(1.0)
    never_started.shutdown(1.0)

    sink = FailoverSink(
        kafka, make_spool(tmp_path / "b") if with_spool else None, delivery_config()
    )
    sink.start()
    sink.deliver([make_record("a-0")], timeout=5.0)
    sink.shutdown(1.0)
    sink.shutdown(1.0)
    assert kafka.shutdowns == 2  # once per sink, however often each was shut down
    assert ids(kafka.delivered) == ["a-0"]


def test_deliver_after_shutdown_is_refused_as_retryable(kafka: FakeKafka, spool: Spool) -> None:
    sink = FailoverSink(kafka, spool, delivery_config(refuse_retry_after_s=1.5))
    with running(sink):
        pass
    with pytest.raises(SinkUnavailable) as caught:
        sink.deliver([make_record("late")], timeout=5.0)
    assert caught.value.retry_after == 1.5
    assert kafka.calls == []


def _shutdown_in_background(sink: FailoverSink) -> threading.Thread:
    # A timeout far longer than the join below: if shutdown had to wait for the replayer's
    # sleep to run out, the join would expire first.
    t = threading.Thread(target=sink.shutdown, args=(600.0,), daemon=True)
    t.start()
    return t


def test_shutdown_interrupts_a_replayer_backing_off(kafka: FakeKafka, spool: Spool) -> None:
    kafka.fail_with = SinkUnavailable("broker down")
    config = delivery_config(retry_initial_backoff_s=300.0, retry_max_backoff_s=3600.0)
    sink = FailoverSink(kafka, spool, config)
    sink.start()
    sink.deliver([make_record("a-0")], timeout=5.0)
    kafka.await_calls(lambda: any(c.thread.name == "spool-replay" for c in kafka.failed))
    # the replay failed; the replayer now backs off for 300 s

    stopper = _shutdown_in_background(sink)
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert len(kafka.replay_calls()) == 1


def test_shutdown_interrupts_a_replayer_waiting_for_the_circuit(
    kafka: FakeKafka, spool: Spool, clock: FakeClock
) -> None:
    breaker = fake_clock_breaker(clock, threshold=1)
    sink = FailoverSink(kafka, spool, delivery_config(), breaker)
    sink.start()
    breaker.record_failure()
    sink.deliver([make_record("a-0")], timeout=5.0)  # spooled; the replayer waits RESET_S

    stopper = _shutdown_in_background(sink)
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert kafka.calls == []


# -- regressions: a refused probe must end half-open; a spool I/O error must not kill replay ------


@pytest.mark.parametrize(
    "with_spool",
    [
        # without a spool every later Export is refused "circuit open", for good
        pytest.param(False, id="no-spool"),
        # with one, every later Export is spooled and the replayer never gets to probe
        pytest.param(True, id="spool"),
    ],
)
def test_a_permanently_refused_probe_does_not_wedge_the_circuit(
    kafka: FakeKafka, tmp_path: Path, clock: FakeClock, with_spool: bool
) -> None:
    breaker = fake_clock_breaker(clock, threshold=1)
    spool = make_spool(tmp_path / "spool") if with_spool else None
    with running(FailoverSink(kafka, spool, delivery_config(), breaker)) as sink:
        breaker.record_failure()  # Kafka was down a moment ago
        clock.advance(RESET_S)
        kafka.refuse = {"oversized": "MSG_SIZE_TOO_LARGE"}
        with pytest.raises(DeliveryFailed):  # the probe: Kafka answered, refusing one record
            sink.deliver([make_record("oversized")], timeout=5.0)

        clock.advance(RESET_S)  # however long we wait
        sink.deliver([make_record("ok-0")], timeout=5.0)
        assert sink.force_flush(WAIT_S)
        assert ids(kafka.delivered) == ["ok-0"]


@pytest.mark.parametrize("method", ["peek", "commit"])
def test_a_transient_spool_error_does_not_stop_the_replayer(
    kafka: FakeKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    with make_spool(tmp_path / "spool") as previous_run:
        previous_run.append(make_records("old", 2))
    spool = make_spool(tmp_path / "spool")
    real = getattr(spool, method)
    failures = [SinkUnavailable(f"cannot {method} the spool: EIO")]

    def flaky(*args: Any) -> Any:
        result = real(*args)  # commit: the batch still counts as committed here, as documented
        if failures:
            raise failures.pop()
        return result

    monkeypatch.setattr(spool, method, flaky)
    with running(FailoverSink(kafka, spool, delivery_config(replay_batch_records=1))) as sink:
        assert sink.force_flush(WAIT_S)  # the replayer, past one failure
        assert ids(kafka.delivered) == ["old-0", "old-1"]
