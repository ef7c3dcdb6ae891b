"""The circuit breaker: closed -> open after N consecutive failures, open until the reset
timeout, then one half-open probe at a time that closes or re-opens it. Time is a fake clock."""

from __future__ import annotations

import threading

import pytest

from otlp_feedback.sinks.breaker import CircuitBreaker

RESET_S = 10.0


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(threshold, RESET_S, clock=clock)


def open_breaker(breaker: CircuitBreaker, threshold: int = 3) -> None:
    for _ in range(threshold):
        breaker.record_failure()
    assert breaker.state == "open"


# -- closed ------------------------------------------------------------------------------------


def test_new_breaker_is_closed_and_allows_every_caller(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))
    assert breaker.opened_count == 0
    assert breaker.seconds_until_probe() == 0.0


@pytest.mark.parametrize("threshold", [1, 3])
def test_opens_after_threshold_consecutive_failures(clock: FakeClock, threshold: int) -> None:
    breaker = make_breaker(clock, threshold)
    for _ in range(threshold - 1):
        breaker.record_failure()
        assert breaker.state == "closed"
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_count == 1


def test_success_resets_the_consecutive_failure_count(clock: FakeClock) -> None:
    breaker = make_breaker(clock, threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


# -- open ----------------------------------------------------------------------------------------


def test_open_circuit_refuses_until_the_reset_timeout(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(RESET_S - 0.001)
    assert not breaker.allow()
    assert breaker.state == "open"
    clock.advance(0.001)
    assert breaker.allow()
    assert breaker.state == "half_open"


def test_seconds_until_probe_counts_down_while_open_and_never_goes_negative(
    clock: FakeClock,
) -> None:
    breaker = make_breaker(clock)
    open_breaker(breaker)
    assert breaker.seconds_until_probe() == pytest.approx(RESET_S)
    clock.advance(4.0)
    assert breaker.seconds_until_probe() == pytest.approx(RESET_S - 4.0)
    clock.advance(RESET_S)
    assert breaker.seconds_until_probe() == 0.0


def test_seconds_until_probe_is_zero_unless_open(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    assert breaker.seconds_until_probe() == 0.0  # closed
    open_breaker(breaker)
    clock.advance(RESET_S)
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert breaker.seconds_until_probe() == 0.0


# -- half-open -------------------------------------------------------------------------------


def test_half_open_lets_exactly_one_probe_through_at_a_time(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(RESET_S)
    assert breaker.allow()  # the probe
    assert [breaker.allow() for _ in range(5)] == [False] * 5
    clock.advance(RESET_S * 10)  # time alone does not release a second probe
    assert not breaker.allow()
    assert breaker.state == "half_open"


def test_concurrent_callers_in_half_open_get_a_single_probe(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(RESET_S)
    callers = 16
    barrier = threading.Barrier(callers)
    answers: list[bool] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        allowed = breaker.allow()
        with lock:
            answers.append(allowed)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
    assert len(answers) == callers
    assert answers.count(True) == 1


def test_probe_success_closes_the_circuit(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(RESET_S)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))
    # and the failure count starts afresh: it takes the full threshold to open again
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_probe_failure_reopens_at_once_and_restarts_the_timer(clock: FakeClock) -> None:
    breaker = make_breaker(clock, threshold=3)
    open_breaker(breaker)
    clock.advance(RESET_S)
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open, whatever the threshold
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(RESET_S)
    clock.advance(RESET_S)
    assert breaker.allow()  # the next probe
    assert breaker.state == "half_open"


def test_opened_count_counts_transitions_into_open(clock: FakeClock) -> None:
    breaker = make_breaker(clock, threshold=2)
    open_breaker(breaker, threshold=2)
    assert breaker.opened_count == 1
    breaker.record_failure()  # a late failure report while already open is not a new opening
    assert breaker.opened_count == 1
    clock.advance(RESET_S)
    assert breaker.allow()
    breaker.record_failure()  # the probe failed: re-opened
    assert breaker.opened_count == 2
    clock.advance(RESET_S)
    assert breaker.allow()
    breaker.record_success()
    open_breaker(breaker, threshold=2)
    assert breaker.opened_count == 3
