"""Self-telemetry over OTLP (opt-in: ``telemetry.otlp.endpoint``): the receiver's own spans and
metrics, sent with the OpenTelemetry SDK's exporters to a collector.

Built by the app only when ``telemetry.otlp`` is enabled (the SDK is imported only then), started
and shut down by it:

- spans: a ``TracerProvider`` of our own (never the global one: a library user's is theirs),
  sampler ``ParentBased(TraceIdRatioBased(sample_ratio))``, the SDK's ``BatchSpanProcessor``
  (a bounded queue of 2048 spans: beyond it the oldest are dropped, which the SDK logs) and
  OTLP span exporter. ``tracer`` (a ``tracing.RequestTracer``) is what the pipeline is given.
- metrics: every ``metrics_interval_s`` (and once more at shutdown), the telemetry's
  Prometheus families translated by ``otlp_metrics.metrics_data`` and handed to the SDK's OTLP
  metric exporter, from one thread of ours that shutdown interrupts. No SDK ``MeterProvider``:
  the counts already live in ``Telemetry``, and recording them twice would cost the hot path.
- the resource: ``service.name`` (``otlp-feedback`` unless set), ``service.version``,
  ``service.instance.id`` (the ``receiver_id`` every record's lineage header carries: a span
  and the records of that run name the same process), plus ``resource_attributes``.

Every export is counted in ``otlp_feedback_telemetry_exports_total{signal, outcome}``, and the
SDK's own log lines (a collector down: one per retry) pass a ``Throttle``. The exporters retry
with the SDK's jittered backoff within ``timeout_s``; ``shutdown`` interrupts them, so a
collector that is down never holds up SIGTERM by more than one attempt.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from otlp_feedback.config import OtlpTelemetryConfig
from otlp_feedback.encoding.outbound import RECEIVER_ID, package_version
from otlp_feedback.logthrottle import Throttle
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.observability.otlp_metrics import metrics_data
from otlp_feedback.observability.tracing import RequestTracer

log = logging.getLogger(__name__)

# The SDK's loggers that speak once per failed export, retry or dropped span.
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.sdk._shared_internal",
)
for _name in _SDK_LOGGERS:
    logging.getLogger(_name).addFilter(Throttle())


def resource_of(config: OtlpTelemetryConfig) -> Resource:
    """The receiver's OTel resource (``Resource.create`` also reads ``OTEL_RESOURCE_ATTRIBUTES``,
    as every SDK does; what the config sets wins)."""
    return Resource.create(
        {
            **config.resource_attributes,
            "service.name": config.service_name,
            "service.version": package_version(),
            "service.instance.id": RECEIVER_ID,
        }
    )


class SelfTelemetry:
    """The receiver's span and metric exporters. ``start`` then ``shutdown`` (idempotent)."""

    def __init__(
        self,
        config: OtlpTelemetryConfig,
        telemetry: Telemetry,
        span_exporter: SpanExporter | None = None,
        metric_exporter: MetricExporter | None = None,
    ) -> None:
        self.config = config
        self._telemetry = telemetry
        telemetry.attach("telemetry")
        self.resource = resource_of(config)
        self._started_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tracer: RequestTracer | None = None
        self._provider: TracerProvider | None = None
        self._spans: _CountedSpans | None = None
        if config.traces:
            self._spans = _CountedSpans(span_exporter or _exporter(config, "traces"), telemetry)
            self._provider = TracerProvider(
                resource=self.resource,
                sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            )
            self._provider.add_span_processor(BatchSpanProcessor(self._spans))
            self.tracer = RequestTracer(self._provider.get_tracer("otlp_feedback"))
        self._metrics: MetricExporter | None = None
        if config.metrics:
            self._metrics = metric_exporter or _exporter(config, "metrics")

    def start(self) -> None:
        if self._metrics is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._send_metrics_periodically, name="otlp-feedback-metrics", daemon=True
            )
            self._thread.start()
        sent = [name for name, on in (("spans", self._provider), ("metrics", self._metrics)) if on]
        log.info(
            "self-telemetry: %s to %s (%s)",
            " and ".join(sent),
            self.config.endpoint,
            self.config.protocol,
        )

    def send_metrics(self) -> bool:
        """Send the metrics now (the periodic thread's work; tests). True if the exporter took
        them."""
        if self._metrics is None:
            return False
        data = metrics_data(
            self._telemetry.registry.collect(), self.resource, self._started_ns, time.time_ns()
        )
        try:
            ok = self._metrics.export(data) is MetricExportResult.SUCCESS
        except Exception:  # an exporter bug must not end the thread that sends the next ones
            log.exception("sending metrics failed")
            ok = False
        self._telemetry.count_telemetry_export("metrics", ok)
        return ok

    def _send_metrics_periodically(self) -> None:
        while not self._stop.wait(self.config.metrics_interval_s):
            self.send_metrics()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Send what is pending (the spans queued, the metrics once more), then stop the
        exporters; returns within about ``timeout_s`` whatever the collector does. Called after
        the pipeline's shutdown, so its last requests' spans and counts are in. Idempotent.

        The SDK's own flush ignores its timeout (it blocks on an export that retries for up to
        ``timeout_s`` of the config), so the sending is done on a thread of its own, waited for
        ``timeout_s``; then the exporters are shut down, which ends a retry still waiting.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        closer = threading.Thread(
            target=self._send_the_rest, name="otlp-feedback-telemetry-close", daemon=True
        )
        closer.start()
        closer.join(timeout_s)
        if closer.is_alive():
            log.warning(
                "self-telemetry: the collector took nothing within %.1f s; stopping without "
                "the last spans and metrics",
                timeout_s,
            )
        if self._spans is not None:
            self._spans.shutdown()
        if self._metrics is not None:
            self._metrics.shutdown(timeout_millis=0)

    def _send_the_rest(self) -> None:
        if self._thread is not None:
            self._thread.join()  # ends at once, or after the export it is in
        if self._provider is not None:
            self._provider.shutdown()  # the batch processor exports what it holds, then stops
        if self._metrics is not None and self._thread is not None:
            self.send_metrics()


class _CountedSpans(SpanExporter):
    """The span exporter, with each export counted in the telemetry."""

    def __init__(self, exporter: SpanExporter, telemetry: Telemetry) -> None:
        self._exporter = exporter
        self._telemetry = telemetry
        self._shut = threading.Lock()  # held for good once shut: both we and the SDK call it

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._exporter.export(spans)
        self._telemetry.count_telemetry_export("spans", result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        if self._shut.acquire(blocking=False):
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


# The SDK's exporter class for each (signal, protocol): module and name, imported when first
# built, so only a receiver with self-telemetry on loads one.
_EXPORTERS = {
    ("traces", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("traces", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("metrics", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
}


def _exporter(config: OtlpTelemetryConfig, signal: str) -> Any:
    """The SDK's OTLP exporter of ``signal`` for ``config``: gRPC dials the endpoint (plain
    for http://, TLS for https://); OTLP/HTTP posts to ``<endpoint>/v1/<signal>``."""
    assert config.endpoint is not None
    module, name = _EXPORTERS[signal, config.protocol]
    options: dict[str, Any] = {
        "headers": {k: v.get_secret_value() for k, v in config.headers.items()},
        "timeout": config.timeout_s,
    }
    if config.protocol == "grpc":
        options.update(endpoint=config.endpoint, insecure=config.endpoint.startswith("http://"))
    else:
        options.update(endpoint=_http_url(config.endpoint, signal))
    return getattr(importlib.import_module(module), name)(**options)


def _http_url(endpoint: str, signal: str) -> str:
    """OTLP/HTTP's base-URL rule (``OTEL_EXPORTER_OTLP_ENDPOINT``): ``/v1/<signal>`` appended
    to the URL's path."""
    return f"{endpoint.rstrip('/')}/v1/{signal}"
