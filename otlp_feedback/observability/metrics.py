"""The one telemetry object of a receiver process: every stage reports here, ``/metrics`` reads it.

Who reports what (each component receives the ``Telemetry`` at construction; built without one,
it counts into a private, throwaway one, which is what unit tests of a lone component get):

- the receivers: export latency and status codes (by ``transport``: grpc or http), feedback
  records per request, rate limits;
- the pipeline: once per request, ``count_request(outcome)`` (received, accepted, rejected,
  redacted, ignored, native/deferred, dead-lettered), plus delivery and dead-letter failures;
- the Kafka sink: once per batch, records published by topic, failures by kind, publish latency
  and batch size, producer rebuilds;
- the failover sink: spooled, replayed, refusals; the circuit breaker: times opened;
- the self-telemetry exporters (``selftelemetry``): each export of spans or metrics;
- the native plan's build (``native.build_plan``, at start and each redaction reload): which
  event types it leaves wholly to Python (``set_native_python_only``, a labelled gauge);
- gauges of current state (in-flight events, spool records and bytes, circuit state) are
  functions the owner of that state registers with ``watch`` when it is built, read at scrape.

``/metrics`` (``exposition``) reads only this object: counters live in one store under one lock
(``snapshot`` copies it), histograms and the per-response counters are prometheus_client
instruments in ``registry``. Nothing here knows the app, the pipeline or a sink. A family is
shown once something that reports into it exists: the pipeline's always, the Kafka sink's once
a Kafka sink was built on this telemetry (``attach``), a gauge once its owner watched it; so the
exposition is what it was when a collector read those components.

Several worker processes on one host, scraped as one (not implemented yet): because every count
enters through these methods and the store is a plain ``(family, *labels) -> value`` mapping,
the store can be replaced without touching a reporter, either by prometheus_client's multiprocess
values (an mmap file per process in a directory taken from config, merged by
``MultiProcessCollector`` at scrape; the watched gauges then become values their owners set, with
a multiprocess mode per gauge: ``livesum`` for in-flight and spool, ``max`` for the circuit), or
by a parent process that sums its workers' ``snapshot()`` dicts. A collector that walks one
process's objects at scrape time could do neither.

Every metric is named ``otlp_feedback_*``; the README lists them, and the ``deploy/`` dashboard
and alerts may only use names ``/metrics`` exposes (``tests/integration/test_deploy_metrics.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 8, 32, 128, 512, 1024, 4096, 16384, 65536)

#: A counter's key in the store: the family name, then its label values in order.
Key = tuple[str, ...]

# -- counter families (names without ``_total``; the exposition adds it) -------------------------
ACCEPTED = "otlp_feedback_events_accepted"
REJECTED = "otlp_feedback_events_rejected"
RECEIVED = "otlp_feedback_events_received"
REDACTED = "otlp_feedback_events_redacted"
IGNORED = "otlp_feedback_records_ignored"
REQUESTS = "otlp_feedback_requests"
NATIVE = "otlp_feedback_native_records"
DELIVERY_FAILURES = "otlp_feedback_delivery_failures"
DEAD_LETTERED = "otlp_feedback_events_dead_lettered"
DEAD_LETTER_FAILURES = "otlp_feedback_dead_letter_failures"
PUBLISHED = "otlp_feedback_records_published"
KAFKA_FAILURES = "otlp_feedback_kafka_failures"
REBUILDS = "otlp_feedback_producer_rebuilds"
SPOOLED = "otlp_feedback_events_spooled"
REPLAYED = "otlp_feedback_events_replayed"
REFUSALS = "otlp_feedback_refusals"
CIRCUIT_OPENED = "otlp_feedback_circuit_opened"
TELEMETRY_EXPORTS = "otlp_feedback_telemetry_exports"
# -- gauges: functions registered by the owner of the state (``watch``) ------------------------
INFLIGHT = "otlp_feedback_inflight_events"
SPOOL_PENDING = "otlp_feedback_spool_pending_records"
SPOOL_BYTES = "otlp_feedback_spool_bytes"
CIRCUIT_STATE = "otlp_feedback_circuit_state"
# -- gauges set by their owner (a value per label set, replaced whole) ------------------------
NATIVE_PYTHON_ONLY = "otlp_feedback_native_python_only_types"

# Unlabelled keys, built once: the hot path adds to them without building a tuple.
_REQUESTS, _IGNORED, _DEAD_LETTERED = (REQUESTS,), (IGNORED,), (DEAD_LETTERED,)
_NATIVE, _DEFERRED = (NATIVE, "native"), (NATIVE, "deferred")


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    section: str = "pipeline"  # shown once ``attach``-ed; gauges once watched
    gauge: bool = False
    set_gauge: bool = False  # a labelled gauge its owner sets (``set_native_python_only``)
    always: tuple[Key, ...] = ()  # labelled samples shown at 0 before the first count


# In exposition order (the order the app collector had).
_FAMILIES = (
    _Family(
        ACCEPTED,
        "Feedback events validated, encoded and confirmed (Kafka or spool), by type.",
        ("event_type",),
    ),
    _Family(
        REJECTED,
        "Feedback records rejected (partial_success), by type and reason.",
        ("event_type", "reason"),
    ),
    _Family(RECEIVED, "Feedback records received (accepted + rejected), by type.", ("event_type",)),
    _Family(
        REDACTED,
        "Accepted events that had PII scrubbed from at least one field, by type.",
        ("event_type",),
    ),
    _Family(IGNORED, "Records that are not feedback."),
    _Family(REQUESTS, "Export requests processed."),
    _Family(
        NATIVE,
        "Feedback log records the native fast path encoded (native) or handed to the Python "
        "stages (deferred: to reject, sanitise, redact, or of a form it does not handle).",
        ("path",),
        always=(_NATIVE, _DEFERRED),
    ),
    _Family(DELIVERY_FAILURES, "Export requests answered with a retryable delivery error."),
    _Family(DEAD_LETTERED, "Records sent to the DLQ."),
    _Family(
        DEAD_LETTER_FAILURES,
        "Dead letters (or spooled events) Kafka refused for good: logged, not stored.",
    ),
    _Family(
        PUBLISHED,
        "Records confirmed by Kafka (events and dead letters), by topic.",
        ("topic",),
        "kafka",
    ),
    _Family(
        KAFKA_FAILURES,
        "Kafka publish batches that failed, by kind (timeout, unavailable, refused).",
        ("kind",),
        "kafka",
    ),
    _Family(REBUILDS, "Kafka producers replaced.", section="kafka"),
    _Family(SPOOLED, "Events written to the spool.", section="failover"),
    _Family(REPLAYED, "Spooled events confirmed by Kafka.", section="failover"),
    _Family(
        REFUSALS,
        "Export requests refused for backpressure (spool full or disabled), with RetryInfo.",
        section="failover",
    ),
    _Family(INFLIGHT, "Events awaiting Kafka on the request path.", gauge=True),
    _Family(SPOOL_PENDING, "Records in the spool.", gauge=True),
    _Family(SPOOL_BYTES, "Bytes of spool segment files.", gauge=True),
    _Family(CIRCUIT_STATE, "Kafka circuit breaker: 0 closed, 1 half-open, 2 open.", gauge=True),
    _Family(CIRCUIT_OPENED, "Times the Kafka circuit opened.", section="breaker"),
    _Family(
        TELEMETRY_EXPORTS,
        "Exports of the receiver's own spans and metrics over OTLP (telemetry.otlp), by "
        "signal (spans, metrics) and outcome (ok, failed).",
        ("signal", "outcome"),
        "telemetry",
    ),
    _Family(
        NATIVE_PYTHON_ONLY,
        "1 for an event type the native fast path's plan leaves wholly to the Python path "
        "(the plan does not know one of its rules or constructs: see the warning logged), 0 "
        "for a type it compiles; by type. Set at each plan build (start, redaction reload).",
        ("event_type",),
        set_gauge=True,
    ),
)
_GAUGES = frozenset(f.name for f in _FAMILIES if f.gauge)


class Rejected(Protocol):
    """What the telemetry reads of a rejection."""

    @property
    def event_type(self) -> str: ...
    @property
    def category(self) -> str: ...


class RequestOutcome(Protocol):
    """What the telemetry reads of one request's outcome (``pipeline.ExportOutcome``)."""

    @property
    def ignored(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def native(self) -> int: ...
    @property
    def deferred(self) -> int: ...
    @property
    def accepted_by_type(self) -> Mapping[str, int]: ...
    @property
    def redacted_by_type(self) -> Mapping[str, int]: ...
    @property
    def rejections(self) -> Sequence[Rejected]: ...


class Telemetry:
    """Counters, histograms and watched gauges of one process. Thread-safe: every method may
    be called from any thread; each report takes one lock once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Key] = Counter()
        self._sections = {"pipeline"}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._set_gauges: dict[str, dict[Key, float]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.export_seconds = Histogram(
            "otlp_feedback_export_duration_seconds",
            "Time to answer an Export request (ingestion latency), by signal and transport "
            "(grpc, http).",
            ["signal", "transport"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.export_responses = PromCounter(
            "otlp_feedback_export_responses",
            "Export requests answered, by signal, gRPC status code (OTLP/HTTP answers are "
            "counted by the code of the same status-table row) and transport (grpc, http).",
            ["signal", "code", "transport"],
            registry=self.registry,
        )
        self.feedback_per_request = Histogram(
            "otlp_feedback_request_feedback_records",
            "Feedback records found per Export request (batch size).",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = PromCounter(
            "otlp_feedback_rate_limited",
            "Export requests refused by a client's rate limit (RESOURCE_EXHAUSTED), by client "
            "id (anonymous without authentication).",
            ["client"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "otlp_feedback_kafka_publish_duration_seconds",
            "Time from producing a batch to its last Kafka delivery report.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish_batch_records = Histogram(
            "otlp_feedback_kafka_publish_batch_records",
            "Records per Kafka publish batch.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(self._metrics))

    # -- set-up, by the components at construction -------------------------------------------

    def attach(self, section: str) -> None:
        """Show the families of ``section`` (``kafka``, ``failover``, ``breaker``): called by
        the component that reports into them, when it is built on this telemetry."""
        with self._lock:
            self._sections.add(section)

    def watch(self, gauge: str, read: Callable[[], float]) -> None:
        """Show ``gauge`` (one of the gauge names above) as ``read()`` at each scrape: for a
        current state its owner keeps anyway. ``read`` must be thread-safe and fast."""
        if gauge not in _GAUGES:
            raise ValueError(f"unknown gauge {gauge!r}")
        with self._lock:
            self._gauges[gauge] = read

    # -- reports: the native plan's build ----------------------------------------------------

    def set_native_python_only(self, python_only: Mapping[str, bool]) -> None:
        """Event type -> whether the native plan just built leaves it wholly to Python (once
        per plan build; replaces what the previous build set)."""
        values: dict[Key, float] = {(t,): 1.0 if only else 0.0 for t, only in python_only.items()}
        with self._lock:
            self._set_gauges[NATIVE_PYTHON_ONLY] = values

    def gauge_values(self, family: str) -> dict[Key, float]:
        """Label values -> value of a set gauge (empty before its owner set it)."""
        with self._lock:
            return dict(self._set_gauges.get(family, {}))

    # -- reports: the pipeline ---------------------------------------------------------------

    def count_request(self, outcome: RequestOutcome) -> None:
        """One request processed (once per request, not per record)."""
        rejections = outcome.rejections
        with self._lock:
            counts = self._counts
            counts[_REQUESTS] += 1
            counts[_IGNORED] += outcome.ignored
            counts[_DEAD_LETTERED] += outcome.dead_lettered
            counts[_NATIVE] += outcome.native
            counts[_DEFERRED] += outcome.deferred
            for event_type, n in outcome.accepted_by_type.items():
                counts[ACCEPTED, event_type] += n
            for event_type, n in outcome.redacted_by_type.items():
                counts[REDACTED, event_type] += n
            for r in rejections:
                counts[REJECTED, r.event_type, r.category] += 1

    def count_delivery_failure(self) -> None:
        """A request answered with a retryable delivery error."""
        self._add((DELIVERY_FAILURES,), 1)

    def count_dead_letter_failures(self, count: int) -> None:
        """Dead letters (or spooled events) Kafka refused for good."""
        self._add((DEAD_LETTER_FAILURES,), count)

    # -- reports: the sinks ------------------------------------------------------------------

    def count_published(self, topics: Iterable[str]) -> None:
        """One confirmed batch: the topic of each record in it."""
        per_topic = Counter(topics)
        with self._lock:
            counts = self._counts
            for topic, n in per_topic.items():
                counts[PUBLISHED, topic] += n

    def count_kafka_failure(self, kind: str) -> None:
        self._add((KAFKA_FAILURES, kind), 1)

    def count_producer_rebuild(self) -> None:
        self._add((REBUILDS,), 1)

    def count_spooled(self, count: int) -> None:
        self._add((SPOOLED,), count)

    def count_replayed(self, count: int) -> None:
        self._add((REPLAYED,), count)

    def count_refusal(self) -> None:
        self._add((REFUSALS,), 1)

    def count_circuit_opened(self) -> None:
        self._add((CIRCUIT_OPENED,), 1)

    # -- reports: the self-telemetry exporters -----------------------------------------------

    def count_telemetry_export(self, signal: str, ok: bool) -> None:
        """One export of the receiver's own ``signal`` (spans, metrics) over OTLP."""
        self._add((TELEMETRY_EXPORTS, signal, "ok" if ok else "failed"), 1)

    def _add(self, key: Key, count: int) -> None:
        with self._lock:
            self._counts[key] += count

    # -- reading -----------------------------------------------------------------------------

    def value(self, family: str, *labels: str) -> int:
        """One counter's value (0 before its first count)."""
        with self._lock:
            return self._counts.get((family, *labels), 0)

    def values(self, family: str) -> dict[tuple[str, ...], int]:
        """Label values -> value of every counted sample of ``family``."""
        with self._lock:
            return {key[1:]: v for key, v in self._counts.items() if key[0] == family}

    def snapshot(self) -> dict[Key, int]:
        """A copy of every counter: what an aggregating parent would sum across workers."""
        with self._lock:
            return dict(self._counts)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def _metrics(self) -> Iterator[Metric]:
        """The store's counters and the watched gauges, as Prometheus families."""
        with self._lock:
            counts = dict(self._counts)
            sections = set(self._sections)
            gauges = dict(self._gauges)
            set_gauges = {name: dict(values) for name, values in self._set_gauges.items()}
        by_family: dict[str, dict[Key, int]] = {}
        for key, value in counts.items():
            by_family.setdefault(key[0], {})[key[1:]] = value
        received: Counter[Key] = Counter(by_family.get(ACCEPTED, {}))
        for (event_type, _), value in by_family.get(REJECTED, {}).items():
            received[(event_type,)] += value
        by_family[RECEIVED] = dict(received)
        for family in _FAMILIES:
            if family.set_gauge:
                if family.name in set_gauges:  # shown once a plan was built on this telemetry
                    gauge = GaugeMetricFamily(family.name, family.doc, labels=list(family.labels))
                    for label_values, level in sorted(set_gauges[family.name].items()):
                        gauge.add_metric(list(label_values), level)
                    yield gauge
                continue
            if family.gauge:
                read = gauges.get(family.name)
                if read is not None:  # read outside the lock: it takes its owner's
                    yield GaugeMetricFamily(family.name, family.doc, value=read())
                continue
            if family.section not in sections:
                continue
            samples = by_family.get(family.name, {})
            if not family.labels:
                samples = {(): samples.get((), 0)}
            for key in family.always:
                samples.setdefault(key[1:], 0)
            metric = CounterMetricFamily(family.name, family.doc, labels=list(family.labels))
            for label_values, value in samples.items():
                metric.add_metric(list(label_values), value)
            yield metric


class _StoreCollector(Collector):
    """Hands the telemetry's own families to its registry when Prometheus scrapes."""

    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def describe(self) -> list[Metric]:
        return []  # samples depend on what was counted; auto_describe is not needed for these

    def collect(self) -> Iterator[Metric]:
        return self._collect()
