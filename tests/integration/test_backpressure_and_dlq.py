"""Backpressure with the real OTel SDK exporter, and the dead-letter round trip."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import IdCollector, feedback_request, read_raw, wait_until
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.dlq import replay_dead_letters
from otlp_feedback.embedded.tansu import TansuBroker, free_port
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    broker = TansuBroker("127.0.0.1", free_port(), log_file=tmp_path / "tansu.log")
    yield broker
    broker.stop()


def test_kafka_down_and_spool_full_refuses_with_retry_info_until_the_sdk_gets_through(
    stopped_broker: TansuBroker, registry_url: str, tmp_path: Path
) -> None:
    settings = load_config(
        receiver={"endpoint": "127.0.0.1:0"},
        kafka={"bootstrap_servers": stopped_broker.bootstrap_servers, "partitions": 2},
        registry={"url": registry_url},
        # The Python SDK waits exactly the advised delay, at most 5 times: 8 s gives Kafka
        # 40 s to return and drain the spool (it takes a few) before the SDK gives up.
        # Replays wait 2 x attempt_timeout_s for Kafka's confirmation: a loaded machine needs
        # seconds for the first deliveries to a broker that just started (a shorter wait made
        # the replayer rebuild its producer over and over and never drain).
        delivery={
            "attempt_timeout_s": 3.0,
            "breaker_reset_timeout_s": 0.5,
            "refuse_retry_after_s": 8.0,
        },
        spool={"directory": str(tmp_path / "spool"), "max_bytes": 65536},
        observability={"endpoint": "127.0.0.1:0"},
    )
    topics = [settings.kafka.topic_for(t) for t in EVENT_TYPES]
    with FeedbackApp(settings) as app:  # starts although Kafka is down
        assert app.failover is not None
        stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
        accepted: set[str] = set()
        refusal = None
        for n in range(200):
            ids = [f"bp-{n}-{i}" for i in range(50)]
            try:
                stub.Export(feedback_request(ids), timeout=10)
            except grpc.RpcError as exc:
                refusal = exc
                break
            accepted.update(ids)
        assert refusal is not None, "a 64 KiB spool should fill up"
        assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "spool" in refusal.details()
        status = rpc_status.from_call(refusal)
        retry = error_details_pb2.RetryInfo()
        assert status is not None and status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 8  # delivery.refuse_retry_after_s
        assert app.failover.refused >= 1 and accepted
        # Top the spool up one record at a time until even one is refused: what room is left is
        # smaller than one record, so the SDK's below (a long comment makes it bigger) cannot fit.
        for n in range(1000):
            try:
                stub.Export(feedback_request([f"top-{n}"]), timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                break
            accepted.add(f"top-{n}")
        else:
            pytest.fail("the spool never filled up to the last record")

        # The real SDK exporter is refused too, backs off as RetryInfo says, and retries ...
        # (it waits exactly the advised delay, delivery.refuse_retry_after_s, for at most 6
        # attempts).
        provider = LoggerProvider(resource=Resource.create({"service.name": "sdk-app"}))
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{app.port}", insecure=True, timeout=90)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        emitted = threading.Thread(
            target=provider.get_logger("w").emit,
            kwargs={
                "event_name": "feedback.user_feedback",
                "body": "a long comment, " * 50,
                "attributes": {"event.id": "from-sdk", "session.id": "s", "feedback.rating": 5},
            },
        )
        refused_before = app.failover.refused
        emitted.start()
        wait_until(lambda: app.failover.refused > refused_before, 30, "the SDK to be refused")
        # ... until Kafka returns and the spool drains.
        stopped_broker.start()
        emitted.join(120)
        assert not emitted.is_alive()
        assert app.failover.force_flush(60)
        provider.shutdown()

    collector = IdCollector(stopped_broker.bootstrap_servers, topics)
    collector.start()
    assert collector.caught_up(60)
    collector.stop()
    assert accepted <= collector.seen()
    assert "from-sdk" in collector.seen()


def test_invalid_record_is_dead_lettered_and_replay_delivers_it_after_the_fix(
    settings: Settings, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    strict = settings.model_copy(
        update={"validation": settings.validation.model_copy(update={"max_age_days": 1})}
    )
    two_days_ago = time.time_ns() - 2 * 86_400 * 10**9
    late = make_log_record(
        "feedback.user_feedback",
        {"session.id": "late", "feedback.rating": 2, "app.screen": "history"},
        time_unix_nano=two_days_ago,
    )
    fresh = make_log_record("feedback.user_feedback", {"session.id": "fresh", "feedback.rating": 5})
    with FeedbackApp(strict) as app:
        stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
        response = stub.Export(logs_request([late, fresh], {"service.name": "shop"}), timeout=30)
    assert response.partial_success.rejected_log_records == 1
    assert app.pipeline.stats.dead_lettered == 1

    (letter,) = read_raw(settings, settings.kafka.dlq_topic or "", 1)
    headers = dict(letter.headers() or [])
    assert b"older than 1 days" in headers["reason"]
    assert (headers["carrier"], headers["source_service"], headers["event_type"]) == (
        b"log_record",
        b"shop",
        b"user_feedback",
    )
    body = json.loads(letter.value())
    assert body["attributes"] == {
        "session.id": "late",
        "feedback.rating": 2,
        "app.screen": "history",
    }
    assert body["event_name"] == "feedback.user_feedback"

    # The fix: the default age limit. Replay re-delivers the letter with its original id.
    report = replay_dead_letters(settings, group_id=f"replay-{time.monotonic_ns()}")
    assert (report.read, report.replayed, report.still_failing) == (1, 1, 0)
    delivered = kafka_reader(2)
    late_event = next(r["value"] for r in delivered if r["value"]["session_id"] == "late")
    assert late_event["event_id"] == letter.key().decode()
    assert late_event["attributes"] == {"app.screen": "history"}
