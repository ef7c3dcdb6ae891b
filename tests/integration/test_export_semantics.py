"""Export semantics against the real broker and registry: partial success, stable ids, retryable
failures, and the ``tail`` command reading back what a downstream consumer sees."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import tail_config
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.cli import main
from otlp_feedback.config import Settings, load_config
from otlp_feedback.embedded.tansu import free_port
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration

NOW = time.time_ns()


def _valid(i: int) -> Any:
    return make_log_record(
        "feedback.user_feedback",
        {"session.id": f"s-{i}", "feedback.rating": i % 6},
        time_unix_nano=NOW + i,
    )


def _stub(app: FeedbackApp) -> LogsServiceStub:
    return LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))


def test_mixed_request_delivers_valid_records_and_counts_exactly_the_invalid_ones(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    records = [
        _valid(1),
        make_log_record("feedback.user_feedback", {"feedback.rating": 3}),  # no session.id
        make_log_record("app.started", {"x": 1}),  # not feedback
        _valid(2),
        make_log_record("feedback.system_health", {"feedback.health.status": "on fire"}),
        make_log_record("", {"plain": "log"}, body="hello"),  # not feedback
        _valid(3),
    ]
    response = _stub(app).Export(logs_request(records, {"service.name": "svc"}), timeout=30)

    assert response.partial_success.rejected_log_records == 2
    message = response.partial_success.error_message
    assert "log_records[1] (user_feedback): session.id is required" in message
    assert "log_records[4] (system_health): feedback.health.status" in message
    delivered = kafka_reader(3)
    assert sorted(r["value"]["session_id"] for r in delivered) == ["s-1", "s-2", "s-3"]
    assert app.pipeline.stats.ignored == 2


def test_a_retried_export_yields_the_same_event_ids(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    request = logs_request([_valid(1), _valid(2)], {"service.name": "svc"})
    stub = _stub(app)
    stub.Export(request, timeout=30)
    stub.Export(request, timeout=30)  # what an SDK retry after a lost response looks like

    delivered = kafka_reader(4)
    ids = [r["value"]["event_id"] for r in delivered]
    assert len(ids) == 4 and len(set(ids)) == 2


def test_unreachable_kafka_without_spool_answers_unavailable_with_retry_info(
    settings: Settings,
) -> None:
    dead = load_config(
        receiver={"endpoint": "127.0.0.1:0", "delivery_timeout_s": 1.0},
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "create_topics": False},
        registry={"url": settings.registry.url},
        spool={"enabled": False},
        observability={"enabled": False},
    )
    with FeedbackApp(dead) as app, pytest.raises(grpc.RpcError) as info:
        _stub(app).Export(logs_request([_valid(1)]), timeout=30)
    error = info.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "Kafka confirmed 0 of 1 events" in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds >= 1


def test_tail_prints_each_event_as_one_json_line(
    app: FeedbackApp,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _stub(app).Export(logs_request([_valid(1), _valid(2)], {"service.name": "svc"}), timeout=30)
    config = tail_config(settings, tmp_path)
    code = main(["tail", "--config", config, "--from-beginning", "--max", "2"])

    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    lines.sort(key=lambda e: e["session_id"])
    assert [(e["event_type"], e["session_id"]) for e in lines] == [
        ("user_feedback", "s-1"),
        ("user_feedback", "s-2"),
    ]
    assert lines[0]["service"] == "svc" and lines[0]["timestamp"].endswith("Z")
