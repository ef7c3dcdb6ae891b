"""Kafka compression codecs on our real records: producer CPU and bytes sent, per record.

Encodes the load generator's requests with the real pipeline (in-memory sink), then delivers
the same records through a ``KafkaSink`` per codec to a Tansu broker it starts (port 18251),
rounds interleaved so that other load on the machine hits every codec alike. CPU is this
process's (all threads, so librdkafka's compression included); bytes are librdkafka's
``tx_bytes`` (what went over the wire to the broker, framing included).

Run: ``.venv/bin/python benchmarks/compression.py [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import tansu
from loadgen import build_payloads

import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.config import load_config
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

CODECS = ("none", "lz4", "snappy", "zstd", "gzip")
PORT = 18251
_latest_stats: dict[str, dict[str, Any]] = {}


def encoded_batches(requests: int) -> list[list[OutboundRecord]]:
    sink = InMemorySink()
    pipeline = Pipeline(load_config(), InMemoryRegistry(), sink)
    pipeline.start()
    batches = []
    for payload in build_payloads(requests, 512):
        pipeline.export_logs(ExportLogsServiceRequest.FromString(payload))
        batches.append(list(sink.records))
        sink.records.clear()
    return batches


def _producer_factory(codec: str) -> Any:
    def on_stats(raw: str) -> None:
        _latest_stats[codec] = json.loads(raw)

    def factory(conf: dict[str, Any]) -> Producer:
        return Producer({**conf, "statistics.interval.ms": 100, "stats_cb": on_stats})

    return factory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=8, help="512-record batches per round")
    args = parser.parse_args(argv)
    batches = encoded_batches(args.requests)
    records = sum(len(b) for b in batches)
    cpu = dict.fromkeys(CODECS, 0.0)
    wall = dict.fromkeys(CODECS, 0.0)
    with tempfile.TemporaryDirectory() as tmp, tansu(PORT, Path(tmp) / "tansu.log"):
        sinks = {}
        for codec in CODECS:
            config = load_config(
                kafka={
                    "bootstrap_servers": f"127.0.0.1:{PORT}",
                    "compression": codec,
                    "topics": {t: f"bench.{codec}.{t}" for t in EVENT_TYPES},
                }
            ).kafka
            kafka_sink.Producer = _producer_factory(codec)  # type: ignore[misc]
            sink = kafka_sink.KafkaSink(config, [config.topic_for(t) for t in EVENT_TYPES])
            sink.start()
            sinks[codec] = (sink, config)
        for _ in range(args.rounds):
            for codec, (sink, config) in sinks.items():
                for batch in batches:
                    retargeted = [
                        OutboundRecord(
                            config.topic_for(r.event_type),
                            r.key,
                            r.value,
                            r.headers,
                            r.event_id,
                            r.event_type,
                        )
                        for r in batch
                    ]
                    c0, t0 = time.process_time(), time.perf_counter()
                    sink.deliver(retargeted, 30.0)
                    cpu[codec] += time.process_time() - c0
                    wall[codec] += time.perf_counter() - t0
        time.sleep(0.5)  # a last statistics snapshot
        for sink, _ in sinks.values():
            sink.shutdown(5.0)
    sent = records * args.rounds
    print(f"{sent} records per codec ({args.rounds} rounds of {records}); per record:")
    print(f"{'codec':>8} {'cpu_us':>8} {'wall_us':>8} {'tx_bytes':>9} {'vs none':>8}")
    base = _latest_stats.get("none", {}).get("tx_bytes", 0) / sent or float("nan")
    for codec in CODECS:
        tx = _latest_stats.get(codec, {}).get("tx_bytes", 0) / sent
        print(
            f"{codec:>8} {cpu[codec] / sent * 1e6:8.1f} {wall[codec] / sent * 1e6:8.1f} "
            f"{tx:9.1f} {tx / base:8.2f}"
        )


if __name__ == "__main__":
    main()
