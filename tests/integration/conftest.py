"""Integration fixtures: a receiver wired to the real broker and registry, and a verifier that
reads the topics back with confluent-kafka's AvroDeserializer, as a downstream consumer would."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.events import EVENT_TYPES

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    kafka_bootstrap: str, registry_url: str, topic_prefix: str, tmp_path: Path
) -> Settings:
    return load_config(
        receiver={"endpoint": "127.0.0.1:0", "delivery_timeout_s": 15},
        kafka={
            "bootstrap_servers": kafka_bootstrap,
            "topics": {t: f"{topic_prefix}.{t}" for t in EVENT_TYPES},
            "dlq_topic": f"{topic_prefix}.dlq",
            "partitions": 3,
        },
        registry={"url": registry_url},
        spool={"directory": str(tmp_path / "spool")},
        observability={"endpoint": "127.0.0.1:0"},
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FeedbackApp]:
    with FeedbackApp(settings) as running:
        yield running


class KafkaReader:
    """Reads every record of the given topics, decoding values with the registry."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        registry = SchemaRegistryClient({"url": settings.registry.url})
        self._deserializer = AvroDeserializer(registry)

    def read(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Exactly ``count`` records (fails the test on fewer within ``timeout``), then drains
        briefly to catch extras."""
        topics = [self._settings.kafka.topic_for(t) for t in EVENT_TYPES]
        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.kafka.bootstrap_servers,
                "group.id": f"verify-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(topics)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < count and time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.5):
                    assert msg.error() is None, msg.error()
                    out.append(self._decode(msg))
            # A short extra poll catches duplicates or strays beyond ``count``.
            for msg in consumer.consume(500, 1.0):
                if msg.error() is None:
                    out.append(self._decode(msg))
        finally:
            consumer.close()
        assert len(out) >= count, f"expected {count} records in Kafka, got {len(out)}"
        return out

    def _decode(self, msg: Any) -> dict[str, Any]:
        ctx = SerializationContext(msg.topic(), MessageField.VALUE)
        return {
            "topic": msg.topic(),
            "key": msg.key(),
            "headers": dict(msg.headers() or []),
            "raw": msg.value(),
            "value": self._deserializer(msg.value(), ctx),
        }


@pytest.fixture
def kafka_reader(settings: Settings) -> Callable[[int], list[dict[str, Any]]]:
    return KafkaReader(settings).read
