"""librdkafka's log lines go through Python logging (``logthrottle``), deduplicated and
rate-limited, so the JSON log format holds while the broker is down."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

from otlp_feedback.config import load_config
from otlp_feedback.embedded.tansu import free_port
from otlp_feedback.logthrottle import LIBRDKAFKA_LOGGER, Throttle


def line(message: str, client: str = "rdkafka#producer-1", level: int = 40) -> logging.LogRecord:
    # As confluent-kafka logs: logger.log(level, "%s [%s] %s", facility, name, message)
    return logging.LogRecord(
        "otlp_feedback.librdkafka", level, "", 0, "%s [%s] %s", ("FAIL", client, message), None
    )


def fail(ms: int) -> str:
    return f"127.0.0.1:1/bootstrap: Connect failed: Connection refused (after {ms}ms)"


def test_a_repeated_line_passes_once_per_interval_with_the_count_it_held_back() -> None:
    now = [0.0]
    throttle = Throttle(interval_s=60, clock=lambda: now[0])
    assert throttle.filter(line(fail(0)))
    # The same line from another client, with other numbers: the same kind.
    assert not throttle.filter(line(fail(3), client="rdkafka#producer-2"))
    assert not throttle.filter(line(fail(7)))
    assert throttle.filter(line("other broker message"))
    now[0] = 61.0
    again = line(fail(9))
    assert throttle.filter(again)
    assert again.getMessage().endswith("(2 more like it in the last 61s)")
    assert not throttle.filter(line(fail(10)))


def test_the_kinds_remembered_are_bounded() -> None:
    throttle = Throttle(interval_s=60, max_kinds=2, clock=lambda: 0.0)
    for text in ("a", "b", "c"):
        assert throttle.filter(line(text))
    assert throttle.filter(line("a"))  # forgotten: passes again
    assert not throttle.filter(line("c"))


def test_every_client_config_routes_librdkafka_logs_to_python_logging() -> None:
    assert load_config().kafka.client_config()["logger"] is LIBRDKAFKA_LOGGER


def test_with_the_broker_down_every_stderr_line_is_json() -> None:
    # A producer dialling a closed port, polled until librdkafka has complained through Python
    # logging (or, before the fix, for a while, writing %3|...|FAIL| lines to stderr instead).
    script = textwrap.dedent(
        f"""
        import logging, time
        from confluent_kafka import Producer
        from otlp_feedback.config import load_config
        from otlp_feedback.logsetup import configure_logging

        configure_logging("INFO", "json")
        seen = []
        class Seen(logging.Handler):
            def emit(self, record):
                seen.append(record)
        logging.getLogger("otlp_feedback.librdkafka").addHandler(Seen())
        settings = load_config(kafka={{"bootstrap_servers": "127.0.0.1:{free_port()}"}})
        producer = Producer(settings.kafka.client_config())
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            producer.poll(0.1)
        for _ in range(20):  # more of the same: throttled
            producer.poll(0.1)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines, "librdkafka said nothing"
    entries = [json.loads(text) for text in lines]  # raises on a raw %3|... line
    assert {e["logger"] for e in entries} == {"otlp_feedback.librdkafka"}
    assert len(entries) == len({e["msg"] for e in entries})  # no line twice
