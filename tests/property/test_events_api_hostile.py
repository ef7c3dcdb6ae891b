"""Hostile input to the events API, as properties: whatever JSON a body holds, the mapping never
raises, every item is either an event in Kafka or named in the answer by its index, and the
answer is JSON the client can read. Runs the pipeline on the in-memory registry and sink with a
fixed clock, through ``receiver.events_api`` as the HTTP door does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hostile_requests import RECEIVED_NS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp_feedback.config import load_config
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES
from otlp_feedback.mapping import RawFeedback
from otlp_feedback.mapping.events_api import location_of, map_event, sender_fields
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver import events_api
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

EVENT_TOPICS = {f"feedback.{t}" for t in EVENT_TYPES}
# Every name a sender could use, and a few it must not.
NAMES = sorted(
    {name for t in EVENT_TYPES for name in sender_fields(t)}
    | {"received_at", "client_id", "redacted_fields", "carrier", "nope", "feedback.comment"}
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["up", "down", "healthy", "ab_test", "2025-11-24T15:00:00Z", "5b8e" * 8])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.builds(
    lambda event_type, fields: {"event_type": event_type, **fields},
    st.sampled_from([*EVENT_TYPES, "unknown"]),
    st.dictionaries(st.sampled_from(NAMES), JSON_VALUES, max_size=8),
)
ITEMS = st.lists(EVENTS | JSON_VALUES, max_size=6)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Pipeline, InMemorySink]]:
    sink = InMemorySink()
    pipeline = Pipeline(load_config(), InMemoryRegistry(), sink, clock_ns=lambda: RECEIVED_NS)
    pipeline.start()
    yield pipeline, sink
    pipeline.shutdown(1.0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=EVENTS | JSON_VALUES)
def test_the_mapping_never_raises_and_keeps_its_problems_or_type(item: Any) -> None:
    mapped = map_event(item, location_of(0))
    if isinstance(mapped, RawFeedback):
        assert mapped.event_type in EVENT_MODELS
        assert mapped.fields["carrier"] == mapped.carrier == "events_api"
        sent = item.get("event_id")
        if sent is not None:
            assert mapped.fields["event_id"] == sent  # the sender's key; the model judges it
        else:
            assert isinstance(mapped.fields["event_id"], str)  # the content hash


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(items=ITEMS)
def test_every_item_is_an_event_in_kafka_or_named_by_index(
    running: tuple[Pipeline, InMemorySink], items: list[Any]
) -> None:
    pipeline, sink = running
    sink.records.clear()
    body = json.dumps(items).encode()
    parsed = events_api.parse(body)
    mapped = [map_event(item, location_of(i)) for i, item in enumerate(parsed)]
    outcome = pipeline.export_events([m for m in mapped if isinstance(m, RawFeedback)])
    answer = json.loads(events_api.answer(mapped, outcome, str))

    rejected = [entry["index"] for entry in answer["rejected"]]
    assert rejected == sorted(set(rejected))  # each item named once, in body order
    assert answer["accepted"] + len(rejected) == len(items)
    assert len([r for r in sink.records if r.topic in EVENT_TOPICS]) == answer["accepted"]
    assert all(isinstance(entry["reason"], str) and entry["reason"] for entry in answer["rejected"])
