"""Kafka first, the disk spool when Kafka fails: the sink the pipeline uses when a spool is on.

``deliver`` (request threads):
  - while the spool holds a backlog, new records are appended behind it, so Kafka receives
    events in the order they were accepted;
  - otherwise, if the circuit is closed and the in-flight budget has room, records go straight
    to Kafka with ``delivery.attempt_timeout_s``; a retryable failure opens the way to the spool;
  - the spool append is durable (per ``spool.fsync``) before ``deliver`` returns, so OK means
    "in Kafka or on disk". A full (or disabled) spool raises ``SpoolFull`` / ``BackpressureError``
    with a RetryInfo delay, and the client retries later.

The replayer thread drains the spool oldest first, commits only what Kafka confirmed, backs off
with jitter (``2**n * uniform(0.8, 1.2)``) on failure, and sleeps on the stop event so shutdown
interrupts it. Records Kafka refuses for good during replay are logged and counted as dead-letter
failures (``otlp_feedback_dead_letter_failures_total``) and the replay moves past them: only the
encoded event is left by then, not the OTLP source a dead letter needs. Rare: oversized events
are refused before they are spooled.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence

from otlp_feedback.config import DeliveryConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import (
    BackpressureError,
    DeliveryFailed,
    RetryableError,
    SinkUnavailable,
    SpoolFull,
)
from otlp_feedback.observability.metrics import (
    INFLIGHT,
    REFUSALS,
    REPLAYED,
    SPOOL_BYTES,
    SPOOL_PENDING,
    SPOOLED,
    Telemetry,
)
from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.breaker import CircuitBreaker
from otlp_feedback.sinks.spool import Spool

log = logging.getLogger(__name__)


class FailoverSink:
    """Thread-safe. Lifecycle: ``start``; ``shutdown`` idempotent and safe before start."""

    def __init__(
        self,
        primary: Sink,
        spool: Spool | None,
        config: DeliveryConfig,
        breaker: CircuitBreaker | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._primary = primary
        self._spool = spool
        self._config = config
        self._telemetry = telemetry or Telemetry()
        self.breaker = breaker or CircuitBreaker(
            config.breaker_failure_threshold,
            config.breaker_reset_timeout_s,
            telemetry=self._telemetry,
        )
        self._mode_lock = threading.Lock()
        self._backlog = False
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._replayer: threading.Thread | None = None
        self._shut_down = False
        # Counts and the state gauges go to the telemetry, which /metrics reads.
        self._telemetry.attach("failover")
        self._telemetry.watch(INFLIGHT, lambda: self.inflight)
        self._telemetry.watch(SPOOL_PENDING, lambda: self.backlog)
        self._telemetry.watch(SPOOL_BYTES, lambda: self.spool_bytes)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (resuming a crash's leftovers) and start Kafka and the replayer.

        If Kafka is down at start-up the sink still starts: events are spooled until it returns.
        """
        if self._spool is not None:
            self._spool.open()
            self._backlog = self._spool.pending_records > 0
            if self._backlog:
                log.info("resuming spool: %d records to replay", self._spool.pending_records)
        try:
            self._primary.start()
        except RetryableError as exc:
            if self._spool is None:
                raise
            log.warning("Kafka unavailable at start-up, spooling until it returns: %s", exc)
            self.breaker.record_failure()
        if self._spool is not None:
            self._replayer = threading.Thread(target=self._replay_loop, name="spool-replay")
            self._replayer.daemon = True
            self._replayer.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop replaying, flush Kafka within ``timeout``, close the spool. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        self._wake.set()
        # A replay delivery waiting on a broker that is down would hold the stop for up to
        # twice ``attempt_timeout_s``; its records are still in the spool (committed only once
        # confirmed), so it is cut short. Requests have drained by now (the ports close first).
        interrupt = getattr(self._primary, "interrupt", None)
        if interrupt is not None:
            interrupt()
        if self._replayer is not None:
            self._replayer.join(timeout)
        self._primary.shutdown(timeout)
        if self._spool is not None:
            self._spool.close()

    def force_flush(self, timeout: float) -> bool:
        """True once Kafka has confirmed everything queued and the spool is drained."""
        if self._shut_down:
            return self.backlog == 0
        deadline = time.monotonic() + timeout
        if not self._primary.force_flush(timeout):
            return False
        while self._spool is not None and self._spool.pending_records > 0:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            self._stop.wait(0.05)  # the replayer commits asynchronously; poll its progress
        return True

    @property
    def spooled(self) -> int:
        """Events written to the spool since start (read from the telemetry)."""
        return int(self._telemetry.value(SPOOLED))

    @property
    def replayed(self) -> int:
        """Spooled events Kafka confirmed since start."""
        return int(self._telemetry.value(REPLAYED))

    @property
    def refused(self) -> int:
        """Requests refused for backpressure since start."""
        return int(self._telemetry.value(REFUSALS))

    @property
    def backlog(self) -> int:
        return self._spool.pending_records if self._spool is not None else 0

    @property
    def can_spool(self) -> bool:
        """Whether the spool could take more events now (readiness)."""
        return self._spool is not None and self._spool.has_room

    @property
    def spool_bytes(self) -> int:
        return self._spool.disk_bytes if self._spool is not None else 0

    @property
    def inflight(self) -> int:
        """Events on the request path awaiting Kafka right now."""
        with self._inflight_lock:
            return self._inflight

    # -- request path ----------------------------------------------------------------------

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        if self._shut_down:
            raise SinkUnavailable(
                "sink is shut down", retry_after=self._config.refuse_retry_after_s
            )
        if not self._backlog and self._reserve(len(records)):
            try:
                if self.breaker.allow():
                    self._attempt(records, min(timeout, self._config.attempt_timeout_s))
                    return
            except RetryableError as exc:
                if self._spool is None:
                    raise
                log.warning("Kafka attempt failed, spooling %d events: %s", len(records), exc)
            finally:
                self._release(len(records))
        self._to_spool(records)

    def _attempt(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        try:
            self._primary.deliver(records, timeout)
        except RetryableError:
            self.breaker.record_failure()
            raise
        except DeliveryFailed:
            # Kafka answered (it refused some records for good): the broker is healthy, and a
            # half-open probe must end here or the circuit would stay half-open forever.
            self.breaker.record_success()
            raise
        self.breaker.record_success()

    def _reserve(self, count: int) -> bool:
        with self._inflight_lock:
            if self._inflight + count > self._config.max_inflight_events and self._inflight:
                return False
            self._inflight += count
            return True

    def _release(self, count: int) -> None:
        with self._inflight_lock:
            self._inflight -= count

    def _to_spool(self, records: Sequence[OutboundRecord]) -> None:
        retry_after = self._config.refuse_retry_after_s
        if self._spool is None:
            self._count_refusal()
            if self.breaker.state != "closed":
                raise SinkUnavailable(
                    "Kafka is unavailable (circuit open) and the spool is disabled",
                    retry_after=max(retry_after, self.breaker.seconds_until_probe()),
                )
            raise BackpressureError(
                f"in-flight budget of {self._config.max_inflight_events} events is full "
                "and the spool is disabled",
                retry_after=retry_after,
            )
        with self._mode_lock:
            try:
                self._spool.append(records)
            except SpoolFull as exc:
                self._count_refusal()
                # A full spool is a backpressure refusal: the client waits the configured delay
                # (delivery.refuse_retry_after_s), as for every other one.
                delay = max(retry_after, exc.retry_after or 0.0)
                raise SpoolFull(str(exc), retry_after=delay) from exc
            self._backlog = True
        self._telemetry.count_spooled(len(records))
        self._wake.set()

    def _count_refusal(self) -> None:
        self._telemetry.count_refusal()

    # -- replay ------------------------------------------------------------------------------

    def _replay_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                failures = self._replay_once(failures)
            except SinkUnavailable as exc:
                # A spool I/O error (peek/commit): the replayer must outlive it, or the backlog
                # would never drain. Nothing is committed, so the batch is retried.
                failures += 1
                log.error("spool replay I/O error (%s); retrying", exc)
                self._stop.wait(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        return min(
            self._config.retry_max_backoff_s,
            self._config.retry_initial_backoff_s * 2 ** min(failures, 16),
        ) * random.uniform(0.8, 1.2)

    def _replay_once(self, failures: int) -> int:
        """One replay step; returns the updated count of consecutive failures."""
        assert self._spool is not None
        spool = self._spool
        batch = spool.peek(self._config.replay_batch_records)
        if batch is None:
            with self._mode_lock:
                if spool.pending_records == 0:
                    self._backlog = False
            self._wake.wait(1.0)
            self._wake.clear()
            return failures
        if not self.breaker.allow():
            self._stop.wait(max(0.05, self.breaker.seconds_until_probe()))
            return failures
        try:
            self._primary.deliver(batch.records, self._config.attempt_timeout_s * 2)
        except DeliveryFailed as exc:
            # Some records can never be delivered: count them and move on, or the spool would
            # be stuck behind them forever.
            self.breaker.record_success()
            refused = sum(1 for r in batch.records if r.event_id in exc.failed)
            log.error("Kafka refused %d spooled events for good: %s", refused, exc)
            self._telemetry.count_dead_letter_failures(refused)
        except RetryableError as exc:
            self.breaker.record_failure()
            delay = self._backoff(failures + 1)
            log.info("spool replay failed (%s); retrying in %.2fs", exc, delay)
            self._stop.wait(delay)
            return failures + 1
        else:
            self.breaker.record_success()
        spool.commit(batch)
        self._telemetry.count_replayed(len(batch.records))
        return 0
