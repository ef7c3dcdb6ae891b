"""A scripted stand-in for ``confluent_kafka.Producer``, so the Kafka sink is tested without a
broker.

``FakeKafka`` plays the cluster: it builds ``FakeProducer``s (pass ``FakeKafka.producer`` where
the sink builds its ``Producer``) and lets a test say, per event id (the ``event_id`` header),
what each ``produce`` call raises (``BufferError``, ``KafkaException``) and what each delivery
report carries (a ``KafkaError`` or success). Reports are served by ``poll``/``flush`` on the
caller's thread, as librdkafka does, and immediately: tests need no sleeps. ``fail_fatally``
puts the newest producer in librdkafka's fatal state.

Thread-safe: the sink's poll thread and request threads share one producer.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class FakeKafka:
    """The scripted cluster: what produce calls and delivery reports return, and what arrived."""

    def __init__(self) -> None:
        self.producers: list[FakeProducer] = []
        #: Event ids confirmed, in report order (an id twice means it was delivered twice).
        self.delivered: list[str] = []
        #: Event ids passed to ``produce``, one entry per call (including refused calls).
        self.produced: list[str] = []
        self._raises: defaultdict[str, deque[BaseException]] = defaultdict(deque)
        self._always_raises: dict[str, BaseException] = {}
        self._reports: defaultdict[str, deque[KafkaError | None]] = defaultdict(deque)
        self._always_reports: dict[str, KafkaError] = {}
        self._fatal_after: dict[str, KafkaError] = {}
        self._lock = threading.Lock()

    # -- the script --------------------------------------------------------------------------

    def raise_on_produce(
        self, event_id: str, *errors: BaseException, forever: bool = False
    ) -> None:
        """The next ``produce`` calls for ``event_id`` raise ``errors`` in turn (then queue it);
        with ``forever``, every call raises the last of them."""
        with self._lock:
            if forever:
                self._always_raises[event_id] = errors[-1]
            else:
                self._raises[event_id].extend(errors)

    def report(self, event_id: str, *errors: KafkaError | None, forever: bool = False) -> None:
        """The next delivery reports for ``event_id`` carry ``errors`` in turn (``None`` is a
        success; then successes); with ``forever``, every report carries the last of them."""
        with self._lock:
            if forever:
                error = errors[-1]
                assert error is not None, "a success forever is the default"
                self._always_reports[event_id] = error
            else:
                self._reports[event_id].extend(errors)

    def fail_fatally_after(self, event_id: str, error: KafkaError) -> None:
        """Once ``event_id`` is queued, its producer fails fatally with ``error`` (below)."""
        with self._lock:
            self._fatal_after[event_id] = error

    def fail_fatally(self, error: KafkaError) -> None:
        """librdkafka's fatal state on the newest producer: ``error_cb(error)``, every queued
        record reported with ``_FATAL``, and every later ``produce`` refused with ``_FATAL``."""
        self.producers[-1]._fail_fatally(error)

    # -- the cluster side ----------------------------------------------------------------------

    def producer(self, conf: dict[str, Any]) -> FakeProducer:
        """Build a producer, as ``confluent_kafka.Producer(conf)`` would."""
        producer = FakeProducer(self, conf)
        self.producers.append(producer)
        return producer

    def _on_produce(self, event_id: str) -> KafkaError | None:
        """Raise what the script says; else return the fatal error to fail with once queued."""
        with self._lock:
            self.produced.append(event_id)
            pending = self._raises.get(event_id)
            error = pending.popleft() if pending else self._always_raises.get(event_id)
            if error is None:
                return self._fatal_after.pop(event_id, None)
        raise error

    def _report_for(self, event_id: str) -> KafkaError | None:
        with self._lock:
            pending = self._reports.get(event_id)
            error = pending.popleft() if pending else self._always_reports.get(event_id)
            if error is None:
                self.delivered.append(event_id)
            return error


class FakeProducer:
    """The surface of ``confluent_kafka.Producer`` that ``KafkaSink`` uses."""

    def __init__(self, cluster: FakeKafka, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.purged = False
        self._cluster = cluster
        self._error_cb: Callable[[KafkaError], None] | None = conf.get("error_cb")
        self._queue: deque[tuple[Message, DeliveryCallback | None, KafkaError | None]] = deque()
        self._fatal: KafkaError | None = None
        self._cond = threading.Condition()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        on_delivery: DeliveryCallback | None = None,
        **kwargs: Any,
    ) -> None:
        event_id = _event_id(headers)
        if self._fatal is not None:
            raise KafkaException(_fatal(self._fatal))
        fatal = self._cluster._on_produce(event_id)
        msg = Message(topic=topic, value=value, key=key, headers=headers)
        with self._cond:
            self._queue.append((msg, on_delivery, None))
            if fatal is not None:  # before the poll thread can confirm it
                self._fail_queued(_fatal(fatal))
            self._cond.notify_all()
        if fatal is not None:
            self._fail_fatally(fatal)

    def poll(self, timeout: float | None = None) -> int:
        """Serve the queued delivery reports; wait up to ``timeout`` for one if none is."""
        with self._cond:
            if not self._queue and timeout:
                self._cond.wait(timeout)
            served = list(self._queue)
            self._queue.clear()
        for msg, on_delivery, forced in served:
            error = forced or self._cluster._report_for(_event_id(msg.headers()))
            if on_delivery is not None:
                on_delivery(error, msg)
        return len(served)

    def flush(self, timeout: float | None = None) -> int:
        self.poll(0)
        return len(self)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True
        with self._cond:
            self._fail_queued(KafkaError(KafkaError._PURGE_QUEUE))

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def _fail_fatally(self, error: KafkaError) -> None:
        self._fatal = error
        with self._cond:
            self._fail_queued(_fatal(error))
        if self._error_cb is not None:
            self._error_cb(error)

    def _fail_queued(self, error: KafkaError) -> None:
        """Every queued record's report carries ``error``. The caller holds ``_cond``."""
        self._queue = deque((msg, cb, error) for msg, cb, _ in self._queue)
        self._cond.notify_all()


def _fatal(error: KafkaError) -> KafkaError:
    return KafkaError(KafkaError._FATAL, error.str(), fatal=True)


def _event_id(headers: Any) -> str:
    for key, value in headers or []:
        if key == "event_id":
            return bytes(value).decode()
    return ""
