"""The ``otlp-feedback`` command: serve | dev | registry | tail.

- ``serve``: the receiver against an existing Kafka cluster and schema registry; SIGHUP re-reads
  the config file and applies what can change live (``FeedbackApp.reload``).
- ``dev``: the embedded default: Tansu broker + bundled registry + receiver, on loopback; the
  broker is memory-only, so the registry is reset at each start with it (``forget_registry``).
- ``registry``: the bundled Confluent-compatible schema registry alone.
- ``tail``: print the feedback events as JSON lines or a table, filtered by type, service, time.
- ``dlq replay``: re-submit dead letters once their cause is fixed; ``dlq tail``: print them.
- ``config check FILE``: validate a config file; print the effective settings, secrets masked.
- ``auth hash-key``: read an API key from stdin, print the SHA-256 that ``auth.api_keys`` stores.
- ``tokens mint``: print a browser feedback token (``otlp_feedback.tokens``) for a session/trace.
- ``schemas list|check|register|diff|new-version``: the schema evolution workflow
  (``schema_tools``); ``new-version TYPE`` writes the next .avsc and proto field from the model.

Exit codes: 0 ok, 2 bad configuration or usage, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from otlp_feedback.config import Settings, dev_settings, load_config, masked_yaml
from otlp_feedback.errors import ConfigError, OtlpFeedbackError
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.logsetup import configure_logging
from otlp_feedback.receiver.audit import configure_audit_logging

if TYPE_CHECKING:
    from otlp_feedback.encoding.schemas import SchemaSet
    from otlp_feedback.events import EventType

log = logging.getLogger("otlp_feedback")

# How long tail waits for a broker to answer before it says none is there and exits 1.
BROKER_CHECK_S = 10.0


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the receiver against Kafka + a schema registry")
    serve.add_argument("--config", type=Path, help="YAML config file")
    serve.set_defaults(func=_serve)

    dev = sub.add_parser("dev", help="run broker + registry + receiver locally (embedded default)")
    dev.add_argument("--config", type=Path, help="YAML config file")
    dev.add_argument(
        "--host",
        metavar="ADDRESS",
        help="interface the receiver and metrics ports bind (default: dev.host, 127.0.0.1); "
        "0.0.0.0 opens them to the network",
    )
    dev.set_defaults(func=_dev)

    reg = sub.add_parser("registry", help="run the bundled schema registry")
    reg.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    reg.add_argument("--port", type=int, default=8081, help="port (default: %(default)s)")
    reg.add_argument(
        "--db",
        type=Path,
        default=Path(".otlp-feedback/registry.db"),
        help="SQLite file, created if missing (default: %(default)s)",
    )
    reg.set_defaults(func=_registry)

    tail = sub.add_parser("tail", help="print feedback events from Kafka (JSON lines or a table)")
    tail.add_argument("--config", type=Path, help="YAML config file (default: the dev stack)")
    tail.add_argument(
        "--from-beginning", action="store_true", help="from the oldest event, not only new ones"
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        choices=EVENT_TYPES,
        help="only this event type (repeatable)",
    )
    tail.add_argument(
        "--service",
        dest="services",
        action="append",
        metavar="NAME",
        help="only events of this service.name (repeatable)",
    )
    tail.add_argument(
        "--since",
        type=_time_arg,
        metavar="TIME",
        help="events timestamped at or after TIME: ISO-8601 or relative (30s, 10m, 2h, 7d); "
        "implies --from-beginning",
    )
    tail.add_argument("--until", type=_time_arg, metavar="TIME", help="events before TIME")
    tail.add_argument(
        "--output",
        choices=("json", "table"),
        default="json",
        help="JSON lines (default) or an aligned table",
    )
    tail.add_argument(
        "--on-error",
        choices=("skip", "raise"),
        default="skip",
        help="an unreadable record: warn on stderr and go on (default), or stop with exit 1",
    )
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
    dlq_tail = dlq_sub.add_parser(
        "tail", help="print dead letters (why, then the record as sent) as JSON lines or a table"
    )
    dlq_tail.add_argument("--config", type=Path, help="YAML config file")
    dlq_tail.add_argument(
        "--from-beginning", action="store_true", help="from the oldest letter, not the newest"
    )
    dlq_tail.add_argument(
        "--output",
        choices=("json", "table"),
        default="json",
        help="JSON lines (default) or an aligned table",
    )
    dlq_tail.add_argument("--max", type=int, default=None, help="stop after this many letters")
    dlq_tail.add_argument(
        "--idle-timeout", type=float, default=None, help="stop after this many idle seconds"
    )
    dlq_tail.set_defaults(func=_dlq_tail)

    schemas = sub.add_parser(
        "schemas", help="list, check, register, diff and add versions of the Avro schemas"
    )
    schemas_sub = schemas.add_subparsers(required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", type=Path, help="YAML config file")
    where.add_argument(
        "--schemas-dir", type=Path, help="folder of <event_type>/vN.avsc (registry.schemas_dir)"
    )
    listing = schemas_sub.add_parser(
        "list", parents=[where], help="local versions next to the registry's, per subject"
    )
    listing.set_defaults(func=_schemas_list)
    check = schemas_sub.add_parser(
        "check", parents=[where], help="prove every local version compatible; exit 1 if not"
    )
    check.add_argument(
        "--local-only", action="store_true", help="the local history alone, no registry (CI)"
    )
    check.set_defaults(func=_schemas_check)
    register = schemas_sub.add_parser(
        "register", parents=[where], help="set each subject's mode, register every version"
    )
    register.set_defaults(func=_schemas_register)
    diff = schemas_sub.add_parser(
        "diff", parents=[where], help="fields added, removed and changed from A to B"
    )
    diff.add_argument("a", metavar="A", help="<event_type>:vN (e.g. model_response:v1) or a file")
    diff.add_argument("b", metavar="B", help="the same, for the newer side")
    diff.set_defaults(func=_schemas_diff)
    new_version = schemas_sub.add_parser(
        "new-version",
        parents=[where],
        help="write the next vN.avsc (and proto field) with the model's new fields appended",
    )
    new_version.add_argument(
        "event_type", metavar="TYPE", choices=EVENT_TYPES, help="the event type to add a version to"
    )
    new_version.add_argument(
        "--proto",
        type=Path,
        help="the .proto to append to (default: proto/otlp_feedback/v1/events.proto next to "
        "the schemas folder's schemas/avro, if there is one)",
    )
    new_version.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    new_version.set_defaults(func=_schemas_new_version)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(required=True, metavar="ACTION")
    config_check = config_sub.add_parser(
        "check", help="validate a config file; print the effective settings, secrets masked"
    )
    config_check.add_argument("file", type=Path, help="YAML config file")
    config_check.set_defaults(func=_config_check)

    auth = sub.add_parser("auth", help="authentication tools")
    auth_sub = auth.add_subparsers(required=True, metavar="ACTION")
    hash_key = auth_sub.add_parser(
        "hash-key", help="read an API key from stdin; print its SHA-256 for auth.api_keys"
    )
    hash_key.set_defaults(func=_auth_hash_key)

    tokens = sub.add_parser("tokens", help="browser feedback tokens")
    tokens_sub = tokens.add_subparsers(required=True, metavar="ACTION")
    mint = tokens_sub.add_parser(
        "mint", help="print a feedback token signed with tokens.signing_key_id"
    )
    mint.add_argument("--config", type=Path, help="YAML config file (tokens.keys)")
    mint.add_argument("--session-id", help="the session every event must carry")
    mint.add_argument("--trace-id", help="the trace id (32 hex) every event must carry")
    mint.add_argument(
        "--event-types",
        default="user_feedback",
        help="comma-separated event types it may send (default: user_feedback)",
    )
    mint.add_argument("--ttl", help="lifetime: 90s, 15m, 1h (default: tokens.default_ttl_s)")
    mint.add_argument(
        "--max-events", type=int, help="event budget (default: tokens.default_max_events)"
    )
    mint.add_argument(
        "--client-id", default="browser", help="the client id it acts for (default: browser)"
    )
    mint.set_defaults(func=_tokens_mint)
    return parser


def _version() -> str:
    # The one lookup, shared with the receiver_version header.
    from otlp_feedback.encoding.outbound import package_version

    return package_version()


def _wait_for_signal(
    on_reload: Callable[[], None] | None = None, start: Callable[[], None] | None = None
) -> None:
    """Block the main thread until SIGINT or SIGTERM. With ``on_reload``, SIGHUP runs it here
    on the main thread. ``start`` runs once the signals are watched: a SIGTERM that comes while
    it runs (the ports open first) stops the process cleanly right after, not by the default
    action."""
    # The kernel may deliver a signal to any thread (gRPC's, librdkafka's); then the main
    # thread is not interrupted and a Python handler would run only when it next wakes. The
    # wakeup fd is written by the C-level handler whichever thread takes the signal, so the
    # main thread blocks on that socket and reads the signal numbers from it.
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    watched = [signal.SIGINT, signal.SIGTERM]
    if on_reload is not None:
        watched.append(signal.SIGHUP)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _note_signal) for sig in watched}
    reloads = ", SIGHUP reloads the configuration" if on_reload is not None else ""
    try:
        if start is not None:
            start()
        log.info("serving; SIGTERM or SIGINT stops%s", reloads)
        while True:
            for signum in reader.recv(64):
                if signum == signal.SIGHUP and on_reload is not None:
                    on_reload()
                elif signum in (signal.SIGINT, signal.SIGTERM):
                    log.info("received %s, shutting down", signal.Signals(signum).name)
                    return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """Keeps the default action (exit) away; the wakeup fd tells the main thread."""


def _serve(args: argparse.Namespace) -> int:
    from otlp_feedback.app import FeedbackApp, settle_process_heap

    settings = load_config(args.config)
    configure_logging(settings.log_level, settings.log_format)
    configure_audit_logging(settings.audit)
    app = FeedbackApp(settings)

    def reload() -> None:
        log.info("received SIGHUP, re-reading the configuration")
        try:
            app.reload(load_config(args.config))
        except ConfigError as exc:
            log.error("config reload failed, keeping the running configuration: %s", exc)
        except Exception:
            # A bad reload must not take down a process that is serving fine.
            log.exception("config reload failed, keeping the running configuration")

    def start() -> None:
        app.start()
        settle_process_heap()

    try:
        _wait_for_signal(on_reload=reload, start=start)
    finally:
        app.shutdown()  # idempotent; safe after a failed start
    return 0


def _auth_hash_key(args: argparse.Namespace) -> int:
    from otlp_feedback.receiver.auth import hash_api_key

    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("API key (not echoed): ")
    else:
        key = sys.stdin.readline().rstrip("\r\n")
    if not key:
        print("otlp-feedback: no API key on stdin", file=sys.stderr)
        return 2
    print(hash_api_key(key))
    return 0


def _tokens_mint(args: argparse.Namespace) -> int:
    from otlp_feedback.tokens import mint, parse_duration

    settings = load_config(args.config)
    try:
        token = mint(
            settings.tokens,
            client_id=args.client_id,
            session_id=args.session_id,
            trace_id=args.trace_id,
            event_types=[t.strip() for t in args.event_types.split(",") if t.strip()],
            ttl_s=parse_duration(args.ttl) if args.ttl is not None else None,
            max_events=args.max_events,
        )
    except ValueError as exc:
        print(f"otlp-feedback: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _config_check(args: argparse.Namespace) -> int:
    print(masked_yaml(load_config(args.file)), end="")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from otlp_feedback.app import FeedbackApp, settle_process_heap
    from otlp_feedback.embedded.tansu import TansuBroker
    from otlp_feedback.registry.runner import RegistryServer

    settings = dev_settings(args.config, host=args.host)
    dev = settings.dev
    configure_logging(settings.log_level, settings.log_format)
    configure_audit_logging(settings.audit)
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    broker = TansuBroker("127.0.0.1", dev.broker_port, log_file=dev.data_dir / "tansu.log")
    registry_db = dev.data_dir / "registry.db"
    registry = RegistryServer(host="127.0.0.1", port=dev.registry_port, db_path=registry_db)
    app = FeedbackApp(settings)

    def start() -> None:
        broker.start()
        # After the broker: if another dev holds its port, start fails before touching its data.
        forget_registry(registry_db)
        registry.start()
        app.start()
        settle_process_heap()
        http_port = app.otlp_http.port if app.otlp_http is not None else None
        _print_banner(settings, app.port, http_port)

    try:
        # Signals are watched before the banner invites a Ctrl-C (as in ``serve``): one sent
        # right after it stops cleanly (exit 0) instead of by the default action (-15).
        _wait_for_signal(start=start)
    finally:
        app.shutdown()
        registry.shutdown()
        broker.stop()
    return 0


def forget_registry(db: Path) -> None:
    """Delete the dev registry's database, so it starts as empty as the broker beside it.

    The embedded broker is memory-only: each ``dev`` starts with no topics and no records. A
    registry that remembered the last session's subjects would describe data that no longer
    exists, and the versions registered then (a schema tried and dropped) would keep failing
    ``schemas check`` ("matches no local version") with nothing in the broker needing them.
    Resetting the two together keeps them consistent without a flag to remember."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def _print_banner(settings: Settings, port: int, http_port: int | None = None) -> None:
    scheme = "https" if settings.tls.enabled else "http"
    headers = (
        "  export OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<your token>\n"
        if settings.auth.mode != "none"
        else ""
    )
    http_line = (
        f"  OTLP/HTTP receiver : {settings.receiver.http.endpoint} (port {http_port})\n"
        if http_port is not None
        else ""
    )
    bearer = ' -H "Authorization: Bearer <your token>"' if settings.auth.mode != "none" else ""
    http_sdk = (
        "or, over OTLP/HTTP (protobuf; http/json works too):\n"
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={scheme}://127.0.0.1:{http_port}\n"
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n"
        "Or send typed events as plain JSON (the events API, no SDK needed):\n"
        f"  curl -sS -X POST {scheme}://127.0.0.1:{http_port}/api/v1/events{bearer} "
        "-H 'Content-Type: application/json' "
        """-d '{"event_type": "user_feedback", "session_id": "s-1", "thumbs": "up"}'\n"""
        if http_port is not None
        else ""
    )
    print(
        "\notlp-feedback dev is running\n"
        f"  OTLP/gRPC receiver : {settings.receiver.endpoint} (port {port})\n"
        f"{http_line}"
        f"  Kafka (Tansu)      : {settings.kafka.bootstrap_servers}\n"
        f"  schema registry    : {settings.registry.url}\n\n"
        "Point an OpenTelemetry SDK at it:\n"
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={scheme}://127.0.0.1:{port}\n"
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=grpc\n"
        f"{http_sdk}"
        f"{headers}"
        "Watch events arrive: otlp-feedback tail --from-beginning\n"
        "The embedded broker keeps everything in memory: Ctrl-C forgets every event and topic,\n"
        "and the registry is reset with it at each start (the local schemas are registered anew).\n"
        "Stop with Ctrl-C.\n",
        flush=True,
    )


def _registry(args: argparse.Namespace) -> int:
    from otlp_feedback.registry.runner import serve_forever

    configure_logging("INFO", "pretty")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    serve_forever(args.host, args.port, args.db)
    return 0


def _time_arg(text: str) -> datetime:
    from otlp_feedback.tail import parse_time

    try:
        return parse_time(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _tail(args: argparse.Namespace) -> int:
    from otlp_feedback.consumer import FeedbackConsumer
    from otlp_feedback.tail import TailFilter, json_line, table_header, table_row

    settings = load_config(args.config)
    configure_logging("WARNING", "pretty")
    wanted = TailFilter(frozenset(args.services or ()), args.since, args.until)
    show = table_row if args.output == "table" else json_line
    seen = 0
    with FeedbackConsumer(
        settings,
        event_types=args.types,
        # Kafka cannot seek by the events' own timestamps: --since reads everything and filters.
        from_beginning=args.from_beginning or args.since is not None,
        on_error=args.on_error,
    ) as consumer:
        consumer.check_broker(BROKER_CHECK_S)
        if args.output == "table":
            print(table_header(), flush=True)
        for item in consumer.records(idle_timeout=args.idle_timeout):
            if not wanted.matches(item.event):
                continue
            print(show(item.event), flush=True)
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


def _dlq_tail(args: argparse.Namespace) -> int:
    from otlp_feedback.dlq import tail_dead_letters
    from otlp_feedback.tail import letter_json_line, letter_table_header, letter_table_row

    settings = load_config(args.config)
    configure_logging("WARNING", "pretty")
    if args.output == "table":
        print(letter_table_header(), flush=True)
    for seen, read in enumerate(
        tail_dead_letters(
            settings,
            from_beginning=args.from_beginning,
            idle_timeout=args.idle_timeout,
            broker_timeout=BROKER_CHECK_S,
        ),
        start=1,
    ):
        shown = (
            letter_table_row(read.letter) if args.output == "table" else letter_json_line(read.body)
        )
        print(shown, flush=True)
        if args.max is not None and seen >= args.max:
            break
    return 0


def _schemas_context(
    args: argparse.Namespace,
) -> tuple[Settings, SchemaSet, dict[EventType, str]]:
    """Settings, the local schema history and the subject of each event type."""
    from otlp_feedback.encoding.schemas import load_schemas
    from otlp_feedback.events import EVENT_TYPES
    from otlp_feedback.pipeline import subject_for

    settings = load_config(args.config)
    configure_logging("WARNING", "pretty")
    folder = _schemas_dir(args, settings)
    # On stderr: stdout is the command's report, which scripts read.
    print(f"schemas: {folder}", file=sys.stderr)
    schemas = load_schemas(folder)
    subjects = {t: subject_for(settings.kafka.topic_for(t)) for t in EVENT_TYPES}
    return settings, schemas, subjects


def _schemas_dir(args: argparse.Namespace, settings: Settings) -> Path:
    """The folder this ``schemas`` command reads and writes (``--schemas-dir`` wins)."""
    return schemas_folder(args.schemas_dir or settings.registry.schemas_dir, Path.cwd())


def schemas_folder(given: Path | None, cwd: Path) -> Path:
    """The schemas folder the ``schemas`` commands read: the one given (``--schemas-dir``,
    ``registry.schemas_dir``), else ``./schemas/avro`` when the working directory is a
    checkout that has one (an installed package's bundled copy would silently ignore the
    checkout's edits), else the package's default."""
    from otlp_feedback.encoding.schemas import default_schemas_dir

    if given is not None:
        return given
    local = cwd / "schemas" / "avro"
    return local if local.is_dir() else default_schemas_dir()


def _print_lines(lines: Sequence[str]) -> None:
    print("\n".join(lines), flush=True)


def _schemas_list(args: argparse.Namespace) -> int:
    from otlp_feedback.registry.client import ConfluentRegistry
    from otlp_feedback.schema_tools import list_subjects, listing_lines

    settings, schemas, subjects = _schemas_context(args)
    registry = ConfluentRegistry(settings.registry.client_config())
    _print_lines(listing_lines(list_subjects(schemas, subjects, registry)))
    return 0


def _schemas_check(args: argparse.Namespace) -> int:
    from otlp_feedback.registry.client import ConfluentRegistry
    from otlp_feedback.schema_tools import check_local, check_registry, level_of

    settings, schemas, subjects = _schemas_context(args)
    level = level_of(settings.registry.compatibility)
    if args.local_only:
        report = check_local(schemas, subjects, level)
    else:
        registry = ConfluentRegistry(settings.registry.client_config())
        report = check_registry(schemas, subjects, registry, level)
    _print_lines(report.lines())
    return 0 if report.ok else 1


def _schemas_register(args: argparse.Namespace) -> int:
    from otlp_feedback.registry.client import ConfluentRegistry
    from otlp_feedback.schema_tools import level_of, register

    settings, schemas, subjects = _schemas_context(args)
    registry = ConfluentRegistry(settings.registry.client_config())
    report = register(schemas, subjects, registry, level_of(settings.registry.compatibility))
    _print_lines(report.lines())
    return 0 if report.ok else 1


def _schemas_diff(args: argparse.Namespace) -> int:
    from otlp_feedback.schema_tools import diff, resolve

    _, schemas, _ = _schemas_context(args)
    _print_lines(diff(resolve(args.a, schemas), resolve(args.b, schemas)).lines())
    return 0


def _schemas_new_version(args: argparse.Namespace) -> int:
    from otlp_feedback.events import EVENT_MODELS
    from otlp_feedback.mapping.convention import FIELD_KEYS
    from otlp_feedback.schema_tools import level_of
    from otlp_feedback.schema_tools.new_version import (
        append_to_proto,
        history_of,
        plan,
        proto_next_to,
        write,
    )

    settings, schemas, _ = _schemas_context(args)
    event_type: EventType = args.event_type
    history = history_of(schemas, event_type)
    level = level_of(settings.registry.compatibility)
    new = plan(EVENT_MODELS[event_type], history, FIELD_KEYS[event_type], level)
    if new is None:
        print(f"{event_type}: v{len(history)} already has every field of the model; nothing to do")
        return 0
    folder = _schemas_dir(args, settings)
    proto = args.proto or proto_next_to(folder)
    proto_path = proto if proto.is_file() else None
    if args.dry_run:
        print(f"would write {folder / event_type / f'v{new.version}.avsc'}:")
        print(new.text, end="")
        if proto_path is not None:
            _, block = append_to_proto(proto_path.read_text(), new.definition["name"], new)
            print(f"would append to message {new.definition['name']} in {proto_path}:")
            _print_lines(block or ["  (it already has these fields)"])
        return 0
    _print_lines(write(new, folder, proto_path))
    if proto_path is None:
        print(f"no .proto at {proto}: pass --proto to append the protobuf field(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
