"""One receiver process for the benchmarks: ``FeedbackApp`` with the in-memory registry.

Started by ``e2e.py`` (once per ``--receiver-procs``; they share the port with SO_REUSEPORT).
Settings are the defaults except: the given ports and Kafka options, a temporary spool folder,
and no per-client rate limit (the benchmark has one client and measures capacity).
Prints ``READY <port>`` once serving, writes librdkafka's latest statistics (bytes sent to the
broker, before and after compression) to ``--stats-file`` every half second, and shuts down
gracefully on SIGTERM or SIGINT.

``--fastavro`` switches the compiled Avro writer off, to measure what it saves;
``--python-path`` switches the native fast path off (``receiver.native_fast_path``), to measure
what it saves.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.app import FeedbackApp, settle_process_heap
from otlp_feedback.config import load_config
from otlp_feedback.registry.client import InMemoryRegistry


def _producer_with_stats(stats_file: Path) -> Any:
    """A ``Producer`` factory that also writes librdkafka's statistics to ``stats_file``."""

    def on_stats(raw: str) -> None:
        stats = json.loads(raw)
        keep = {k: stats.get(k, 0) for k in ("tx", "tx_bytes", "txmsgs", "txmsg_bytes")}
        keep["txretries"] = sum(b.get("txretries", 0) for b in stats.get("brokers", {}).values())
        stats_file.write_text(json.dumps(keep))

    def factory(conf: dict[str, Any]) -> Producer:
        return Producer({**conf, "statistics.interval.ms": 500, "stats_cb": on_stats})

    return factory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18202)
    parser.add_argument("--bootstrap", default="127.0.0.1:18201")
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--linger-ms", type=float, default=None, help="default: the config's")
    parser.add_argument("--workers", type=int, default=16, help="gRPC worker threads")
    parser.add_argument("--http-port", type=int, default=0, help="OTLP/HTTP port; 0: off")
    parser.add_argument("--metrics-port", type=int, default=18203, help="/metrics; 0: off")
    parser.add_argument("--stats-file", type=Path, default=None)
    parser.add_argument("--spool-dir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--fastavro", action="store_true", help="disable the compiled writer")
    parser.add_argument("--python-path", action="store_true", help="disable the native path")
    args = parser.parse_args(argv)

    if args.stats_file is not None:
        kafka_sink.Producer = _producer_with_stats(args.stats_file)  # type: ignore[misc]
    spool_dir = args.spool_dir or Path(tempfile.mkdtemp(prefix="otlp-feedback-spool-"))
    kafka: dict[str, object] = {
        "bootstrap_servers": args.bootstrap,
        "compression": args.compression,
        "partitions": args.partitions,
    }
    if args.linger_ms is not None:
        kafka["linger_ms"] = args.linger_ms
    settings = load_config(
        receiver={
            "endpoint": f"127.0.0.1:{args.port}",
            "max_workers": args.workers,
            "native_fast_path": not args.python_path,
            "http": {
                "enabled": args.http_port != 0,
                "endpoint": f"127.0.0.1:{args.http_port}",
                "max_workers": args.workers,
            },
        },
        kafka=kafka,
        spool={"directory": spool_dir},
        # The per-client rate limit would cap the one benchmark client (127.0.0.1): measure
        # capacity, not the limit.
        rate_limit={"enabled": False},
        observability={
            "enabled": args.metrics_port != 0,
            "endpoint": f"127.0.0.1:{args.metrics_port}",
        },
        log_level="WARNING",
    )
    app = FeedbackApp(settings, registry=InMemoryRegistry())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app.start()
    settle_process_heap()  # as `otlp-feedback serve` does
    if args.fastavro:
        encoder = app.pipeline.encoder
        assert encoder is not None
        for serializer in encoder._serializers.values():
            serializer._writer = None  # benchmark-only: measure the fastavro path
    print(f"READY {app.port}", flush=True)
    try:
        stop.wait()
    finally:
        app.shutdown(grace=5.0)


if __name__ == "__main__":
    main()
