"""Integration fixtures: a receiver wired to the real broker and registry, and a verifier that
reads the topics back with confluent-kafka's AvroDeserializer, as a downstream consumer would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import KafkaReader

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.events import EVENT_TYPES

pytestmark = pytest.mark.integration


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, registry_url: str, topic_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for the test's broker, registry and topics; keyword arguments replace whole
    sections (``receiver={...}``) or add others (``rate_limit={...}``)."""

    def make(**sections: Any) -> Settings:
        base: dict[str, Any] = {
            "receiver": {
                "endpoint": "127.0.0.1:0",
                "http": {"endpoint": "127.0.0.1:0"},
                "delivery_timeout_s": 15,
            },
            "kafka": {
                "bootstrap_servers": kafka_bootstrap,
                "topics": {t: f"{topic_prefix}.{t}" for t in EVENT_TYPES},
                "dlq_topic": f"{topic_prefix}.dlq",
                "partitions": 3,
            },
            "registry": {"url": registry_url},
            "spool": {"directory": str(tmp_path / "spool")},
            "observability": {"endpoint": "127.0.0.1:0"},
        }
        return load_config(**{**base, **sections})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Iterator[FeedbackApp]:
    with FeedbackApp(settings) as running:
        yield running


@pytest.fixture
def kafka_reader(settings: Settings) -> Callable[[int], list[dict[str, Any]]]:
    return KafkaReader(settings).read
