"""The ``otlp-feedback`` command: serve | dev | registry | tail.

- ``serve``: the receiver against an existing Kafka cluster and schema registry.
- ``dev``: the embedded default: Tansu broker + bundled registry + receiver, on loopback.
- ``registry``: the bundled Confluent-compatible schema registry alone.
- ``tail``: print each event in the feedback topics as one JSON line.
- ``dlq replay``: re-submit dead letters once their cause is fixed.

Exit codes: 0 ok, 2 bad configuration or usage, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from otlp_feedback.config import Settings, load_config
from otlp_feedback.errors import ConfigError, OtlpFeedbackError
from otlp_feedback.logsetup import configure_logging

log = logging.getLogger("otlp_feedback")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"otlp-feedback: {exc}", file=sys.stderr)
        return 2
    except (OtlpFeedbackError, RuntimeError, OSError) as exc:
        print(f"otlp-feedback: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otlp-feedback", description="OTLP feedback -> Kafka")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the receiver against Kafka + a schema registry")
    serve.add_argument("--config", type=Path, help="YAML config file")
    serve.set_defaults(func=_serve)

    dev = sub.add_parser("dev", help="run broker + registry + receiver locally (embedded default)")
    dev.add_argument("--config", type=Path, help="YAML config file")
    dev.set_defaults(func=_dev)

    reg = sub.add_parser("registry", help="run the bundled schema registry")
    reg.add_argument("--host", default="127.0.0.1")
    reg.add_argument("--port", type=int, default=8081)
    reg.add_argument("--db", type=Path, default=Path(".otlp-feedback/registry.db"))
    reg.set_defaults(func=_registry)

    tail = sub.add_parser("tail", help="print feedback events from Kafka as JSON lines")
    tail.add_argument("--config", type=Path, help="YAML config file")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=None, help="stop after this many events")
    tail.add_argument(
        "--idle-timeout", type=float, default=None, help="stop after this many idle seconds"
    )
    tail.set_defaults(func=_tail)

    dlq = sub.add_parser("dlq", help="dead-letter tools")
    dlq_sub = dlq.add_subparsers(required=True, metavar="ACTION")
    replay = dlq_sub.add_parser("replay", help="re-submit dead letters (after fixing the cause)")
    replay.add_argument("--config", type=Path, help="YAML config file")
    replay.add_argument("--group", default="otlp-feedback-dlq-replay", help="consumer group")
    replay.set_defaults(func=_dlq_replay)
    return parser


def _wait_for_signal() -> None:
    """Block the main thread until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    stop.wait()


def _serve(args: argparse.Namespace) -> int:
    from otlp_feedback.app import FeedbackApp

    settings = load_config(args.config)
    configure_logging(settings.log_level, settings.log_format)
    app = FeedbackApp(settings)
    app.start()
    try:
        _wait_for_signal()
    finally:
        app.shutdown()
    return 0


def _dev(args: argparse.Namespace) -> int:
    from otlp_feedback.app import FeedbackApp
    from otlp_feedback.embedded.tansu import TansuBroker
    from otlp_feedback.registry.runner import RegistryServer

    base = load_config(args.config)
    dev = base.dev
    settings = load_config(
        args.config,
        kafka={
            **base.kafka.model_dump(exclude_unset=True),
            "bootstrap_servers": f"127.0.0.1:{dev.broker_port}",
        },
        registry={
            **base.registry.model_dump(exclude_unset=True),
            "url": f"http://127.0.0.1:{dev.registry_port}",
        },
        spool={"directory": dev.data_dir / "spool", **base.spool.model_dump(exclude_unset=True)},
        log_format="pretty",
    )
    configure_logging(settings.log_level, settings.log_format)
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    broker = TansuBroker("127.0.0.1", dev.broker_port, log_file=dev.data_dir / "tansu.log")
    registry = RegistryServer(
        host="127.0.0.1", port=dev.registry_port, db_path=dev.data_dir / "registry.db"
    )
    app = FeedbackApp(settings)
    try:
        broker.start()
        registry.start()
        app.start()
        _print_banner(settings, app.port)
        _wait_for_signal()
    finally:
        app.shutdown()
        registry.shutdown()
        broker.stop()
    return 0


def _print_banner(settings: Settings, port: int) -> None:
    print(
        "\notlp-feedback dev is running\n"
        f"  OTLP/gRPC receiver : {settings.receiver.endpoint} (port {port})\n"
        f"  Kafka (Tansu)      : {settings.kafka.bootstrap_servers}\n"
        f"  schema registry    : {settings.registry.url}\n\n"
        "Point an OpenTelemetry SDK at it:\n"
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}\n"
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=grpc\n"
        "Watch events arrive: otlp-feedback tail --from-beginning\n"
        "Stop with Ctrl-C.\n",
        flush=True,
    )


def _registry(args: argparse.Namespace) -> int:
    from otlp_feedback.registry.runner import serve_forever

    configure_logging("INFO", "pretty")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    serve_forever(args.host, args.port, args.db)
    return 0


def _tail(args: argparse.Namespace) -> int:
    from otlp_feedback.consumer import FeedbackConsumer
    from otlp_feedback.events import event_to_json_dict

    settings = load_config(args.config)
    configure_logging("WARNING", "pretty")
    seen = 0
    with FeedbackConsumer(settings, from_beginning=args.from_beginning) as consumer:
        for event in consumer.events(idle_timeout=args.idle_timeout):
            print(json.dumps(event_to_json_dict(event)), flush=True)
            seen += 1
            if args.max is not None and seen >= args.max:
                break
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from otlp_feedback.dlq import replay_dead_letters

    settings = load_config(args.config)
    configure_logging("WARNING", "pretty")
    report = replay_dead_letters(settings, group_id=args.group)
    print(json.dumps(report.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
