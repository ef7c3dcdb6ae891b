"""``otlp-feedback dev``, the README's first command: it brings up broker, registry and receiver,
accepts feedback, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.config import load_config
from otlp_feedback.consumer import FeedbackConsumer
from otlp_feedback.embedded.tansu import free_port
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_for(lines: queue.Queue[str], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} not printed within {timeout}s; got:\n{''.join(seen)}")


def test_dev_runs_everything_accepts_feedback_and_stops_on_sigterm(tmp_path: Path) -> None:
    broker, registry, receiver, http = free_port(), free_port(), free_port(), free_port()
    config = tmp_path / "dev.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {
                    "endpoint": f"127.0.0.1:{receiver}",
                    "http": {"endpoint": f"127.0.0.1:{http}"},
                },
                "kafka": {"partitions": 2},
                "observability": {"endpoint": "127.0.0.1:0"},
                "dev": {
                    "broker_port": broker,
                    "registry_port": registry,
                    "data_dir": str(tmp_path / "data"),
                },
            }
        )
    )
    proc = _spawn_dev(config)
    try:
        lines = _lines(proc)
        _wait_for(lines, "otlp-feedback dev is running", timeout=60)
        _wait_for(lines, f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{receiver}", timeout=5)
        _wait_for(lines, f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{http}", timeout=5)
        _wait_for(lines, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", timeout=5)
        curl = _wait_for(lines, f"curl -sS -X POST http://127.0.0.1:{http}/api/v1/events", 5)

        stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{receiver}"))
        record = make_log_record(
            "feedback.user_feedback", {"session.id": "dev-1", "feedback.thumbs": "up"}
        )
        response = stub.Export(logs_request([record]), timeout=30)
        assert not response.HasField("partial_success")
        over_http = make_log_record(
            "feedback.user_feedback", {"session.id": "dev-2", "feedback.thumbs": "down"}
        )
        posted = httpx.post(
            f"http://127.0.0.1:{http}/v1/logs",
            content=logs_request([over_http]).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=30,
        )
        assert posted.status_code == 200
        # The banner's events API example, run as printed.
        done = subprocess.run(["bash", "-c", curl.strip()], capture_output=True, timeout=60)
        assert json.loads(done.stdout) == {"accepted": 1, "rejected": []}, done

        settings = load_config(
            kafka={"bootstrap_servers": f"127.0.0.1:{broker}"},
            registry={"url": f"http://127.0.0.1:{registry}"},
        )
        with FeedbackConsumer(settings, from_beginning=True) as consumer:
            events = consumer.events(idle_timeout=20)
            received = [next(events), next(events), next(events)]
        assert {(e.event_type, e.session_id, e.thumbs) for e in received} == {  # type: ignore[attr-defined]
            ("user_feedback", "dev-1", "up"),
            ("user_feedback", "dev-2", "down"),
            ("user_feedback", "s-1", "up"),
        }
        assert (tmp_path / "data" / "registry.db").is_file()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)


def _spawn_dev(config: Path) -> subprocess.Popen[str]:
    """``otlp-feedback dev`` with ``config``, its output (stderr too) readable as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "otlp_feedback.cli", "dev", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start_dev(config: Path) -> subprocess.Popen[str]:
    proc = _spawn_dev(config)
    _wait_for(_lines(proc), "otlp-feedback dev is running", timeout=60)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, so that dev stops the Tansu broker it spawned (a SIGKILL would orphan it, on
    its port); SIGKILL only if it has not exited 30 s later. A no-op once it has exited."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_dev_restart_forgets_broker_and_registry_together(tmp_path: Path) -> None:
    # A version registered in one session (a schema tried, then dropped from the local files)
    # must not outlive the broker's memory: after a restart `schemas check` agrees with the
    # local history, with only the dev config (the dev stack's ports) to find the registry.
    from otlp_feedback.encoding import load_schemas
    from otlp_feedback.pipeline import subject_for

    registry_port = free_port()
    config = tmp_path / "dev.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"endpoint": "127.0.0.1:0", "http": {"endpoint": "127.0.0.1:0"}},
                "kafka": {"partitions": 1},
                "observability": {"endpoint": "127.0.0.1:0"},
                "dev": {
                    "broker_port": free_port(),
                    "registry_port": registry_port,
                    "data_dir": str(tmp_path / "data"),
                },
            }
        )
    )
    subject = subject_for("feedback.user_feedback")
    tried = json.loads(load_schemas().latest("user_feedback").text)
    tried["fields"].append({"name": "tried_field", "type": ["null", "string"], "default": None})
    proc = _start_dev(config)
    try:
        posted = httpx.post(
            f"http://127.0.0.1:{registry_port}/subjects/{subject}/versions",
            json={"schema": json.dumps(tried)},
            timeout=30,
        )
        assert posted.status_code == 200, posted.text
        check = [sys.executable, "-m", "otlp_feedback.cli", "schemas", "check"]
        failing = subprocess.run([*check, "--config", str(config)], capture_output=True, text=True)
        assert failing.returncode == 1, failing.stdout  # the tried version matches no file
        _stop(proc)

        proc = _start_dev(config)
        done = subprocess.run([*check, "--config", str(config)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        _stop(proc)


def test_a_newcomers_path_good_and_bad_records_are_all_accounted_for(tmp_path: Path) -> None:
    # Fresh dev; good feedback, a bad record and a misspelt name; the dev log says why each
    # was refused or ignored; tail shows the good events, dlq tail the bad one; stop, restart.
    receiver = free_port()
    config = tmp_path / "dev.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"endpoint": f"127.0.0.1:{receiver}", "http": {"enabled": False}},
                "kafka": {"partitions": 1},
                "observability": {"endpoint": "127.0.0.1:0"},
                "dev": {
                    "broker_port": free_port(),
                    "registry_port": free_port(),
                    "data_dir": str(tmp_path / "data"),
                },
            }
        )
    )
    proc = _spawn_dev(config)
    try:
        lines = _lines(proc)
        _wait_for(lines, "otlp-feedback dev is running", timeout=60)
        stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{receiver}"))
        records = [
            make_log_record("feedback.user_feedback", {"session.id": "good", "feedback.rating": 4}),
            make_log_record("feedback.user_feedback", {"session.id": "bad", "feedback.rating": 9}),
            make_log_record("feedback.user_feedbak", {"session.id": "typo"}),
        ]
        response = stub.Export(logs_request(records), timeout=30)
        assert response.partial_success.rejected_log_records == 1
        # In this order: names are checked at ingest, rejections logged after delivery.
        _wait_for(lines, "did you mean 'feedback.user_feedback'?", 30)
        _wait_for(lines, "rejected a user_feedback record (invalid): feedback.rating", 30)

        cli = [sys.executable, "-m", "otlp_feedback.cli"]
        tail = subprocess.run(
            [*cli, "tail", "--config", str(config), "--from-beginning", "--idle-timeout", "3"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert tail.returncode == 0, tail.stderr
        assert [json.loads(x)["session_id"] for x in tail.stdout.splitlines()] == ["good"]
        dlq = subprocess.run(
            [*cli, "dlq", "tail", "--config", str(config), "--from-beginning", "--max", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dlq.returncode == 0, dlq.stderr
        (letter,) = [json.loads(x) for x in dlq.stdout.splitlines()]
        assert "feedback.rating" in letter["reason"]
        assert letter["attributes"]["session.id"] == "bad"

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0
        proc = _spawn_dev(config)
        _wait_for(_lines(proc), "keeps everything in memory", timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
