"""Never lose an acknowledged event: broker restarts, receiver SIGKILL and SIGTERM under load.

Tansu keeps topics in memory, so a broker restart forgets what it held; with Apache Kafka, data
acknowledged with acks=all survives. To judge *our* guarantee rather than the test broker's, the
collector reads everything the broker holds before each broker kill (the sender pauses for that
moment only); everything the receiver acknowledged after that must arrive through the spool.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import IdCollector, SteadySender, wait_until

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.embedded.tansu import TansuBroker, free_port
from otlp_feedback.events import EVENT_TYPES

pytestmark = pytest.mark.integration

TOTAL = 50_000


def _config(broker: TansuBroker, registry_url: str, tmp_path: Path, port: int = 0) -> dict:
    return {
        "receiver": {"endpoint": f"127.0.0.1:{port}", "delivery_timeout_s": 10},
        "kafka": {"bootstrap_servers": broker.bootstrap_servers, "partitions": 3},
        "registry": {"url": registry_url},
        "delivery": {"attempt_timeout_s": 2, "breaker_reset_timeout_s": 1},
        "spool": {"directory": str(tmp_path / "spool"), "fsync": "always"},
        "observability": {"endpoint": "127.0.0.1:0"},
        # One sender on 127.0.0.1 at 5,000 events/s: the per-client rate limit (1,000/s by
        # default) would turn these durability tests into tests of the limit.
        "rate_limit": {"enabled": False},
        "log_format": "pretty",
    }


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    with TansuBroker("127.0.0.1", free_port(), log_file=tmp_path / "tansu.log") as running:
        yield running


def _topics(settings: Settings) -> list[str]:
    return [settings.kafka.topic_for(t) for t in EVENT_TYPES]


def _kill_and_restart_broker(
    broker: TansuBroker, sender: SteadySender, collector: IdCollector, outage_s: float
) -> None:
    with sender.paused():
        assert collector.caught_up(), "collector did not catch up before the broker kill"
        broker.kill()
    time.sleep(outage_s)  # the outage itself: traffic keeps coming and must be spooled
    broker.start()
    collector.reset()


def test_broker_killed_and_restarted_twice_loses_no_acknowledged_event(
    broker: TansuBroker, registry_url: str, tmp_path: Path
) -> None:
    settings = load_config(**_config(broker, registry_url, tmp_path))
    collector = IdCollector(broker.bootstrap_servers, _topics(settings))
    with FeedbackApp(settings) as app:
        assert app.failover is not None
        collector.start()
        sender = SteadySender(f"127.0.0.1:{app.port}", TOTAL, batch=250, rate=5000)
        sender.start(timeout=240)
        for round_ in (1, 2):
            wait_until(lambda r=round_: len(sender.acked) >= TOTAL * r // 3, 120, "progress")
            _kill_and_restart_broker(broker, sender, collector, outage_s=2.0)
        sender.join()
        assert app.failover.force_flush(120), "spool did not drain"
    assert collector.caught_up()
    collector.stop()

    assert len(sender.acked) == TOTAL
    missing = sender.acked - collector.seen()
    assert not missing, f"{len(missing)} acknowledged events missing, e.g. {sorted(missing)[:5]}"
    assert len(collector.seen()) == len(sender.acked)
    assert app.failover.spooled > 0, "the outages should have sent traffic through the spool"
    assert app.kafka is not None and app.kafka.rebuilds >= 1


def _serve(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "otlp_feedback.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def served(
    broker: TansuBroker, registry_url: str, tmp_path: Path
) -> Iterator[tuple[Path, int, IdCollector]]:
    """A config file for ``otlp-feedback serve`` on a free port, and a running collector."""
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(_config(broker, registry_url, tmp_path, port)))
    collector = IdCollector(broker.bootstrap_servers, _topics(load_config(config)))
    collector.start()
    yield config, port, collector
    collector.stop()


def test_receiver_sigkilled_mid_stream_loses_no_acknowledged_event(
    broker: TansuBroker, served: tuple[Path, int, IdCollector], tmp_path: Path
) -> None:
    config, port, collector = served
    receiver = _serve(config)
    sender = SteadySender(f"127.0.0.1:{port}", TOTAL, batch=250, rate=5000)
    try:
        sender.start(timeout=240)
        wait_until(lambda: len(sender.acked) >= TOTAL // 4, 120, "progress")
        receiver.kill()  # SIGKILL with the broker up, requests in flight
        receiver.wait()
        receiver = _serve(config)

        wait_until(lambda: len(sender.acked) >= TOTAL // 2, 120, "progress after restart")
        with sender.paused():
            assert collector.caught_up()
            broker.kill()  # now events can only be spooled ...
        spool = tmp_path / "spool"
        before = len(sender.acked)
        wait_until(lambda: len(sender.acked) >= before + 2000, 60, "events spooled during outage")
        receiver.kill()  # ... and the receiver dies holding a spool
        receiver.wait()
        broker.start()
        collector.reset()
        assert any(spool.iterdir()), "the killed receiver should have left a spool"
        receiver = _serve(config)  # resumes the spool on start-up

        sender.join()
        wait_until(lambda: sender.acked <= collector.seen(), 120, "the spool to be replayed")
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)

    assert len(sender.acked) == TOTAL
    missing = sender.acked - collector.seen()
    assert not missing, f"{len(missing)} acknowledged events missing, e.g. {sorted(missing)[:5]}"


def test_sigterm_under_load_exits_zero_promptly_and_loses_nothing(
    served: tuple[Path, int, IdCollector],
) -> None:
    config, port, collector = served
    receiver = _serve(config)
    total = 20_000
    sender = SteadySender(f"127.0.0.1:{port}", total, batch=250, rate=5000)
    try:
        sender.start(timeout=180)
        wait_until(lambda: len(sender.acked) >= total // 3, 120, "progress")
        started = time.monotonic()
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(30) == 0
        assert time.monotonic() - started < 30
        receiver = _serve(config)  # the sender's retries land here
        sender.join()
        assert collector.caught_up(60)
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)

    assert len(sender.acked) == total
    assert not sender.acked - collector.seen()
