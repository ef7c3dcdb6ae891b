"""A circuit breaker: keeps the hot path from waiting on a broker that is known to be down.

closed --(N consecutive failures)--> open --(reset timeout)--> half-open --(probe ok)--> closed
                                      ^------------------(probe fails)---------'
In half-open exactly one caller (the probe) is let through at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from otlp_feedback.observability.metrics import (
    CIRCUIT_OPENED,
    CIRCUIT_STATE,
    Telemetry,
)

State = Literal["closed", "open", "half_open"]

#: The ``otlp_feedback_circuit_state`` gauge's value for each state.
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """Thread-safe. ``allow`` before an attempt, then ``record_success``/``record_failure``."""

    def __init__(
        self,
        failure_threshold: int,
        reset_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._telemetry = telemetry or Telemetry()  # counts openings; watches the state
        self._telemetry.attach("breaker")
        self._telemetry.watch(CIRCUIT_STATE, lambda: STATE_VALUES[self.state])

    @property
    def opened_count(self) -> int:
        """Times the circuit opened since start (read from the telemetry)."""
        return int(self._telemetry.value(CIRCUIT_OPENED))

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May the caller try the guarded operation now?"""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open" and self._clock() - self._opened_at >= self._reset_timeout:
                self._state = "half_open"
                self._probing = False
            if self._state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "open":
                return  # a late report from before it opened must not extend the open window
            if self._state == "half_open" or self._failures >= self._threshold:
                self._telemetry.count_circuit_opened()
                self._state = "open"
                self._opened_at = self._clock()
                self._probing = False

    def seconds_until_probe(self) -> float:
        """How long until an open circuit lets a probe through (0 if it would now)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._reset_timeout - (self._clock() - self._opened_at))
