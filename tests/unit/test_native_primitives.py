"""The native fast path's building blocks, each held to the Python code it stands in for: the
id hash, the timestamp rounding, the redaction gate (each detector trigger kind, held to its
``Trigger.fires``), the control-character set, and the plan compiled from the models (which
must cover every event type)."""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otlp_feedback import native
from otlp_feedback.config import RedactionConfig, load_config
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.otlp import logs_request, make_log_record
from otlp_feedback.validation.detectors import Always, AnyChar, DetectorRule, DigitRun
from otlp_feedback.validation.redaction import Redactor
from otlp_feedback.validation.validator import CONTROL_CHARACTERS

# Without the extension there is nothing here to hold to Python; whether it should have been built
# is test_packaging.py's test_the_native_extension_is_built_wherever_a_c_compiler_is.
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


# --- the redaction gate: C's evaluation of each trigger, held to Trigger.fires ------------------

# What triggers are made of: ASCII punctuation and letters (a trigger may name any ASCII char).
_TRIGGER_CHARS = string.punctuation + " \t" + string.ascii_letters
_NON_ASCII = "é€\u00a0\u0660\uff10\U0001f600"  # incl. Arabic-Indic and fullwidth digits
any_chars = st.builds(AnyChar, st.text(st.sampled_from(_TRIGGER_CHARS), max_size=4))
digit_runs = st.builds(
    DigitRun,
    st.integers(min_value=-1, max_value=20),
    st.text(st.sampled_from(_TRIGGER_CHARS), max_size=6),
    st.integers(min_value=-1, max_value=5),
)
triggers = st.one_of(any_chars, digit_runs, st.just(Always()))


def _alphabet(rules: Sequence[Any]) -> str:
    """The triggers' own characters and separators, digits, letters and non-ASCII text."""
    own = "".join(
        getattr(t, "chars", "") + getattr(t, "separators", "") for t in rules
    )
    return own + string.digits * 2 + "ab Z" + _NON_ASCII


@st.composite
def triggers_and_text(draw: st.DrawFn, rules: st.SearchStrategy[list[Any]]) -> tuple[Any, str]:
    drawn = draw(rules)
    text = draw(st.text(st.sampled_from(_alphabet(drawn)), max_size=40))
    return drawn, text


def _gate(*rule_triggers: Any) -> native.RedactionGate:
    return native.compile_gate([DetectorRule(f"r{i}", t, str) for i, t in enumerate(rule_triggers)])


@pytest.mark.parametrize("kind", ["AnyChar", "DigitRun", "Always"])
@given(data=st.data())
def test_each_trigger_kind_fires_in_c_exactly_as_in_python(kind: str, data: st.DataObject) -> None:
    strategy = {"AnyChar": any_chars, "DigitRun": digit_runs, "Always": st.just(Always())}[kind]
    (trigger,), text = data.draw(triggers_and_text(st.lists(strategy, min_size=1, max_size=1)))
    assert _native.gate_fires(_gate(trigger), text) == trigger.fires(text)


@given(triggers_and_text(st.lists(triggers, max_size=6)))
def test_a_gate_over_several_triggers_fires_when_any_of_them_does(case: tuple[Any, str]) -> None:
    # Merged AnyChar sets, DigitRuns another one implies dropped: the verdict must not move.
    rules, text = case
    assert _native.gate_fires(_gate(*rules), text) == any(t.fires(text) for t in rules)


@given(st.data())
def test_the_default_redactors_gate_is_its_detectors_triggers(data: st.DataObject) -> None:
    redactor = Redactor(load_config().redaction)
    rules = [rule.trigger for rule in redactor.detectors]
    text = data.draw(st.text(st.sampled_from(_alphabet(rules)), max_size=40))
    gate = native.redaction_gate(redactor)
    assert _native.gate_fires(gate, text) == any(t.fires(text) for t in rules)


def test_a_gate_fires_on_no_text_when_redaction_is_off() -> None:
    gate = native.redaction_gate(Redactor(load_config(redaction={"enabled": False}).redaction))
    assert not gate.enabled
    assert not any(_native.gate_fires(gate, text) for text in ("", "a@b", "+44 20 7946 0958"))


@dataclass(frozen=True)
class _Unknown:
    def fires(self, text: str) -> bool:
        return False


@dataclass(frozen=True)
class _Annotated(DigitRun):  # a known class's subclass: it may fire where DigitRun would not
    pass


@pytest.mark.parametrize(
    "trigger",
    [_Unknown(), AnyChar("é"), DigitRun(4, "\u00a0"), DigitRun(4, "1."), _Annotated(4, ".")],
    ids=["unknown kind", "non-ASCII AnyChar", "non-ASCII separator", "digit separator",
         "subclass"],
)  # fmt: skip
def test_a_trigger_the_gate_cannot_evaluate_makes_it_fire_on_every_text(trigger: Any) -> None:
    gate = _gate(AnyChar("@"), trigger)
    assert gate.every_text and gate.unknown
    assert all(_native.gate_fires(gate, text) for text in ("", "plain", "a@b"))


def test_a_redaction_option_the_gate_does_not_know_makes_it_fire_on_every_text() -> None:
    gate = native.compile_gate([], options=["enabled", "colour_of_placeholders"])
    assert gate.every_text and gate.unknown == ("option 'colour_of_placeholders'",)
    known = native.compile_gate([], options=list(RedactionConfig.model_fields))
    assert not known.every_text and not known.unknown
    assert not _native.gate_fires(known, "anything at all: 1234567890 a@b")


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
            outcome = pipeline.export("logs", payload)
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
