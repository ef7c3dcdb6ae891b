"""Prometheus metrics of one receiver process.

Two kinds: histograms and per-response counters observed where things happen (``Telemetry``,
handed to the receiver and the Kafka sink), and counters/gauges the components already keep,
read at scrape time by ``AppCollector`` so the hot path never counts anything twice.
Every metric is named ``otlp_feedback_*``; the README lists them, and the ``deploy/`` dashboard
and alerts may only use names ``/metrics`` exposes (``tests/integration/test_deploy_metrics.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from otlp_feedback.app import FeedbackApp

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 8, 32, 128, 512, 1024, 4096, 16384, 65536)
_CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}


class Telemetry:
    """The metrics registry of one app, with the instruments observed on the hot path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.export_seconds = Histogram(
            "otlp_feedback_export_duration_seconds",
            "Time to answer an Export RPC (ingestion latency), by signal.",
            ["signal"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.export_responses = PromCounter(
            "otlp_feedback_export_responses",
            "Export RPCs answered, by signal and gRPC status code.",
            ["signal", "code"],
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

    def bind(self, app: FeedbackApp) -> None:
        """Expose the app's own counters and gauges (read at scrape time)."""
        self.registry.register(AppCollector(app))

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class AppCollector(Collector):
    """Reads pipeline, sink, spool and breaker state when Prometheus scrapes."""

    def __init__(self, app: FeedbackApp) -> None:
        self._app = app

    def describe(self) -> list[Metric]:
        return []  # names are only known by collecting; auto_describe is not needed for these

    def collect(self) -> Iterator[Metric]:
        stats = self._app.pipeline.stats
        with stats._lock:
            accepted = dict(stats.accepted_by_type)
            rejected = dict(stats.rejected_by_type)
            redacted = dict(stats.redacted_by_type)
            ignored, dead, dead_failed = (
                stats.ignored,
                stats.dead_lettered,
                stats.dead_letter_failures,
            )
            requests, failures = stats.requests, stats.delivery_failures
            native, deferred = stats.native_events, stats.native_deferred
        yield _counter(
            "otlp_feedback_events_accepted",
            "Feedback events validated, encoded and confirmed (Kafka or spool), by type.",
            ["event_type"],
            {(t,): v for t, v in accepted.items()},
        )
        yield _counter(
            "otlp_feedback_events_rejected",
            "Feedback records rejected (partial_success), by type and reason.",
            ["event_type", "reason"],
            rejected,
        )
        received: Counter[str] = Counter(accepted)
        for (event_type, _), value in rejected.items():
            received[event_type] += value
        yield _counter(
            "otlp_feedback_events_received",
            "Feedback records received (accepted + rejected), by type.",
            ["event_type"],
            {(t,): v for t, v in received.items()},
        )
        yield _counter(
            "otlp_feedback_events_redacted",
            "Accepted events that had PII scrubbed from at least one field, by type.",
            ["event_type"],
            {(t,): v for t, v in redacted.items()},
        )
        yield _counter(
            "otlp_feedback_records_ignored", "Records that are not feedback.", [], {(): ignored}
        )
        yield _counter("otlp_feedback_requests", "Export requests processed.", [], {(): requests})
        yield _counter(
            "otlp_feedback_native_records",
            "Feedback log records the native fast path encoded (native) or handed to the Python "
            "stages (deferred: to reject, sanitise, redact, or of a form it does not handle).",
            ["path"],
            {("native",): native, ("deferred",): deferred},
        )
        yield _counter(
            "otlp_feedback_delivery_failures",
            "Export requests answered with a retryable delivery error.",
            [],
            {(): failures},
        )
        yield _counter(
            "otlp_feedback_events_dead_lettered", "Records sent to the DLQ.", [], {(): dead}
        )
        yield _counter(
            "otlp_feedback_dead_letter_failures",
            "Dead letters (or spooled events) Kafka refused for good: logged, not stored.",
            [],
            {(): dead_failed},
        )
        yield from self._sink_metrics()

    def _sink_metrics(self) -> Iterator[Metric]:
        kafka, failover = self._app.kafka, self._app.failover
        if kafka is not None:
            yield _counter(
                "otlp_feedback_records_published",
                "Records confirmed by Kafka (events and dead letters), by topic.",
                ["topic"],
                {(t,): v for t, v in kafka.published_by_topic().items()},
            )
            yield _counter(
                "otlp_feedback_kafka_failures",
                "Kafka publish batches that failed, by kind (timeout, unavailable, refused).",
                ["kind"],
                {(k,): v for k, v in kafka.failures_by_kind().items()},
            )
            yield _counter(
                "otlp_feedback_producer_rebuilds",
                "Kafka producers replaced.",
                [],
                {(): kafka.rebuilds},
            )
        if failover is None:
            return
        yield _counter(
            "otlp_feedback_events_spooled",
            "Events written to the spool.",
            [],
            {(): failover.spooled},
        )
        yield _counter(
            "otlp_feedback_events_replayed",
            "Spooled events confirmed by Kafka.",
            [],
            {(): failover.replayed},
        )
        yield _counter(
            "otlp_feedback_refusals",
            "Export requests refused for backpressure (spool full or disabled), with RetryInfo.",
            [],
            {(): failover.refused},
        )
        yield _gauge(
            "otlp_feedback_inflight_events",
            "Events awaiting Kafka on the request path.",
            failover.inflight,
        )
        yield _gauge(
            "otlp_feedback_spool_pending_records", "Records in the spool.", failover.backlog
        )
        yield _gauge(
            "otlp_feedback_spool_bytes", "Bytes of spool segment files.", failover.spool_bytes
        )
        yield _gauge(
            "otlp_feedback_circuit_state",
            "Kafka circuit breaker: 0 closed, 1 half-open, 2 open.",
            _CIRCUIT[failover.breaker.state],
        )
        yield _counter(
            "otlp_feedback_circuit_opened",
            "Times the Kafka circuit opened.",
            [],
            {(): failover.breaker.opened_count},
        )


def _counter(
    name: str, doc: str, labels: list[str], values: Mapping[Any, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
