"""What a pipeline did with one export, as plain values two runs can be compared by.

The native fast path promises the Python path's results exactly; its tests
(``tests/property/test_native_equivalence.py``, ``tests/unit/test_native_fast_path.py``) run a
payload through both and compare these facts.
"""

from __future__ import annotations

from typing import Any

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.pipeline import ExportOutcome


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
