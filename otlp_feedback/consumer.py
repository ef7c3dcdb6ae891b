"""Read the feedback topics back as typed events: what a downstream Avro consumer sees.

Each record's writer schema is resolved by id from the registry (confluent-kafka's
``AvroDeserializer``); the event type comes from the ``event_type`` header, else the topic.
Used by ``otlp-feedback tail``; Step 3 grows it into the consumer library.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from otlp_feedback.config import Settings
from otlp_feedback.errors import InvalidRequest, SinkUnavailable
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType, FeedbackEvent
from otlp_feedback.registry.client import ConfluentRegistry


class FeedbackConsumer:
    """Iterates typed events from the feedback topics. Not thread-safe (like Consumer)."""

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
    ) -> None:
        self._topics = {settings.kafka.topic_for(t): t for t in EVENT_TYPES}
        registry = ConfluentRegistry(settings.registry.client_config())
        self._deserializer = AvroDeserializer(registry.client)
        conf: dict[str, Any] = {
            **settings.kafka.client_config(),
            "group.id": group_id or f"otlp-feedback-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            # Joins are slow on some brokers (Tansu) with the 45 s default.
            "session.timeout.ms": 6000,
        }
        self._consumer = Consumer(conf)
        self._consumer.subscribe(list(self._topics))

    def events(self, *, idle_timeout: float | None = None) -> Iterator[FeedbackEvent]:
        """Yield events; stop after ``idle_timeout`` seconds without one (None: never)."""
        last = time.monotonic()
        while True:
            msg = self._consumer.poll(0.5)
            if msg is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise SinkUnavailable(f"consumer error: {error.str()}")
            last = time.monotonic()
            headers = msg.headers() or []
            pairs = list(headers.items()) if isinstance(headers, dict) else headers
            yield self._decode(msg.topic() or "", msg.value() or b"", pairs)
            self._consumer.commit(message=msg, asynchronous=True)

    def _decode(
        self, topic: str, value: bytes, headers: list[tuple[str, str | bytes | None]]
    ) -> FeedbackEvent:
        event_type = _event_type(headers) or self._topics.get(topic)
        if event_type is None:
            raise InvalidRequest(f"cannot tell the event type of a record on {topic}")
        try:
            record = self._deserializer(value, SerializationContext(topic, MessageField.VALUE))
        except (KafkaException, ValueError, TypeError) as exc:
            raise InvalidRequest(f"undecodable record on {topic}: {exc}") from exc
        return EVENT_MODELS[event_type].model_validate(record)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> FeedbackConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event_type(headers: list[tuple[str, str | bytes | None]]) -> EventType | None:
    for key, value in headers:
        if key == "event_type" and value is not None:
            name = value.decode(errors="replace") if isinstance(value, bytes) else value
            if name in EVENT_MODELS:
                return name
    return None
