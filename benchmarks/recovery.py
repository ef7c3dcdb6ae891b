"""Spool intake, replay rate and recovery time after a Kafka outage, end to end.

1. Start a receiver (in-process) with the broker DOWN: every Export is answered from the spool.
   Send ``--events`` feedback events in 512-record requests: this is the spool intake rate.
2. Start the broker. Measure the time until the first spooled events are confirmed in Kafka
   (recovery time) and until the spool is empty (replay rate = events / drain time).
3. Count what Kafka holds (sum of high watermarks): events lost = sent - held, floored at 0.

Run: ``.venv/bin/python benchmarks/recovery.py --events 200000``. Uses ports 18300-18399.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from confluent_kafka import Consumer, TopicPartition
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import load_config
from otlp_feedback.embedded.tansu import TansuBroker
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.testing import logs_request, make_log_record

BROKER_PORT = 18301


def _request(batch: int, start: int) -> ExportLogsServiceRequest:
    now = time.time_ns()
    return logs_request(
        [
            make_log_record(
                "feedback.user_feedback",
                {
                    "event.id": f"rec-{start + i}",
                    "session.id": f"s-{(start + i) % 997}",
                    "feedback.rating": (start + i) % 6,
                    "feedback.comment": "useful answer, a bit slow",
                },
                time_unix_nano=now,
            )
            for i in range(batch)
        ],
        {"service.name": "bench"},
    )


def _held(bootstrap: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "recovery-bench"})
    try:
        metadata = consumer.list_topics(timeout=10)
        return sum(
            consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in topics
            if t in metadata.topics
            for p in metadata.topics[t].partitions
        )
    finally:
        consumer.close()


def _distinct_ids(bootstrap: str, topics: list[str], expected: int) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"recovery-verify-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(topics)
    ids: set[bytes] = set()
    seen = 0
    deadline = time.monotonic() + 120
    try:
        while seen < expected and time.monotonic() < deadline:
            for msg in consumer.consume(5000, 1.0):
                if msg.error() is None:
                    seen += 1
                    ids.add(dict(msg.headers() or [])["event_id"])
    finally:
        consumer.close()
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        broker = TansuBroker("127.0.0.1", BROKER_PORT, log_file=Path(tmp) / "tansu.log")
        settings = load_config(
            receiver={"endpoint": "127.0.0.1:0"},
            kafka={"bootstrap_servers": broker.bootstrap_servers, "partitions": 12},
            delivery={"attempt_timeout_s": 0.5, "breaker_reset_timeout_s": 0.5},
            spool={"directory": str(Path(tmp) / "spool"), "fsync": args.fsync},
            observability={"enabled": False},
            # The per-client rate limit would cap the one benchmark client (127.0.0.1):
            # measure the spool, not the limit.
            rate_limit={"enabled": False},
            log_level="WARNING",
        )
        topics = [settings.kafka.topic_for(t) for t in EVENT_TYPES]
        requests = [
            _request(min(args.batch, args.events - s), s) for s in range(0, args.events, args.batch)
        ]
        with FeedbackApp(settings, registry=InMemoryRegistry()) as app:
            assert app.failover is not None
            stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda r: stub.Export(r, timeout=60), requests))
            intake_s = time.monotonic() - started
            spooled = app.failover.backlog

            broker.start()
            restarted = time.monotonic()
            first = None
            while app.failover.backlog > 0:
                if first is None and app.failover.backlog < spooled:
                    first = time.monotonic() - restarted
                time.sleep(0.01)
            drained_s = time.monotonic() - restarted
        held = _held(broker.bootstrap_servers, topics)
        distinct = _distinct_ids(broker.bootstrap_servers, topics, held)
        broker.stop()

    print(
        json.dumps(
            {
                "events_sent": args.events,
                "spooled": spooled,
                "spool_intake_events_per_s": round(args.events / intake_s),
                "recovery_first_confirmed_s": round(first or drained_s, 2),
                "drain_s": round(drained_s, 2),
                "replay_events_per_s": round(spooled / drained_s),
                "records_in_kafka": held,
                "distinct_event_ids_in_kafka": distinct,
                "events_lost": args.events - distinct,
                "fsync": args.fsync,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
