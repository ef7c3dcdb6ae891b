"""The native fast path's building blocks, each held to the Python code it stands in for: the
id hash, the timestamp rounding, redaction's digit-span gate, the control-character set, and the
plan compiled from the models (which must cover every event type)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otlp_feedback import native
from otlp_feedback.config import load_config
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.otlp import logs_request, make_log_record
from otlp_feedback.validation.redaction import _DIGITS_SPAN, Redactor
from otlp_feedback.validation.validator import CONTROL_CHARACTERS

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="native extension not built")

if native.AVAILABLE:
    from otlp_feedback import _native

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Characters near every boundary CONTROL_CHARACTERS draws, plus ordinary text and emoji.
_EDGES = "".join(
    chr(c)
    for c in (
        *range(0x00, 0x21), 0x7E, 0x7F, 0x80, 0x9F, 0xA0, 0xFF, 0x61B, 0x61C, 0x61D, 0x200D,
        0x200E, 0x200F, 0x2010, 0x2027, 0x2028, 0x202E, 0x202F, 0x2065, 0x2066, 0x2069, 0x206A,
        0xFEFE, 0xFEFF, 0xFF00, 0x1F44D,
    )
)  # fmt: skip


def test_the_extension_is_built_where_the_suite_runs() -> None:
    # CI installs with a C compiler: a silent fall back to Python would hide a broken build.
    assert native.AVAILABLE


@given(st.binary(max_size=300))
def test_sha1_is_hashlibs(data: bytes) -> None:
    assert _native.sha1_hex(data) == hashlib.sha1(data).hexdigest()


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_micros_round_as_datetime_fromtimestamp(ns: int) -> None:
    # The validator's timestamp: datetime.fromtimestamp(ns / 1e9, UTC), then the Avro writer's
    # (dt - epoch) // 1 us; the float division and half-even rounding are part of the contract.
    expected = (datetime.fromtimestamp(ns / 1e9, UTC) - _EPOCH) // timedelta(microseconds=1)
    assert _native.micros(ns) == expected


@pytest.mark.parametrize("ns", [1_500, 2_500, -1_500, 1_764_000_000_000_000_500, 999_999_999_999])
def test_micros_on_half_microseconds(ns: int) -> None:
    expected = (datetime.fromtimestamp(ns / 1e9, UTC) - _EPOCH) // timedelta(microseconds=1)
    assert _native.micros(ns) == expected


@given(st.text(alphabet="0123456789 ().+-ab#/", max_size=40))
def test_digit_span_gate_is_the_regex(text: str) -> None:
    assert _native.digits_span(text) == (_DIGITS_SPAN.search(text) is not None)


@given(st.text(alphabet=st.sampled_from(_EDGES + "abc ü€"), max_size=20))
def test_control_characters_are_the_validators(text: str) -> None:
    assert _native.has_control(text) == (CONTROL_CHARACTERS.search(text) is not None)


def test_every_control_character_is_found_alone() -> None:
    for code in range(0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue  # not encodable as UTF-8, so never in a protobuf string
        if CONTROL_CHARACTERS.match(char) is not None:
            assert _native.has_control(char), f"U+{code:04X}"
            assert _native.has_control(f"a{char}b"), f"U+{code:04X}"
    assert not _native.has_control("tab\tand\nnewline stay, ZWJ \u200d too")


def test_the_plan_covers_every_event_type() -> None:
    settings = load_config()
    schemas = load_schemas()
    serializers = {t: AvroEventSerializer(schemas.latest(t), 7) for t in EVENT_TYPES}
    topics = {t: settings.kafka.topic_for(t) for t in EVENT_TYPES}
    plan = native.build_plan(
        serializers, topics, settings.validation, Redactor(settings.redaction), 10**6
    )
    assert plan is not None
    assert plan.native_types == EVENT_TYPES


def test_a_schema_construct_the_plan_does_not_know_keeps_that_type_in_python() -> None:
    settings = load_config()
    schemas = load_schemas()
    serializers = {t: AvroEventSerializer(schemas.latest(t), 7) for t in EVENT_TYPES}
    latest = schemas.latest("system_health")
    definition = json.loads(latest.text)
    for f in definition["fields"]:
        if f["name"] == "active_requests":
            f["type"] = ["null", "int"]  # a type neither the models nor the plan use
    odd = LocalSchema(latest.event_type, latest.version, latest.path, json.dumps(definition))
    serializers["system_health"] = AvroEventSerializer(odd, 7)
    topics = {t: settings.kafka.topic_for(t) for t in EVENT_TYPES}
    plan = native.build_plan(
        serializers, topics, settings.validation, Redactor(settings.redaction), 10**6
    )
    assert plan is not None
    assert "system_health" not in plan.native_types
    request = logs_request(
        [
            make_log_record("feedback.system_health", {"feedback.health.status": "healthy"}),
            make_log_record("feedback.user_feedback", {"session.id": "s", "feedback.rating": 1}),
        ],
        resource={"service.name": "svc"},
    )
    result = plan.export(request.SerializeToString(), 1_764_000_000_000_000_000, None)
    assert result is not None
    assert result.deferred == [(0, 0, 0)]
    assert result.slots[0] is None and result.slots[1] is not None


def test_the_convention_keys_each_feed_at_most_two_fields() -> None:
    # The C key table holds two fields per key; the convention must stay within that.
    from otlp_feedback.mapping import convention as conv

    for event_type, fields in conv.FIELD_KEYS.items():
        fed: dict[str, int] = {}
        for keys in (*conv.ENVELOPE_KEYS.values(), *fields.values()):
            for key in keys:
                fed[key] = fed.get(key, 0) + 1
        assert max(fed.values()) <= 2, event_type
    assert re.fullmatch(r"[a-z_.]+", conv.GENAI_EVALUATION_EVENT)


@pytest.mark.parametrize("release_bytes", [0, 1 << 30], ids=["without GIL", "with GIL"])
def test_records_needing_python_mid_walk_are_finished_with_the_gil(release_bytes: int) -> None:
    # A float attribute needs CPython's repr, a digit run under a scrubbed key needs the
    # redactor's verdict: both are Python calls, which the GIL-free walk leaves for its
    # second pass. The result is the Python path's either way.
    fixed = 1_764_000_000_000_000_000
    records = [
        make_log_record(
            "feedback.user_feedback", {"session.id": "s1", "feedback.rating": 1, "app.ratio": 0.25}
        ),
        make_log_record(
            "feedback.user_feedback",
            {"session.id": "s2", "feedback.rating": 3, "x.comment": "mail jo@example.com"},
        ),
        make_log_record(
            "feedback.user_feedback",
            {"session.id": "s3", "feedback.rating": 2, "app.build": 1234567},
        ),
    ]
    payload = logs_request(records, resource={"service.name": "svc"}).SerializeToString()
    outputs = []
    before = _native.set_gil_release_bytes(release_bytes)
    try:
        for on in (True, False):
            sink = InMemorySink()
            pipeline = Pipeline(
                load_config(receiver={"native_fast_path": on}),
                InMemoryRegistry(),
                sink,
                clock_ns=lambda: fixed,
            )
            pipeline.start()
            outcome = pipeline.export_logs_payload(payload)
            outputs.append(
                (
                    [(r.topic, r.key, r.value, r.headers, r.event_id) for r in sink.records],
                    outcome.accepted,
                    dict(outcome.redacted_by_type),
                )
            )
            if on:
                native_counts = (pipeline.stats.native_events, pipeline.stats.native_deferred)
    finally:
        _native.set_gil_release_bytes(before)
    assert outputs[0] == outputs[1]
    assert outputs[0][2] == {"user_feedback": 1}  # the address under x.comment
    assert native_counts == (2, 1)
