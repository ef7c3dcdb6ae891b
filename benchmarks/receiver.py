"""One receiver process for the benchmarks: ``FeedbackApp`` with the in-memory registry.

Started by ``e2e.py`` (once per ``--receiver-procs``; they share the port with SO_REUSEPORT).
The settings are the defaults (``load_config()``, as ``otlp-feedback serve`` with no config
file) except what a benchmark must set: the gRPC, OTLP/HTTP and metrics ports on loopback
(fixed, so the load generator and ``e2e.py`` find them), the broker's address and a temporary
spool folder. Topics are created as ``serve`` creates them (``kafka.create_topics``,
``kafka.partitions``). Nothing else is changed unless asked (``--workers``, ``--compression``,
``--partitions``, ``--linger-ms``, ``--http-port 0``, ``--python-path``): rate limits,
redaction, validation and the log level are the defaults a user gets, and logging is set up as
``serve`` sets it up (JSON lines at INFO on stderr, which ``e2e.py`` keeps in a file).

Two things are not settings: the schema registry is the in-memory one (a registry is consulted
at start-up only), and the Kafka producer also writes librdkafka's statistics (bytes sent to
the broker, before and after compression) to ``--stats-file`` every half second.

Prints ``SETTINGS {"overrides": {...}}`` (every setting that differs from its default, as
dotted keys, so a result shows the configuration it ran), then ``READY <port>`` once serving,
and shuts down gracefully on SIGTERM or SIGINT.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.app import FeedbackApp, settle_process_heap
from otlp_feedback.config import Settings, load_config
from otlp_feedback.logsetup import configure_logging
from otlp_feedback.receiver.audit import configure_audit_logging
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


def benchmark_overrides(args: argparse.Namespace, spool_dir: Path) -> dict[str, Any]:
    """The ``load_config`` overrides: ports, broker, spool folder, and only what was asked."""
    receiver: dict[str, Any] = {
        "endpoint": f"127.0.0.1:{args.port}",
        "http": {"endpoint": f"127.0.0.1:{args.http_port}"},
    }
    kafka: dict[str, Any] = {"bootstrap_servers": args.bootstrap}
    if args.http_port == 0:
        receiver["http"] = {"enabled": False}
    if args.workers is not None:
        receiver["max_workers"] = receiver["http"]["max_workers"] = args.workers
    if args.python_path:
        receiver["native_fast_path"] = False
    for key in ("compression", "partitions", "linger_ms"):
        if getattr(args, key) is not None:
            kafka[key] = getattr(args, key)
    observability: dict[str, Any] = (
        {"endpoint": f"127.0.0.1:{args.metrics_port}"} if args.metrics_port else {"enabled": False}
    )
    overrides = {
        "receiver": receiver,
        "kafka": kafka,
        "spool": {"directory": str(spool_dir)},
        "observability": observability,
    }
    if args.telemetry_endpoint:
        overrides["telemetry"] = {"otlp": {"endpoint": args.telemetry_endpoint}}
    return overrides


def non_defaults(settings: Settings) -> dict[str, Any]:
    """Every setting that differs from its default, as dotted keys (``kafka.partitions``)."""
    default = Settings.model_construct().model_dump(mode="json")
    return dict(sorted(_diff(settings.model_dump(mode="json"), default)))


def _diff(value: Any, default: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and isinstance(default, dict):
        for key in value.keys() | default.keys():
            yield from _diff(value.get(key), default.get(key), f"{prefix}{key}.")
    elif value != default:
        yield prefix.rstrip("."), value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18202)
    parser.add_argument("--bootstrap", default="127.0.0.1:18201")
    parser.add_argument("--compression", default=None, help="default: the config's")
    parser.add_argument("--partitions", type=int, default=None, help="default: the config's")
    parser.add_argument("--linger-ms", type=float, default=None, help="default: the config's")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gRPC and HTTP worker threads; default: the config's",
    )
    parser.add_argument("--http-port", type=int, default=18203, help="OTLP/HTTP port; 0: off")
    parser.add_argument("--metrics-port", type=int, default=18210, help="/metrics; 0: off")
    parser.add_argument("--stats-file", type=Path, default=None)
    parser.add_argument("--spool-dir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--fastavro", action="store_true", help="disable the compiled writer")
    parser.add_argument("--python-path", action="store_true", help="disable the native path")
    parser.add_argument(
        "--telemetry-endpoint", default=None, help="telemetry.otlp.endpoint (self-telemetry)"
    )
    args = parser.parse_args(argv)

    if args.stats_file is not None:
        kafka_sink.Producer = _producer_with_stats(args.stats_file)  # type: ignore[misc]
    spool_dir = args.spool_dir or Path(tempfile.mkdtemp(prefix="otlp-feedback-spool-"))
    settings = load_config(**benchmark_overrides(args, spool_dir))
    print("SETTINGS " + json.dumps({"overrides": non_defaults(settings)}), flush=True)
    configure_logging(settings.log_level, settings.log_format)  # as `otlp-feedback serve` does
    configure_audit_logging(settings.audit)
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
