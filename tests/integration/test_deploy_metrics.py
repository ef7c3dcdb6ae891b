"""The Grafana dashboard and the Prometheus alerts in ``deploy/`` only query metrics a running
receiver actually exposes, and the alert rules are complete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from prometheus_client.parser import text_string_to_metric_families

from otlp_feedback.app import FeedbackApp
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
ALERTS = yaml.safe_load((DEPLOY / "prometheus-alerts.yaml").read_text())
RULES: list[dict[str, Any]] = [rule for group in ALERTS["groups"] for rule in group["rules"]]
METRIC = re.compile(r"otlp_feedback_[a-z_]+")
# The series names Prometheus stores for each metric type (a counter family "x" is "x_total").
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}


def dashboard_queries() -> list[str]:
    """Every PromQL string in the dashboard: panel targets and template variable queries."""
    panels = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
    queries = [t["expr"] for p in panels for t in p["targets"]]
    queries += [v["definition"] for v in DASHBOARD["templating"]["list"] if "definition" in v]
    return queries


def referenced(queries: list[str]) -> set[str]:
    return {name for query in queries for name in METRIC.findall(query)}


def exposed_series(text: str) -> set[str]:
    """Series names the exposition offers, including labelled families with no sample yet."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def scraped(app: FeedbackApp) -> set[str]:
    """``/metrics`` after a little traffic: accepted (one with PII), rejected and ignored."""
    assert app.http is not None
    records = [
        make_log_record("feedback.user_feedback", {"session.id": "s1", "feedback.rating": 5}),
        make_log_record(
            "feedback.user_feedback",
            {"session.id": "s2", "feedback.comment": "mail me at jane@example.com"},
        ),
        make_log_record("feedback.user_feedback", {"feedback.rating": 4}),  # no session.id
        make_log_record("app.click", {"x": 1}),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        response = LogsServiceStub(channel).Export(logs_request(records), timeout=30)
    assert response.partial_success.rejected_log_records == 1
    return exposed_series(httpx.get(f"{app.http.url}/metrics").text)


def test_every_metric_the_dashboard_queries_is_exposed(scraped: set[str]) -> None:
    missing = sorted(referenced(dashboard_queries()) - scraped)
    assert not missing, f"the dashboard queries metrics the receiver does not expose: {missing}"


def test_every_metric_the_alerts_query_is_exposed(scraped: set[str]) -> None:
    missing = sorted(referenced([rule["expr"] for rule in RULES]) - scraped)
    assert not missing, f"alert rules query metrics the receiver does not expose: {missing}"


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_each_alert_rule_has_an_expression_a_duration_a_severity_and_a_summary(
    rule: dict[str, Any],
) -> None:
    assert rule["expr"].strip()
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    queries = referenced(dashboard_queries())
    assert queries >= {
        "otlp_feedback_events_accepted_total",  # ingest rate by type
        "otlp_feedback_events_rejected_total",  # rejection rate by reason
        "otlp_feedback_export_duration_seconds_bucket",  # export latency p50/p99
        "otlp_feedback_kafka_publish_duration_seconds_bucket",  # Kafka publish p99
        "otlp_feedback_spool_pending_records",
        "otlp_feedback_spool_bytes",
        "otlp_feedback_circuit_state",
        "otlp_feedback_events_dead_lettered_total",
        "otlp_feedback_refusals_total",
        "otlp_feedback_rate_limited_total",  # by client
    }


def test_the_alerts_cover_errors_spool_circuit_latency_dead_letters_and_rebuilds() -> None:
    queries = referenced([rule["expr"] for rule in RULES])
    assert queries >= {
        "otlp_feedback_events_rejected_total",
        "otlp_feedback_export_responses_total",
        "otlp_feedback_spool_pending_records",
        "otlp_feedback_circuit_state",
        "otlp_feedback_export_duration_seconds_bucket",
        "otlp_feedback_events_dead_lettered_total",
        "otlp_feedback_producer_rebuilds_total",
    }


def test_every_dashboard_panel_has_a_query_and_a_unique_id() -> None:
    panels = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
