"""``otlp-feedback serve`` as an operator runs it: edit the config file, send SIGHUP, and the
running process applies what can change live (here redaction rules and the log level), names
what needs a restart, and keeps serving."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from harness import ServeProcess, message_starts, serve_config
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.config import Settings
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration


@pytest.fixture
def config_file(settings: Settings, tmp_path: Path) -> tuple[Path, dict[str, Any], int]:
    """A serve config on a free port writing to this test's topics (JSON logs, INFO)."""
    return serve_config(tmp_path, settings, 3, observability={"endpoint": "127.0.0.1:0"})


@pytest.fixture
def served(config_file: tuple[Path, dict[str, Any], int]) -> Iterator[ServeProcess]:
    serve = ServeProcess(config_file[0])
    try:
        serve.wait_for_log(message_starts("serving; SIGTERM or SIGINT stops, SIGHUP reloads"))
        yield serve
    finally:
        serve.stop()


def send_comment(port: int, event_id: str, comment: str) -> None:
    record = make_log_record(
        "feedback.user_feedback",
        {"event.id": event_id, "session.id": "s-1", "feedback.comment": comment},
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = LogsServiceStub(channel).Export(logs_request([record]), timeout=30)
    assert not response.HasField("partial_success")


def test_sighup_reloads_redaction_and_log_level_and_names_restart_only_changes(
    served: ServeProcess,
    config_file: tuple[Path, dict[str, Any], int],
    kafka_reader: Callable[[int], list[dict[str, Any]]],
) -> None:
    path, config, port = config_file
    comment = "mail jane@example.com or call 415-555-2671"
    send_comment(port, "before", comment)

    config["redaction"] = {"detectors": ["email"]}  # phone numbers now pass
    config["log_level"] = "DEBUG"
    config["kafka"]["partitions"] = 6  # needs a restart
    path.write_text(yaml.safe_dump(config))
    served.process.send_signal(signal.SIGHUP)

    restart = served.wait_for_log(message_starts("config reload: needs a restart"))
    assert restart == "config reload: needs a restart, not applied: kafka.partitions"
    applied = served.wait_for_log(message_starts("config reloaded"))
    assert applied == "config reloaded: applied redaction.detectors, log_level"

    send_comment(port, "after", comment)
    comments = {e["value"]["event_id"]: e["value"]["comment"] for e in kafka_reader(2)}
    assert comments == {
        "before": "mail [EMAIL] or call [PHONE]",
        "after": "mail [EMAIL] or call 415-555-2671",
    }
    assert served.stop() == 0


def test_a_broken_config_on_sighup_is_reported_and_the_running_one_kept(
    served: ServeProcess, config_file: tuple[Path, dict[str, Any], int]
) -> None:
    path, config, port = config_file
    path.write_text(yaml.safe_dump({**config, "redaction": {"detectors": ["iban"]}}))
    served.process.send_signal(signal.SIGHUP)

    failed = served.wait_for_log(message_starts("config reload failed"))
    assert "redaction.detectors" in failed
    send_comment(port, "still-serving", "mail jane@example.com")
    assert served.stop() == 0
