"""Tools for the integration tests: a steady sender that records what was acknowledged, a
collector that keeps reading the topics (across broker restarts) and records what arrived, and
``KafkaReader``, which decodes the topics through the registry as a downstream consumer would,
and ``ServeProcess``: ``otlp-feedback serve`` as a subprocess whose log lines can be awaited."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import grpc
import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otlp_feedback.config import Settings
from otlp_feedback.embedded.tansu import free_port
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.testing import logs_request, make_log_record, waiting


def feedback_request(ids: list[str]) -> ExportLogsServiceRequest:
    """One request whose records carry the given ``event.id``s."""
    now = time.time_ns()
    records = [
        make_log_record(
            "feedback.user_feedback",
            {"event.id": event_id, "session.id": f"s-{event_id}", "feedback.rating": 4},
            time_unix_nano=now,
        )
        for event_id in ids
    ]
    return logs_request(records, {"service.name": "chaos"})


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``port`` of the loopback (for ``wait_until``)."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """``otlp_feedback.testing.waiting.wait_until``, in the argument order these tests use."""
    waiting.wait_until(condition, what, timeout)


# What the OTel SDK's gRPC exporter retries (opentelemetry-exporter-otlp-proto-grpc,
# ``_RETRYABLE_ERROR_CODES``, after the OTLP spec). CANCELLED is among them: a server that stops
# cancels the calls it has not answered when its grace ends, and their records were not
# acknowledged, so a sender must send them again (the receiver dedupes nothing; ids do).
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class SteadySender:
    """Sends ``total`` events in requests of ``batch`` at about ``rate`` events/s, from
    ``threads`` threads, retrying refused requests like an SDK would. Records acked ids."""

    def __init__(
        self,
        target: str,
        total: int,
        batch: int = 100,
        rate: float = 5000.0,
        threads: int = 4,
        prefix: str = "ev",
    ) -> None:
        self._target = target
        self._batches = [
            [f"{prefix}-{i}" for i in range(start, min(start + batch, total))]
            for start in range(0, total, batch)
        ]
        self._interval = batch / rate * threads
        self._threads = threads
        self._next = 0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Semaphore(threads)
        self.acked: set[str] = set()
        self.statuses: Counter[str] = Counter()
        self._workers: list[threading.Thread] = []
        self._deadline = 0.0

    def start(self, timeout: float) -> None:
        self._deadline = time.monotonic() + timeout
        for n in range(self._threads):
            worker = threading.Thread(target=self._work, name=f"sender-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def join(self) -> None:
        for worker in self._workers:
            worker.join(max(0.0, self._deadline - time.monotonic()) + 5)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No request in flight inside the block (senders wait at their next request)."""
        self._running.clear()
        for _ in range(self._threads):
            self._idle.acquire()
        try:
            yield
        finally:
            for _ in range(self._threads):
                self._idle.release()
            self._running.set()

    def _take(self) -> list[str] | None:
        with self._lock:
            if self._next >= len(self._batches):
                return None
            self._next += 1
            return self._batches[self._next - 1]

    def _work(self) -> None:
        channel = grpc.insecure_channel(self._target)
        export = LogsServiceStub(channel).Export
        while (ids := self._take()) is not None:
            request = feedback_request(ids)
            while time.monotonic() < self._deadline:
                self._running.wait()
                with self._idle:
                    started = time.monotonic()
                    try:
                        response = export(request, timeout=15)
                    except grpc.RpcError as exc:
                        self.statuses[exc.code().name] += 1
                        if exc.code() not in RETRYABLE_CODES:
                            raise
                    else:
                        assert response.partial_success.rejected_log_records == 0
                        self.statuses["OK"] += 1
                        with self._lock:
                            self.acked.update(ids)
                        time.sleep(max(0.0, self._interval - (time.monotonic() - started)))
                        break
                time.sleep(0.2)  # back off before retrying, as an SDK would
        channel.close()


class IdCollector:
    """Reads the topics continuously and records the ``event_id`` header of every record."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self.ids: Counter[str] = Counter()
        self._consumed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def seen(self) -> set[str]:
        """The distinct event ids read so far (a snapshot)."""
        with self._lock:
            return set(self.ids)

    def reset(self) -> None:
        """The broker was restarted (and forgot everything): read the new topics from 0."""
        with self._lock:
            self._generation += 1
            self._consumed = 0

    def caught_up(self, timeout: float = 60.0) -> bool:
        """True once everything currently in the topics has been read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                total = self.high_watermarks()
            except KafkaException:
                total = -1
            with self._lock:
                if total >= 0 and self._consumed >= total:
                    return True
            time.sleep(0.1)
        return False

    def high_watermarks(self) -> int:
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "watermarks"})
        try:
            metadata = consumer.list_topics(timeout=5)
            total = 0
            for topic in self._topics:
                if topic not in metadata.topics:
                    continue
                for p in metadata.topics[topic].partitions:
                    total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            return total
        finally:
            consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                generation = self._generation
            consumer = Consumer(
                {
                    "bootstrap.servers": self._bootstrap,
                    "group.id": f"collector-{time.monotonic_ns()}",
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 6000,
                    "enable.auto.commit": False,
                    "topic.metadata.refresh.interval.ms": 1000,
                }
            )
            consumer.subscribe(self._topics)
            try:
                while not self._stop.is_set() and generation == self._generation:
                    for msg in consumer.consume(1000, 0.2):
                        if msg.error() is not None:
                            continue
                        event_id = dict(msg.headers() or []).get("event_id", b"").decode()
                        with self._lock:
                            if generation == self._generation:
                                self.ids[event_id] += 1
                                self._consumed += 1
            finally:
                consumer.close()


def read_raw(
    settings: Settings, topic: str | list[str], count: int, timeout: float = 30.0
) -> list[Any]:
    """The first ``count`` raw records of ``topic`` (or of several topics together; fails the
    test on fewer)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"raw-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic] if isinstance(topic, str) else topic)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    finally:
        consumer.close()
    assert len(out) >= count, f"expected {count} records in {topic}, got {len(out)}"
    return out


def tail_config(settings: Settings, tmp_path: Path) -> str:
    """A config file pointing ``otlp-feedback tail`` at the test broker and registry."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": settings.kafka.bootstrap_servers,
                    "topics": dict(settings.kafka.topics),
                    "dlq_topic": settings.kafka.dlq_topic,
                },
                "registry": {"url": settings.registry.url},
            }
        )
    )
    return str(config)


class KafkaReader:
    """Reads every record of the given topics, decoding values with the registry."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        registry = SchemaRegistryClient({"url": settings.registry.url})
        self._deserializer = AvroDeserializer(registry)

    def read(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Exactly ``count`` records (fails the test on fewer within ``timeout``), then drains
        briefly to catch extras."""
        topics = [self._settings.kafka.topic_for(t) for t in EVENT_TYPES]
        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.kafka.bootstrap_servers,
                "group.id": f"verify-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(topics)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < count and time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.5):
                    assert msg.error() is None, msg.error()
                    out.append(self._decode(msg))
            # A short extra poll catches duplicates or strays beyond ``count``.
            for msg in consumer.consume(500, 1.0):
                if msg.error() is None:
                    out.append(self._decode(msg))
        finally:
            consumer.close()
        assert len(out) >= count, f"expected {count} records in Kafka, got {len(out)}"
        return out

    def _decode(self, msg: Any) -> dict[str, Any]:
        ctx = SerializationContext(msg.topic(), MessageField.VALUE)
        return {
            "topic": msg.topic(),
            "key": msg.key(),
            "headers": dict(msg.headers() or []),
            "raw": msg.value(),
            "value": self._deserializer(msg.value(), ctx),
        }


class ServeProcess:
    """``otlp-feedback serve --config FILE`` with its JSON log lines readable as they come."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otlp_feedback.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self._lines.put(json.loads(line))
            except json.JSONDecodeError:  # e.g. a traceback: keep it visible in failures
                self._lines.put({"level": "RAW", "msg": line.rstrip()})
        self._lines.put(None)

    def wait_for_log(self, matches: Callable[[dict[str, Any]], bool], timeout: float = 60) -> str:
        """The message of the first log line (from now on) that ``matches``, within
        ``timeout`` in all (a process that keeps logging other lines does not extend it)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                entry = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching log line; saw {seen}") from None
            if entry is None:
                raise AssertionError(f"serve exited ({self.process.poll()}); saw {seen}")
            seen.append(entry["msg"])
            if matches(entry):
                return str(entry["msg"])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def message_starts(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda entry: str(entry["msg"]).startswith(prefix)


def serve_config(
    tmp_path: Path, settings: Settings, partitions: int, **sections: Any
) -> tuple[Path, dict[str, Any], int]:
    """A config for ``otlp-feedback serve`` on a free gRPC port, writing to this test's topics
    (JSON logs at INFO); ``sections`` add or replace whole sections. Returns the file, what it
    holds and the port."""
    port = free_port()
    config: dict[str, Any] = {
        "receiver": {"endpoint": f"127.0.0.1:{port}"},
        "kafka": {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "topics": dict(settings.kafka.topics),
            "dlq_topic": settings.kafka.dlq_topic,
            "partitions": partitions,
        },
        "registry": {"url": settings.registry.url},
        "spool": {"directory": str(tmp_path / "spool")},
        "log_level": "INFO",
        "log_format": "json",
        **sections,
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config, port


def sdk_log_records(session_id: str) -> Sequence[ReadableLogRecord]:
    """What the OTel SDK hands its exporter for one ``feedback.user_feedback`` event."""
    captured = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(captured))
    provider.get_logger("feedback-widget").emit(
        event_name="feedback.user_feedback",
        timestamp=time.time_ns(),
        attributes={"session.id": session_id, "feedback.rating": 5},
    )
    provider.shutdown()
    return captured.get_finished_logs()


class RecordingStub:
    """Wraps an SDK exporter's gRPC stub to keep each Export response: the SDK drops them, and
    with them ``partial_success``, which is what the sender is told about rejected records."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self.responses: list[Any] = []

    def Export(self, *args: Any, **kwargs: Any) -> Any:  # the gRPC method's name
        response = self._stub.Export(*args, **kwargs)
        self.responses.append(response)
        return response


def record_responses(exporter: Any) -> RecordingStub:
    """Make an OTel SDK gRPC exporter (logs or traces) keep its Export responses."""
    stub = exporter._client = RecordingStub(exporter._client)
    return stub
