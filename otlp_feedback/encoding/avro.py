"""Encode typed events as Confluent wire-format Avro: magic byte 0, 4-byte schema id, body.

Serializers follow confluent-kafka's convention, a callable ``(obj, ctx) -> bytes``. The schema
id is resolved from the registry once, at start-up (``pipeline``), never per record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from fastavro import schemaless_writer

from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.errors import EncodingError
from otlp_feedback.events import FeedbackEvent

MAGIC_BYTE = 0


@dataclass(frozen=True, slots=True)
class SerializationContext:
    """Where the bytes are going (mirrors confluent_kafka.serialization.SerializationContext)."""

    topic: str
    field: str = "value"


class AvroEventSerializer:
    """Writes one event type with a fixed schema version and registry id. Thread-safe."""

    def __init__(self, schema: LocalSchema, schema_id: int) -> None:
        self.schema = schema
        self.schema_id = schema_id
        self._header = struct.pack(">bI", MAGIC_BYTE, schema_id)
        self._parsed = schema.parsed

    def __call__(self, event: FeedbackEvent, ctx: SerializationContext | None = None) -> bytes:
        """Encode ``event``. Raises ``EncodingError`` if it does not fit the schema."""
        buf = BytesIO()
        buf.write(self._header)
        # A flat pydantic model's __dict__ is exactly the Avro record; no model_dump copy.
        record: dict[str, Any] = event.__dict__
        try:
            schemaless_writer(buf, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodingError(
                f"{event.event_type} {event.event_id} does not fit schema "
                f"v{self.schema.version}: {exc}"
            ) from exc
        return buf.getvalue()
