"""What a pipeline did with one export, as plain values two runs can be compared by.

The native fast path promises the Python path's results exactly; its tests
(``tests/property/test_native_equivalence.py``, ``tests/unit/test_native_fast_path.py``) run a
payload through both and compare these facts. ``decode_event`` reads a delivered record back
as a downstream consumer would.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from io import BytesIO
from typing import Any

import fastavro

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.pipeline import ExportOutcome
from otlp_feedback.registry.client import InMemoryRegistry


def record_facts(record: OutboundRecord) -> tuple[Any, ...]:
    """Everything a Kafka consumer could tell apart: topic, key, value (type and bytes),
    headers in order, and the event id and type the pipeline keeps with it."""
    return (
        record.topic,
        record.key,
        type(record.value).__name__,
        bytes(record.value),
        tuple(tuple(header) for header in record.headers),
        record.event_id,
        record.event_type,
    )


def outcome_facts(outcome: ExportOutcome, messages: int = 100) -> dict[str, Any]:
    """The counts, the partial_success message (naming up to ``messages`` problems) and each
    rejection in full, source record included."""
    return {
        "accepted": outcome.accepted,
        "ignored": outcome.ignored,
        "rejected": outcome.rejected,
        "dead_lettered": outcome.dead_lettered,
        "message": outcome.message(messages),
        "accepted_by_type": sorted(outcome.accepted_by_type.items()),
        "redacted_by_type": sorted(outcome.redacted_by_type.items()),
        "rejections": [
            (r.event_type, r.carrier, r.location, r.reason, r.event_id, r.category, repr(r.source))
            for r in outcome.rejections
        ],
    }


@cache
def _reader_schema(registry: InMemoryRegistry, schema_id: int) -> Any:
    return fastavro.parse_schema(json.loads(registry.schema_text(schema_id)))


def decode_event(record: OutboundRecord, registry: InMemoryRegistry) -> dict[str, Any]:
    """Read a delivered record back as a downstream consumer would (Confluent framing + Avro)."""
    magic, schema_id = struct.unpack(">bI", record.value[:5])
    assert magic == 0
    decoded = fastavro.schemaless_reader(
        BytesIO(record.value[5:]), _reader_schema(registry, schema_id)
    )
    assert isinstance(decoded, dict)
    return decoded
