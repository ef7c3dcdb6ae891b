"""Confluent-framed Avro bytes -> a typed event, projected onto the reader's schema version.

The read side's only decoding step, with no Kafka in it (``FeedbackConsumer`` feeds it records;
unit tests feed it bytes). A value is ``0x00`` (magic byte), a 4-byte big-endian schema id, and
the Avro body. The *writer* schema is fetched from the registry by that id, once per id; the
*reader* schema is a local ``schemas/avro/<event_type>/vN.avsc``: the newest by default, or the
version pinned for that type. fastavro's ``schemaless_reader(writer, reader)`` resolves one onto
the other (fields the reader does not know are dropped, fields the writer did not have take the
reader's default), and the result is validated into the event type's pydantic model. Because
every field added after v1 is optional with a default, a record projected onto an older reader
version still validates: the newer fields take their defaults.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from pydantic import ValidationError

from otlp_feedback.encoding.schemas import LocalSchema, SchemaSet, load_schemas
from otlp_feedback.errors import CorruptFrame, SchemaError, UnknownSchemaId, UnreadableRecord
from otlp_feedback.events import EVENT_MODELS, READ_BACK, EventType, FeedbackEvent
from otlp_feedback.registry.client import SchemaRegistry

MAGIC_BYTE = 0
HEADER_BYTES = 5  # magic byte + 4-byte schema id

Headers = Sequence[tuple[str, str | bytes | None]]

# What fastavro raises on a body that does not match its writer schema (truncated, garbage).
_UNDECODABLE = (EOFError, ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error)


def frame_schema_id(value: bytes | None) -> int:
    """The schema id in a Confluent frame. Raises ``CorruptFrame`` if ``value`` is not one."""
    if value is None or len(value) < HEADER_BYTES:
        size = "no value" if value is None else f"{len(value)} bytes"
        raise CorruptFrame(f"too short for a Confluent Avro frame ({size}, need {HEADER_BYTES}+)")
    if value[0] != MAGIC_BYTE:
        raise CorruptFrame(f"magic byte is {value[0]:#04x}, not 0x00: not Confluent Avro")
    schema_id: int = struct.unpack_from(">I", value, 1)[0]
    return schema_id


class EventDecoder:
    """Decodes record values into typed events. Safe to share between threads.

    ``topics`` maps each feedback topic to its event type; a record on any other topic is typed
    by its ``event_type`` header. ``reader_versions`` pins the reader schema of some types (e.g.
    ``{"performance_metrics": 1}``); the others read with their newest local version. Writer
    schemas are cached by id for the decoder's lifetime (registry ids are immutable); unknown
    ids are not cached, so a schema registered later is found.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        topics: Mapping[str, EventType],
        *,
        schemas: SchemaSet | None = None,
        reader_versions: Mapping[EventType, int] | None = None,
    ) -> None:
        """Raises ``SchemaError`` for a pinned type or version with no local schema."""
        self._registry = registry
        self._topics = dict(topics)
        local = schemas or load_schemas()
        self._readers: dict[EventType, LocalSchema] = {t: local.latest(t) for t in EVENT_MODELS}
        for event_type, version in (reader_versions or {}).items():
            if event_type not in EVENT_MODELS:
                raise SchemaError(f"reader_versions: unknown event type {event_type!r}")
            self._readers[event_type] = local.version(event_type, version)
        self._writers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def reader_schema(self, event_type: EventType) -> LocalSchema:
        """The local schema version records of ``event_type`` are projected onto."""
        return self._readers[event_type]

    def event_type_of(self, topic: str, headers: Headers | None = None) -> EventType:
        """The topic's event type, else the ``event_type`` header's. Raises ``UnreadableRecord``."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        for key, value in headers or ():
            name = value.decode(errors="replace") if isinstance(value, bytes) else value
            if key == "event_type" and name in EVENT_MODELS:
                return name
        raise UnreadableRecord(f"cannot tell the event type of a record on {topic!r}")

    def decode(
        self, topic: str, value: bytes | None, headers: Headers | None = None
    ) -> FeedbackEvent:
        """Decode one record value read from ``topic``.

        Raises ``CorruptFrame`` (not a Confluent frame, or a body the writer schema cannot
        decode), ``UnknownSchemaId`` (the registry has no such schema), ``UnreadableRecord``
        (the writer schema cannot be projected onto the reader's, or the record is not a valid
        event), and ``RegistryUnavailable`` when the registry cannot be asked: that one is
        retryable, the record itself may be fine.
        """
        event_type = self.event_type_of(topic, headers)
        schema_id = frame_schema_id(value)
        assert value is not None  # frame_schema_id refused None
        writer = self._writer_schema(schema_id)
        reader = self._readers[event_type]
        body = BytesIO(memoryview(value)[HEADER_BYTES:])
        try:
            record = fastavro.schemaless_reader(body, writer, reader.parsed)
        except SchemaResolutionError as exc:
            raise UnreadableRecord(
                f"schema id {schema_id} cannot be read as {event_type} v{reader.version}: {exc}"
            ) from exc
        except _UNDECODABLE as exc:
            raise CorruptFrame(
                f"body does not decode with schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from exc
        trailing = len(value) - HEADER_BYTES - body.tell()
        if trailing:
            raise CorruptFrame(
                f"{trailing} bytes left over after the Avro body (schema id {schema_id})"
            )
        if not isinstance(record, dict):
            raise UnreadableRecord(f"schema id {schema_id} does not describe a record")
        try:
            # READ_BACK: events written before a rule (needs_one_of) was added stay readable.
            return EVENT_MODELS[event_type].model_validate(record, context=READ_BACK)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UnreadableRecord(
                f"not a valid {event_type} (schema id {schema_id}): {where}: {first['msg']}"
            ) from exc

    def _writer_schema(self, schema_id: int) -> Any:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = self._registry.schema_text(schema_id)
        except SchemaError as exc:
            raise UnknownSchemaId(
                f"schema id {schema_id} is unknown to the registry: {exc}"
            ) from exc
        try:
            parsed = fastavro.parse_schema(json.loads(text))
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise UnknownSchemaId(
                f"schema id {schema_id} is not a usable Avro schema: {exc}"
            ) from exc
        with self._lock:
            return self._writers.setdefault(schema_id, parsed)
