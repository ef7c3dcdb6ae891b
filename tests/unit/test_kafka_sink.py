"""KafkaSink without a broker: a librdkafka stand-in that never confirms, to pin what the sink
does with a producer that is stuck (the idempotent-epoch loop seen after a broker outage)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import otlp_feedback.sinks.kafka as kafka_sink
from otlp_feedback.config import load_config
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import DeliveryTimeout
from otlp_feedback.sinks.kafka import KafkaSink


class StuckProducer:
    """Queues everything and confirms nothing; ``flush`` reports what is still queued."""

    built: ClassVar[list[StuckProducer]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.queued = 0
        self.purged = False
        StuckProducer.built.append(self)

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None:
        self.queued += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return self.queued

    def purge(self, **kwargs: Any) -> None:
        self.purged = True
        self.queued = 0


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaSink]:
    StuckProducer.built = []
    monkeypatch.setattr(kafka_sink, "Producer", StuckProducer)
    running = KafkaSink(load_config(kafka={"create_topics": False}).kafka, ["feedback.t"])
    running.start()
    yield running
    running.shutdown(0.1)


def _record() -> OutboundRecord:
    return OutboundRecord("feedback.t", b"k", b"v", [], "id-1", "user_feedback")


def test_force_flush_replaces_a_producer_that_timed_out_instead_of_waiting_on_it(
    sink: KafkaSink,
) -> None:
    with pytest.raises(DeliveryTimeout):
        sink.deliver([_record()], timeout=0.05)
    stuck = StuckProducer.built[-1]
    assert stuck.queued == 1  # its caller was told it failed (and spools or retries it)

    assert sink.force_flush(0.1)
    assert stuck.purged and len(StuckProducer.built) == 2
    assert sink.rebuilds == 1


def test_force_flush_waits_on_a_healthy_producer(sink: KafkaSink) -> None:
    StuckProducer.built[-1].queued = 3  # in flight, no timeout seen: not a reason to replace
    assert not sink.force_flush(0.1)
    assert len(StuckProducer.built) == 1
