"""``/metrics`` as OTLP: the Prometheus families of the one ``Telemetry`` -> the SDK's
``MetricsData``, which its OTLP exporters send. A pure function; the transport is the SDK's.

Every metric keeps the name ``/metrics`` gives it, without the ``_total`` Prometheus adds to a
counter (a collector's Prometheus exporter adds it back), so a dashboard or alert written for
the scrape reads the pushed copy unchanged. Counters become cumulative monotonic sums started
at the process's start, gauges gauges, histograms explicit-bucket histograms with the same
bounds (Prometheus counts buckets cumulatively, OTLP per bucket: ``_bucket_counts``).
Prometheus keeps no minimum or maximum, so none is sent. The ``_created`` samples are dropped:
OTLP has the start time for that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import Metric as PromMetric

SCOPE = InstrumentationScope("otlp_feedback")
_CUMULATIVE = AggregationTemporality.CUMULATIVE
# Prometheus' unit suffixes -> UCUM units (OTLP's), for the families that have one.
_UNITS = {"seconds": "s", "bytes": "By"}


def metrics_data(
    families: Iterable[PromMetric], resource: Resource, start_ns: int, now_ns: int
) -> MetricsData:
    """The OTLP form of ``families`` (``CollectorRegistry.collect()``) at ``now_ns``."""
    metrics = [m for family in families if (m := _metric(family, start_ns, now_ns)) is not None]
    scope = ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")]
    )


def _metric(family: PromMetric, start_ns: int, now_ns: int) -> Metric | None:
    name, doc = family.name, family.documentation
    unit = _UNITS.get(family.unit or name.rsplit("_", 1)[-1], "")
    data: Sum | Gauge | Histogram
    if family.type == "counter":
        points = [
            _number(s.labels, s.value, start_ns, now_ns)
            for s in family.samples
            if s.name == name + "_total"
        ]
        data = Sum(data_points=points, aggregation_temporality=_CUMULATIVE, is_monotonic=True)
    elif family.type == "gauge":
        data = Gauge(data_points=[_number(s.labels, s.value, 0, now_ns) for s in family.samples])
    elif family.type == "histogram":
        data = Histogram(
            data_points=_histogram_points(name, family.samples, start_ns, now_ns),
            aggregation_temporality=_CUMULATIVE,
        )
    else:  # summaries, info, state sets: /metrics has none
        return None
    return Metric(name=name, description=doc, unit=unit, data=data)


def _number(labels: Mapping[str, str], value: float, start_ns: int, now_ns: int) -> NumberDataPoint:
    # Counts are integers in the store; OTLP keeps ints and doubles apart.
    number: int | float = int(value) if float(value).is_integer() else value
    return NumberDataPoint(
        attributes=dict(labels), start_time_unix_nano=start_ns, time_unix_nano=now_ns, value=number
    )


def _histogram_points(
    name: str, samples: Iterable[Any], start_ns: int, now_ns: int
) -> list[HistogramDataPoint]:
    # One point per label set: its buckets (le -> cumulative count), count and sum.
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        point = series.setdefault(tuple(sorted(labels.items())), {"buckets": []})
        if s.name == name + "_bucket":
            point["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == name + "_count":
            point["count"] = int(s.value)
        elif s.name == name + "_sum":
            point["sum"] = s.value
    points = []
    for key, point in series.items():
        buckets = sorted(point["buckets"])
        points.append(
            HistogramDataPoint(
                attributes=dict(key),
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=point.get("count", 0),
                sum=point.get("sum", 0.0),
                bucket_counts=_bucket_counts([count for _, count in buckets]),
                explicit_bounds=[le for le, _ in buckets if not math.isinf(le)],
                # Unknown: the encoder leaves an unset min/max out of the point.
                min=cast(float, None),
                max=cast(float, None),
            )
        )
    return points


def _bucket_counts(cumulative: list[float]) -> list[int]:
    """Prometheus' cumulative bucket counts (the last is +Inf) -> OTLP's count per bucket."""
    counts, below = [], 0.0
    for total in cumulative:
        counts.append(int(total - below))
        below = total
    return counts
