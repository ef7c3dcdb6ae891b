"""Typed event -> the Kafka record that carries it (topic, key, Avro value, headers).

``EventEncoder`` holds one serializer per event type (resolved at start-up) and the topic map.
The record key keeps related events in one partition: session for user feedback, request id for
performance and model-response events, service for health, experiment id for experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

from otlp_feedback.encoding.avro import AvroEventSerializer, SerializationContext
from otlp_feedback.events import EventType, FeedbackEvent


@dataclass(slots=True)
class OutboundRecord:
    """One Kafka record ready to produce. Treat as immutable once built; the pipeline only
    appends request-level headers. Not ``frozen``: that makes construction 4x slower (1.3 vs
    0.3 us), and one is built per event and per spooled record replayed."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str
    event_type: EventType


class EventEncoder:
    """Encodes typed events into ``OutboundRecord``s. Thread-safe (immutable after init)."""

    def __init__(
        self,
        serializers: dict[EventType, AvroEventSerializer],
        topics: dict[EventType, str],
    ) -> None:
        self._serializers = serializers
        self._contexts = {t: SerializationContext(topics[t]) for t in serializers}
        # The headers that depend only on the event type, built once (encode is per event).
        self._type_headers = {
            t: (("event_type", t.encode()), ("schema_version", str(s.schema.version).encode()))
            for t, s in serializers.items()
        }

    def schema_ids(self) -> dict[EventType, int]:
        return {t: s.schema_id for t, s in self._serializers.items()}

    def encode(self, event: FeedbackEvent) -> OutboundRecord:
        """Raises ``EncodingError`` if the event does not fit its schema."""
        event_type = event.event_type
        ctx = self._contexts[event_type]
        value = self._serializers[event_type](event, ctx)
        event_id = event.event_id
        type_header, version_header = self._type_headers[event_type]
        headers = [type_header, ("event_id", event_id.encode()), version_header]
        if event.trace_id:
            headers.append(("trace_id", event.trace_id.encode()))
        key = event.kafka_key()
        return OutboundRecord(
            ctx.topic,
            key.encode() if key is not None else None,
            value,
            headers,
            event_id,
            event_type,
        )
