"""The native fast path, as a property: for ANY logs Export payload, a pipeline with
``receiver.native_fast_path`` on answers exactly what the same pipeline with it off answers.

Exactly means: the same ``OutboundRecord``s reach the sink in the same order (topic, key, value
bytes, headers, event id, event type; dead letters included), the same ``ExportOutcome`` (counts,
rejection messages and details, per-type counters), the same calls to ``admit``, the same
``PipelineStats`` movement, or the same exception (type, message, ``retry_after``).

Each property runs one payload through a pair of started pipelines (fast path on / off), each on
its own in-memory registry and sink, with one fixed clock. Pairs are built once per settings
variant and shared by the module (each example clears the sinks and compares stats deltas).
Here every payload, however small, takes the C path's GIL-free walk (in production only large
requests do), so the records that need a Python call on the way (a float attribute's repr, a
redaction verdict) go through its second, GIL-held pass; the table tests in
``tests/unit/test_native_fast_path.py`` run the default, where small requests keep the GIL.

``stats.native_events`` (events the C code encoded) and ``stats.native_deferred`` (feedback
records it handed to Python) keep the properties from passing vacuously: plain valid requests
must be encoded natively, and the fast-path-off pipeline must never move either counter.

The generators reach what the C parser and mapper must get right or hand over: every AnyValue
kind (unset, empty arrays, duplicate kvlist keys), every event name and the legacy ``event.name``
attribute, the convention's keys with valid, boundary and wrongly typed values, redaction
triggers, strings around each length limit (in code points, not bytes), timestamps around the
accepted window, odd trace/span id lengths, shared event ids; then the same requests re-encoded
in legal but non-canonical wire forms (fields reordered, overlong varints, superseded values,
split sub-messages, explicit defaults, 32-bit varints spelt short or wide) or in forms protobuf
keeps or refuses (unknown fields, tags and lengths past 5 bytes), mutated byte by byte, with any
four bytes in place of a string, nested around the protobuf depth limit, and delivered to a
Kafka that refuses some events for good.
"""

from __future__ import annotations

import json
import math
import operator
import string
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hostile_requests import RECEIVED_NS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otlp_feedback import _native
from otlp_feedback.config import load_config
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import DeliveryFailed, InvalidRequest, RateLimited
from otlp_feedback.events import EVENT_MODELS, EventType
from otlp_feedback.mapping import convention as conv
from otlp_feedback.native import redaction_gate
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.observe import outcome_facts, record_facts
from otlp_feedback.testing.otlp import to_any_value
from otlp_feedback.validation.detectors import AnyChar, DetectorRule, DigitRun
from otlp_feedback.validation.redaction import Redactor

# Shared module fixtures on purpose: each example clears the sinks and compares stats deltas.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PROPERTY, max_examples=80)

FIXED_NS = RECEIVED_NS  # the pipelines' clock: 2025-01-01T00:01:00Z
U64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The default accepted window, computed as the validator computes it.
MAX_FUTURE_NS = int(86_400.0 * 1e9)
MAX_AGE_NS = int(3650.0 * 86_400 * 10**9)
REJECTION_MESSAGES = 100
DLQ_TOPIC = "feedback.dlq"

# --- settings variants ----------------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "control_keep": {"validation": {"control_characters": "keep"}},
    "control_strip": {"validation": {"control_characters": "strip"}},
    "control_reject": {"validation": {"control_characters": "reject"}},
    "redaction_off": {"redaction": {"enabled": False}},
    "extra_pattern": {
        "redaction": {
            "extra_patterns": [
                {"name": "password", "regex": "swordfish|hunter2", "replacement": "[PASSWORD]"},
                {"name": "ticket", "regex": r"(?i)\bticket-[a-z]+", "replacement": "[T]"},
            ]
        }
    },
    # A pattern that matches the empty string: it redacts "" (its replacement does not match).
    "extra_pattern_empty": {
        "redaction": {
            "extra_patterns": [{"name": "empty", "regex": "^$", "replacement": "[EMPTY]"}]
        }
    },
    "redaction_fields": {
        "redaction": {
            "fields": [
                "comment",
                "explanation",
                "session_id",
                "user_id",
                "request_id",
                "model",
                "evaluation_name",
                "error_type",
                "service",
                "score_label",
                "variant_id",
            ]
        }
    },
    "redaction_email_only": {
        "redaction": {"detectors": ["email"], "attribute_keys": ["x.*", "*Comment"]}
    },
    "redaction_no_attribute_keys": {"redaction": {"attribute_keys": []}},
    "small_limits": {
        "validation": {"max_string_length": 64, "max_attribute_value_len": 16, "max_attributes": 2}
    },
    "no_attributes": {"validation": {"max_attributes": 0}},
    "narrow_window": {"validation": {"max_future_skew_s": 0.0, "max_age_days": 1.0}},
    "small_messages": {"kafka": {"message_max_bytes": 1400}},
    "no_dead_letters": {"kafka": {"dlq_topic": None}},
    "custom_topics": {"kafka": {"topics": {"user_feedback": "uf.custom", "system_health": "sh"}}},
    "few_per_request": {"validation": {"max_feedback_per_request": 3}},
}


class RefusingSink(InMemorySink):
    """Kafka refusing some events for good (``DeliveryFailed``, as for an oversized record):
    those matching ``refuse`` are not stored, the rest are; dead letters always get through."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: Callable[[OutboundRecord], bool] = lambda record: False

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        refused = [r for r in records if r.topic != DLQ_TOPIC and self.refuse(r)]
        super().deliver([r for r in records if all(r is not x for x in refused)], timeout)
        if refused:
            failed = {r.event_id: f"Broker: {r.event_type} refused" for r in refused}
            raise DeliveryFailed(f"Kafka refused {len(failed)} records", failed=failed)


@dataclass
class Pair:
    """Two started pipelines with the same settings but for the fast path switch."""

    fast: Pipeline
    slow: Pipeline
    fast_sink: InMemorySink
    slow_sink: InMemorySink

    @classmethod
    def start(
        cls, overrides: dict[str, Any], sink_class: type[InMemorySink] = InMemorySink
    ) -> Pair:
        made = []
        for native in (True, False):
            receiver = {"endpoint": "127.0.0.1:0", "native_fast_path": native}
            settings_ = load_config(receiver=receiver, **overrides)
            sink = sink_class()
            pipeline = Pipeline(settings_, InMemoryRegistry(), sink, clock_ns=lambda: FIXED_NS)
            pipeline.start()
            made.append((pipeline, sink))
        (fast, fast_sink), (slow, slow_sink) = made
        return cls(fast, slow, fast_sink, slow_sink)

    def shutdown(self) -> None:
        self.fast.shutdown(1.0)
        self.slow.shutdown(1.0)


@pytest.fixture(scope="module", autouse=True)
def walk_without_the_gil() -> Iterator[None]:
    before = _native.set_gil_release_bytes(0)
    yield
    _native.set_gil_release_bytes(before)


@pytest.fixture(scope="module")
def pairs() -> Iterator[Callable[[str], Pair]]:
    started: dict[str, Pair] = {}

    def get(variant: str) -> Pair:
        if variant not in started:
            if variant == "refusing_kafka":
                started[variant] = Pair.start({}, RefusingSink)
            else:
                started[variant] = Pair.start(VARIANTS[variant])
        return started[variant]

    yield get
    for pair in started.values():
        pair.shutdown()


# --- observing one export -------------------------------------------------------------------

_STAT_COUNTS = (
    "requests",
    "accepted",
    "rejected",
    "ignored",
    "dead_lettered",
    "dead_letter_failures",
    "delivery_failures",
)
_STAT_COUNTERS = ("accepted_by_type", "rejected_by_type", "redacted_by_type")


def _stats(pipeline: Pipeline) -> dict[str, Any]:
    stats = pipeline.stats
    snapshot: dict[str, Any] = {name: getattr(stats, name) for name in _STAT_COUNTS}
    snapshot.update({name: Counter(getattr(stats, name)) for name in _STAT_COUNTERS})
    snapshot["native_events"] = stats.native_events
    snapshot["native_deferred"] = stats.native_deferred
    return snapshot


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {name: after[name] - before[name] for name in before}


@dataclass
class Observed:
    """Everything one export did that a caller or a consumer can see."""

    raised: tuple[str, str, float | None] | None = None
    outcome: dict[str, Any] | None = None
    records: list[tuple[Any, ...]] = field(default_factory=list)
    admitted: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


AdmitMode = str  # "none" | "count" | "refuse"


@dataclass(frozen=True)
class _Admission:
    """The caller's admission (``pipeline.Admission``): notes each count it is asked, and
    refuses when ``refuse``."""

    seen: list[int]
    refuse: bool
    scope: None = None  # no per-record scope

    def admit(self, count: int) -> None:
        self.seen.append(count)
        if self.refuse:
            raise RateLimited(f"{count} events over the limit", retry_after=0.25)


def _admit(mode: AdmitMode, seen: list[int]) -> _Admission | None:
    return None if mode == "none" else _Admission(seen, refuse=mode == "refuse")


def observe(
    pipeline: Pipeline,
    sink: InMemorySink,
    payload: bytes,
    client_id: str | None,
    admit: AdmitMode,
) -> tuple[Observed, int, int]:
    """What exporting ``payload`` did, and how much the native counters moved."""
    sink.records.clear()
    seen: list[int] = []
    before = _stats(pipeline)
    observed = Observed(admitted=seen)
    try:
        outcome = pipeline.export("logs", payload, client_id, _admit(admit, seen))
    except Exception as exc:  # compared, not swallowed: both modes must raise the same
        observed.raised = (type(exc).__qualname__, str(exc), getattr(exc, "retry_after", None))
    else:
        observed.outcome = outcome_facts(outcome, REJECTION_MESSAGES)
    observed.records = [record_facts(r) for r in sink.records]
    delta = _delta(before, _stats(pipeline))
    native_events, native_deferred = delta.pop("native_events"), delta.pop("native_deferred")
    observed.stats = delta
    return observed, native_events, native_deferred


@dataclass
class Native:
    """How the fast pipeline split one export."""

    events: int
    deferred: int
    observed: Observed


def assert_equivalent(
    pair: Pair, payload: bytes, client_id: str | None = None, admit: AdmitMode = "none"
) -> Native:
    """Export ``payload`` through both pipelines and require identical results."""
    fast, events, deferred = observe(pair.fast, pair.fast_sink, payload, client_id, admit)
    slow, slow_events, slow_deferred = observe(pair.slow, pair.slow_sink, payload, client_id, admit)
    assert (slow_events, slow_deferred) == (0, 0), "the fast path is off, yet native counters moved"
    assert fast == slow
    assert isinstance(events, int) and isinstance(deferred, int)
    assert events >= 0 and deferred >= 0
    if fast.outcome is not None:  # an event Kafka refused was encoded, yet is not accepted
        refused = sum(r[5] == "kafka_refused" for r in fast.outcome["rejections"])
        assert events <= fast.outcome["accepted"] + refused, "more native events than events"
    event(f"native events: {'none' if events == 0 else 'some'}")
    return Native(events, deferred, fast)


# --- attribute values -----------------------------------------------------------------------


class KvPairs(tuple[tuple[str, Any], ...]):
    """A kvlist given as (key, value) pairs, so that a key may repeat as it can on the wire."""


class _NoValue:
    """A KeyValue without its value field (as opposed to an empty AnyValue)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()


def any_value(value: Any) -> AnyValue:
    """Like ``to_any_value``, but empty lists and maps are real (empty) arrays and kvlists, and
    ``KvPairs`` may repeat keys. ``NO_VALUE`` in an array is an empty AnyValue."""
    if value is NO_VALUE:
        return AnyValue()
    if isinstance(value, dict):
        value = KvPairs(value.items())
    if isinstance(value, KvPairs):
        out = AnyValue()
        out.kvlist_value.SetInParent()
        out.kvlist_value.values.extend(key_value(k, v) for k, v in value)
        return out
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.SetInParent()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return to_any_value(value)


def key_value(key: str, value: Any) -> KeyValue:
    if value is NO_VALUE:
        return KeyValue(key=key)
    return KeyValue(key=key, value=any_value(value))


def key_values(pairs: Sequence[tuple[str, Any]]) -> list[KeyValue]:
    return [key_value(k, v) for k, v in pairs]


def _double(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


SPECIAL_CHARS = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x85\x9f\xa0\xad\u061c\u200b\u200d\u200e\u200f"
    "\u2028\u2029\u202a\u202e\u2066\u2069\ufeff\ufffd\U0001f600\U0001f44d\U0001f3fd\U0010ffff"
)
# --- PII: texts drawn from the redactor's own rules and the corpus ------------------------------

# Every built-in detector on: the rules whose triggers the C gate must honour.
RULES = Redactor(load_config().redaction).detectors
# The variants' configured extra patterns (Always triggers): texts each regex matches.
EXTRA_REGEXES = sorted(
    {
        pattern["regex"]
        for overrides in VARIANTS.values()
        for pattern in overrides.get("redaction", {}).get("extra_patterns", [])
    }
)
PII_CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "pii"


def load_pii_corpus(folder: Path = PII_CORPUS_DIR) -> list[str]:
    """The ``text`` of every case in ``folder`` (``*.json``: a list of cases or ``{"cases":
    [...]}``; ``*.jsonl``: a case a line; a case is an object with ``text`` or a string).
    Empty when there is no corpus."""
    if not folder.is_dir():
        return []
    cases: list[Any] = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            cases.extend(json.loads(line) for line in lines if line.strip())
        elif path.suffix == ".json":
            loaded = json.loads(path.read_text(encoding="utf-8"))
            cases.extend(loaded.get("cases", []) if isinstance(loaded, dict) else loaded)
    texts = [c.get("text") if isinstance(c, dict) else c for c in cases]
    return [t for t in texts if isinstance(t, str)]


PII_CORPUS = load_pii_corpus()
_WORD = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)


def any_char_text(trigger: AnyChar) -> st.SearchStrategy[str]:
    """Tokens joined by the trigger's characters, and dots and hyphens ("jo.x@ex-1.com")."""
    glue = st.sampled_from(trigger.chars + ".-_")
    return st.lists(st.tuples(_WORD, glue), min_size=1, max_size=4).map(
        lambda parts: "".join(w + g for w, g in parts) + "com"
    )


@st.composite
def digit_run_text(draw: st.DrawFn, trigger: DigitRun) -> str:
    """Digit groups joined by the trigger's separators, around its digit count (one short of
    it to a card's length), a separator repeated or mixed, a leading "+" or "(" when one is
    a separator."""
    low = max(trigger.min_digits - 1, 1)
    total = draw(st.integers(low, max(low + 2, 19)))
    digits = draw(st.text("0123456789", min_size=total, max_size=total))
    cuts = sorted(draw(st.sets(st.integers(1, max(total - 1, 1)), max_size=4)))
    groups = [digits[i:j] for i, j in zip([0, *cuts], [*cuts, total], strict=True) if i < j]
    seps = trigger.separators or ""
    if not seps:
        return "".join(groups)
    one = draw(st.sampled_from(seps))
    mixed = st.sampled_from(seps)
    text = groups[0]
    for group in groups[1:]:
        text += (one if draw(st.booleans()) else draw(mixed)) + group
    lead = draw(st.sampled_from(["", *(c for c in "+(" if c in seps)]))
    return lead + text


def trigger_text(rule: DetectorRule) -> st.SearchStrategy[str]:
    trigger = rule.trigger
    if isinstance(trigger, AnyChar):
        return any_char_text(trigger)
    if isinstance(trigger, DigitRun):
        return digit_run_text(trigger)
    return st.nothing()  # Always: a text of its own regex (EXTRA_REGEXES)


pii_text = st.one_of(
    *(trigger_text(rule) for rule in RULES),
    *(st.from_regex(regex, fullmatch=True) for regex in EXTRA_REGEXES),
    *([st.sampled_from(PII_CORPUS)] if PII_CORPUS else []),
)
plain_text = st.text(alphabet=string.ascii_letters + " -_.,!?'", min_size=1, max_size=24)
free_text = st.text(st.characters(codec="utf-8"), max_size=24)
special_text = st.text(st.sampled_from(SPECIAL_CHARS + "ab 1@:."), max_size=12)
long_text = st.builds(
    operator.mul,
    st.sampled_from(["a", "é", "\U0001f600", "7", "\x00", " ", "ab@"]),
    st.sampled_from([15, 16, 17, 63, 64, 65, 999, 1000, 1001, 4096, 4097]),
)
# Items side by side or glued together ("...0958+44 20...": one hides the next until replaced).
glued_text = st.builds(
    str.join,
    st.sampled_from([" ", "", ", "]),
    st.lists(st.one_of(plain_text, pii_text, special_text), min_size=2, max_size=3),
)
texts = st.one_of(
    plain_text,
    free_text,
    special_text,
    pii_text,
    long_text,
    glued_text,
    st.just(""),
)
numeric_strings = st.sampled_from(
    ["4", "4.0", " 4 ", "4.5", "1e3", "nan", "inf", "-0", "1_0", "\u0663", "0x10", "true",
     "false", "yes", "off", "0", "1", "up", "down", "UP", "healthy", "ab_test", "thumbs_up"]
)  # fmt: skip
EDGE_INTS = (0, 1, -1, 5, 6, 100, 101, 2**31, 2**53, 2**53 + 1, INT64_MAX, INT64_MIN)
EDGE_FLOATS = (
    0.0,
    -0.0,
    1.0,
    5.0,
    0.5,
    1e-7,
    1e16,
    1e22,
    123456789.125,
    5e-324,
    1.7976931348623157e308,
    math.nan,
    math.inf,
    -math.inf,
    1.0000000000000002,
    0.9999999999999999,
    5.000000000000001,
    100.00000000000001,
    -1e-300,
    2.0**63,
    0.1 + 0.2,
    _double(0xFFF8000000000000),  # negative quiet NaN
    _double(0x7FF0000000000001),  # signalling NaN
)
ints = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.sampled_from(EDGE_INTS))
floats = st.one_of(st.floats(), st.sampled_from(EDGE_FLOATS))
raw_bytes = st.one_of(st.binary(max_size=12), st.sampled_from([b"", b"up", b"\xff", b"4"]))
scalars = st.one_of(
    texts, numeric_strings, ints, floats, st.booleans(), raw_bytes, st.none(), st.just(NO_VALUE)
)

# --- attribute keys -------------------------------------------------------------------------

EVENT_NAMES = (*conv.FEEDBACK_EVENT_NAMES, conv.GENAI_EVALUATION_EVENT)
NOT_FEEDBACK_NAMES = ("", "app.log", "feedback.unknown", "Feedback.user_feedback", "feedback.")
# Every key some event type reads, the evaluation's score label too.
CONVENTION_KEYS = tuple(sorted(frozenset().union(*conv.CONSUMED_KEYS.values()) | {conv.EVAL_LABEL}))
PREFIX_KEYS = (
    "feedback.metric.",
    "feedback.metric.ttft_ms",
    "feedback.metric.latency_ms",
    "feedback.quality.",
    "feedback.quality.tone",
    "feedback.quality.accuracy",
    "feedback.quality.groundedness",
)
# Keys of no convention: redaction globs (*comment*, *text*, ...), odd characters, collisions.
FREE_KEYS = (
    "app.route",
    "app.tenant",
    "x.comment",
    "User.Text",
    "prompt",
    "my.query.id",
    "context",
    "Message",
    "",
    " ",
    "\u00e9",
    "\U0001f600",
    "k\x00",
    "\u202ekey",
    "k\n",
    "service.version",
    "host.name",
    "a" * 130,
)
keys = st.one_of(
    st.sampled_from(CONVENTION_KEYS),
    st.sampled_from(PREFIX_KEYS),
    st.sampled_from(FREE_KEYS),
    st.text(st.characters(codec="utf-8"), max_size=10),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(st.tuples(keys, children), max_size=3).map(KvPairs),
    ),
    max_leaves=6,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a valid value, sometimes anything."""
    return st.one_of(valid, valid, valid, values)


unit = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, 0.0, 1.0, -0.0]))
percent = st.one_of(st.floats(0.0, 100.0), st.integers(0, 100))
non_negative = st.one_of(st.floats(0.0, 1e9), st.integers(0, 10**9))
counts = st.one_of(st.integers(0, 10**9), st.just(INT64_MAX))
finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6))
names = st.one_of(plain_text, st.sampled_from(["gpt-4o", "claude-sonnet-4", "m"]))
ids = st.one_of(plain_text, st.text(string.ascii_lowercase + string.digits + "-", min_size=1))
# Per convention key: what a correct sender puts there.
VALID: dict[str, st.SearchStrategy[Any]] = {
    "session.id": ids,
    "user.id": ids,
    "gen_ai.response.id": ids,
    "feedback.request_id": ids,
    "service.name": st.sampled_from(["chat-api", "svc", "\u00fcn\u00efc\u00f8de-svc"]),
    "deployment.environment.name": st.sampled_from(["prod", "staging"]),
    "deployment.environment": st.sampled_from(["prod", "dev"]),
    "feedback.rating": st.one_of(st.integers(0, 5), st.floats(0.0, 5.0)),
    "feedback.thumbs": st.sampled_from(["up", "down"]),
    "feedback.comment": texts,
    "feedback.tags": st.lists(plain_text, max_size=3),
    "gen_ai.request.model": names,
    "gen_ai.response.model": names,
    "gen_ai.provider.name": names,
    "gen_ai.system": names,
    "gen_ai.operation.name": st.sampled_from(["chat", "embeddings"]),
    "feedback.latency_ms": non_negative,
    "gen_ai.usage.input_tokens": counts,
    "gen_ai.usage.output_tokens": counts,
    "feedback.cost_usd": non_negative,
    "feedback.success": st.booleans(),
    "error.type": plain_text,
    "feedback.cache_hit": st.booleans(),
    "gen_ai.usage.cache_read.input_tokens": counts,
    "gen_ai.usage.reasoning.output_tokens": counts,
    "gen_ai.usage.total_tokens": counts,  # made to agree in valid records: _with_sums
    "feedback.quality_score": percent,
    "feedback.quality.accuracy": unit,
    "feedback.quality.relevance": unit,
    "feedback.quality.coherence": unit,
    "feedback.quality.completeness": unit,
    "feedback.quality.safety": unit,
    "feedback.prompt_hash": st.text("0123456789abcdef", min_size=32, max_size=32),
    "feedback.response_length": counts,
    "gen_ai.response.finish_reasons": st.lists(st.sampled_from(["stop", "length"]), max_size=2),
    "gen_ai.request.temperature": st.floats(0.0, 2.0),
    "gen_ai.request.top_p": unit,
    "gen_ai.request.max_tokens": counts,
    "gen_ai.request.top_k": counts,
    "gen_ai.evaluation.score.label": st.sampled_from(["thumbs_up", "thumbs_down", "good"]),
    "gen_ai.evaluation.evaluator.name": plain_text,
    "feedback.evaluator": plain_text,
    "feedback.health.status": st.sampled_from(["healthy", "degraded", "unhealthy"]),
    "feedback.health.error_rate": unit,
    "feedback.health.availability": unit,
    "feedback.health.cpu_percent": percent,
    "feedback.health.memory_mb": non_negative,
    "feedback.health.memory_percent": percent,
    "feedback.health.network_mbps": non_negative,
    "feedback.health.active_requests": counts,
    "feedback.experiment.id": ids,
    "feedback.experiment.type": st.sampled_from(
        ["ab_test", "multi_armed_bandit", "parameter_tuning"]
    ),
    "feedback.experiment.variant_id": ids,
    "feedback.experiment.reward": finite,
    "feedback.experiment.cost": non_negative,
    "feedback.experiment.quality": finite,
    "feedback.experiment.latency_ms": non_negative,
    "feedback.experiment.user_satisfaction": finite,
    conv.EVAL_NAME: st.sampled_from(
        ["user_feedback", "relevance", "accuracy", "quality_score", "safety", "tone"]
    ),
    conv.EVAL_SCORE: st.one_of(unit, st.integers(0, 5)),
    conv.EVAL_EXPLANATION: texts,
    "feedback.metric.ttft_ms": finite,
    "feedback.quality.tone": finite,
}
# Out-of-range values for the convention's keys, beside the generic ``values``.
OUT_OF_RANGE = st.sampled_from(
    [-1, 6, 5.5, -0.5, 1.0000000000000002, 100.00000000000001, 101, -(2**63), math.nan, math.inf,
     "sideways", "UP", "", "thumbs_up", "ok", "ab", 2**63 - 1]
)  # fmt: skip
REQUIRED: dict[str, tuple[str, ...]] = {
    "feedback.user_feedback": ("session.id",),
    "feedback.performance_metrics": ("gen_ai.request.model",),
    "feedback.model_response": (),
    "feedback.system_health": ("service.name", "feedback.health.status"),
    "feedback.experiment_result": (
        "feedback.experiment.id",
        "feedback.experiment.type",
        "feedback.experiment.variant_id",
    ),
    conv.GENAI_EVALUATION_EVENT: (conv.EVAL_NAME, conv.EVAL_SCORE, "session.id"),
}


def _optional(name: str) -> tuple[str, ...]:
    """The keys an event name reads (envelope and the type's own fields, prefix keys too)."""
    types: tuple[EventType, ...] = (
        ("model_response", "user_feedback")
        if name == conv.GENAI_EVALUATION_EVENT
        else (cast(EventType, conv.FEEDBACK_EVENT_NAMES[name]),)
    )
    found = [key for keys_ in conv.ENVELOPE_KEYS.values() for key in keys_ if key != "event.id"]
    for event_type in types:
        found += [key for keys_ in conv.FIELD_KEYS[event_type].values() for key in keys_]
        if event_type in conv.PREFIX_MAPS:
            found += PREFIX_KEYS
    if name == conv.GENAI_EVALUATION_EVENT:
        found += [conv.EVAL_LABEL, conv.EVAL_EXPLANATION]
    return tuple(dict.fromkeys(found))


OPTIONAL = {name: _optional(name) for name in EVENT_NAMES}
# Valid and free of redaction triggers: what the fast path must encode itself.
SIMPLE: dict[str, st.SearchStrategy[Any]] = {
    **VALID,
    "feedback.comment": plain_text,
    conv.EVAL_EXPLANATION: plain_text,
    conv.EVAL_SCORE: unit,
    **{key: finite for key in PREFIX_KEYS if key not in VALID},
}
VALID.update({key: finite for key in PREFIX_KEYS if key not in VALID})

# A few fixed ids, so that records of one request share an id now and then.
SHARED_IDS = st.sampled_from(["dup-1", "dup-2"])
EVENT_IDS = st.one_of(
    ids,
    SHARED_IDS,
    st.just(""),
    st.builds(operator.mul, st.just("e"), st.sampled_from([127, 128, 129, 300])),
    ints,
    floats,
    st.booleans(),
    raw_bytes,
    st.lists(ids, max_size=2),
    st.none(),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            10**9,
            FIXED_NS,
            FIXED_NS + 1,
            FIXED_NS - 1,
            FIXED_NS + MAX_FUTURE_NS,
            FIXED_NS + MAX_FUTURE_NS + 1,
            FIXED_NS - MAX_AGE_NS,
            FIXED_NS - MAX_AGE_NS - 1,
            FIXED_NS - 86_400 * 10**9,  # the narrow_window variant's bound
            FIXED_NS - 86_400 * 10**9 - 1,
            2**63 - 1,
            2**63,
            U64_MAX,
        ]
    ),
    st.integers(FIXED_NS - 10**12, FIXED_NS),  # recent, any nanosecond digits
    st.integers(FIXED_NS - MAX_AGE_NS, FIXED_NS + MAX_FUTURE_NS),
    st.integers(0, U64_MAX),
)
GOOD_TIMES = st.one_of(st.just(0), st.integers(FIXED_NS - 3_600 * 10**9, FIXED_NS))
TRACE_IDS = st.one_of(
    st.sampled_from([b"", bytes(16), bytes(8)]),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=20),
)
SPAN_IDS = st.one_of(
    st.sampled_from([b"", bytes(8)]), st.binary(min_size=8, max_size=8), st.binary(max_size=20)
)
_NO_BODY = object()
# Open enum: any int32, negative ones included (written in 10 bytes).
SEVERITIES: tuple[Any, ...] = (0, 9, 17, 24, 99, -1, -5, -(2**31))


# Per event name: the keys of the fields its model ``needs_one_of`` (user feedback: rating,
# thumbs, comment); a valid record sends one of them.
ONE_OF: dict[str, tuple[str, ...]] = {
    name: tuple(conv.FIELD_KEYS[t][f][0] for f in EVENT_MODELS[t].needs_one_of)
    for name, t in conv.FEEDBACK_EVENT_NAMES.items()
    if EVENT_MODELS[t].needs_one_of
}


# Per event name: (total key, part keys) of each rule its model's ``sum_fields`` declares, so the
# totals drawn come from the rules themselves.
SUMS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    name: tuple(
        (conv.FIELD_KEYS[t][total][0], tuple(conv.FIELD_KEYS[t][part][0] for part in parts))
        for total, parts in EVENT_MODELS[t].sum_fields
    )
    for name, t in cast(dict[str, EventType], conv.FEEDBACK_EVENT_NAMES).items()
}


def _with_sums(
    draw: st.DrawFn, name: str, pairs: list[tuple[str, Any]], simple: bool
) -> list[tuple[str, Any]]:
    """Totals and their parts as a sender might send them: all parts with the total absent,
    equal to their sum, off by one, past the int64 range, or of another type. A plain request
    sends a total only equal to its parts' sum (else Python rejects it)."""
    for total_key, part_keys in SUMS.get(name, ()):
        if draw(st.booleans()):
            parts = [
                draw(st.integers(0, 10**9) if simple else st.one_of(counts, ints))
                for _ in part_keys
            ]
            expected = sum(parts)
            kinds = ["absent", "sum"] if simple else ["absent", "sum", "off", "text", "double"]
            kind = draw(st.sampled_from(kinds))
            sent: Any = {
                "absent": None,
                "sum": expected,
                "off": expected + draw(st.sampled_from([-1, 1])),
                "text": str(expected),
                "double": float(expected),
            }[kind]
            pairs = [(k, v) for k, v in pairs if k != total_key and k not in part_keys]
            pairs += list(zip(part_keys, parts, strict=True))
            if sent is not None and (not isinstance(sent, int) or INT64_MIN <= sent <= INT64_MAX):
                pairs.append((total_key, sent))
        elif simple:  # drawn independently: a total only while some part is absent, and
            # parts whose sum C can hold (past int64 it defers: correct, not native)
            sent = dict(pairs)
            if all(k in sent for k in part_keys):
                overflow = sum(sent[k] for k in part_keys) > INT64_MAX
                pairs = [
                    (k, 0 if overflow and k in part_keys else v) for k, v in pairs if k != total_key
                ]
    return pairs


@st.composite
def feedback_pairs(draw: st.DrawFn, name: str, simple: bool) -> list[tuple[str, Any]]:
    """Attributes for a record named ``name``: its required keys (mostly), one of the keys it
    needs one of (mostly), some optional ones."""
    table = SIMPLE if simple else VALID
    pairs = []
    for key in REQUIRED[name]:
        if simple or draw(st.integers(0, 9)):
            valid = table.get(key, plain_text)
            pairs.append((key, draw(valid if simple else mostly(valid))))
    if name in ONE_OF and (simple or draw(st.integers(0, 9))):
        key = draw(st.sampled_from(ONE_OF[name]))
        valid = table.get(key, plain_text)
        pairs.append((key, draw(valid if simple else mostly(valid))))
    for key in draw(st.lists(st.sampled_from(OPTIONAL[name]), max_size=6, unique=True)):
        valid = table.get(key, plain_text)
        pairs.append((key, draw(valid if simple else st.one_of(mostly(valid), OUT_OF_RANGE))))
    return _with_sums(draw, name, pairs, simple)


@st.composite
def log_records(draw: st.DrawFn, simple: bool = False) -> LogRecord:
    """One log record: feedback of any kind (valid, nearly valid, hostile) or not feedback."""
    if not simple and draw(st.booleans()):  # a plain one among the rest (native beside Python)
        return draw(log_records(simple=True))
    feedback = simple or draw(st.integers(0, 5)) > 0
    # gen_ai.evaluation.result is Python's by design (native.py), so plain requests skip it.
    name = draw(st.sampled_from(tuple(conv.FEEDBACK_EVENT_NAMES) if simple else EVENT_NAMES))
    pairs = draw(feedback_pairs(name, simple))
    if simple:
        pairs += draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["app.route", "host.name", "x.comment", "User.Text"]),
                    st.one_of(plain_text, st.just("")),
                ),
                max_size=2,
            )
        )
    else:
        pairs += draw(st.lists(st.tuples(keys, values), max_size=3))
        if draw(st.booleans()) and pairs:  # the same key twice (the last one wins)
            key = draw(st.sampled_from([k for k, _ in pairs]))
            pairs.insert(
                draw(st.integers(0, len(pairs))), (key, draw(mostly(VALID.get(key, values))))
            )
    if draw(st.integers(0, 2)) == 0:
        pairs.append(("event.id", draw(st.one_of(ids, SHARED_IDS) if simple else EVENT_IDS)))
    pairs = list(draw(st.permutations(pairs)))
    record = LogRecord()
    if not feedback:
        record.event_name = draw(st.one_of(st.sampled_from(NOT_FEEDBACK_NAMES), free_text))
    else:
        how = (
            "field"
            if simple
            else draw(st.sampled_from(["field", "attribute", "both", "shadowed", "not_string"]))
        )
        if how in ("field", "both"):
            record.event_name = name
        at = draw(st.integers(0, len(pairs)))
        if how == "attribute":
            pairs.insert(at, (conv.EVENT_NAME_ATTRIBUTE, name))
        elif how == "both":  # the field wins
            pairs.insert(at, (conv.EVENT_NAME_ATTRIBUTE, draw(st.sampled_from(NOT_FEEDBACK_NAMES))))
        elif how == "shadowed":  # the first event.name attribute counts, string or not
            first = draw(st.one_of(st.just(name), st.sampled_from(NOT_FEEDBACK_NAMES), scalars))
            pairs[at:at] = [(conv.EVENT_NAME_ATTRIBUTE, first), (conv.EVENT_NAME_ATTRIBUTE, name)]
        elif how == "not_string":  # find_string answers None: not feedback after all
            pairs.insert(
                at, (conv.EVENT_NAME_ATTRIBUTE, draw(st.one_of(ints, raw_bytes, st.just(NO_VALUE))))
            )
    record.attributes.extend(key_values(pairs))
    body = draw(
        st.one_of(st.just(_NO_BODY), plain_text)
        if simple
        else st.one_of(
            st.just(_NO_BODY),
            texts,
            st.lists(
                st.tuples(
                    st.sampled_from([*CONVENTION_KEYS, *FREE_KEYS]), st.one_of(scalars, texts)
                ),
                max_size=3,
            ).map(KvPairs),
            values,
        )
    )
    if body is not _NO_BODY:
        if body is NO_VALUE:
            record.body.SetInParent()
        else:
            record.body.CopyFrom(any_value(body))
    if draw(st.booleans()):  # no part of the event, but of the record's content (its id)
        record.severity_number = draw(st.sampled_from(SEVERITIES))
        record.severity_text = draw(st.sampled_from(["", "INFO", "\u00e9rror"]))
        record.flags = draw(st.sampled_from([0, 1, 2**32 - 1]))
        record.dropped_attributes_count = draw(st.sampled_from([0, 3, 2**32 - 1]))
    if simple:
        record.time_unix_nano = draw(GOOD_TIMES)
        record.trace_id = draw(st.one_of(st.just(b""), st.binary(min_size=16, max_size=16)))
        record.span_id = draw(st.one_of(st.just(b""), st.binary(min_size=8, max_size=8)))
        return record
    record.time_unix_nano = draw(st.one_of(GOOD_TIMES, TIMES))
    record.observed_time_unix_nano = draw(st.one_of(st.just(0), GOOD_TIMES, TIMES))
    record.trace_id = draw(TRACE_IDS)
    record.span_id = draw(SPAN_IDS)
    return record


@st.composite
def resource_pairs(draw: st.DrawFn, simple: bool) -> list[tuple[str, Any]]:
    """service.name and deployment.environment(.name) variants, and keys records also send."""
    pairs: list[tuple[str, Any]] = []
    service = st.sampled_from(["chat-api", "svc", "\u00fcn\u00efc\u00f8de-svc"])
    if simple:
        pairs.append(("service.name", draw(service)))
        pairs.append(("deployment.environment.name", draw(st.sampled_from(["prod", "staging"]))))
        return pairs
    if draw(st.integers(0, 3)):
        pairs.append(("service.name", draw(st.one_of(service, st.just(""), values))))
    for key in draw(
        st.lists(
            st.sampled_from(["deployment.environment.name", "deployment.environment"]),
            max_size=2,
            unique=True,
        )
    ):
        pairs.append((key, draw(mostly(st.sampled_from(["prod", "dev", ""])))))
    pairs += draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(["session.id", "feedback.health.status"]), keys),
                values,
            ),
            max_size=3,
        )
    )
    return list(draw(st.permutations(pairs)))


@st.composite
def requests(draw: st.DrawFn, simple: bool = False) -> ExportLogsServiceRequest:
    """A logs export request: a few resources and scopes, a few records in each."""
    request = ExportLogsServiceRequest()
    low = 1 if simple else 0
    for _ in range(draw(st.integers(low, 2))):
        resource_logs = request.resource_logs.add()
        if simple or draw(st.integers(0, 4)):
            plain = simple or draw(st.booleans())
            resource_logs.resource.CopyFrom(
                Resource(attributes=key_values(draw(resource_pairs(plain))))
            )
        if not simple and draw(st.integers(0, 4)) == 0:
            resource_logs.schema_url = draw(free_text)
        for _ in range(draw(st.integers(low, 2))):
            scope_logs = resource_logs.scope_logs.add()
            if draw(st.booleans()):
                scope_logs.scope.CopyFrom(
                    InstrumentationScope(
                        name=draw(st.sampled_from(["", "feedback-sdk"])),
                        version=draw(st.sampled_from(["", "1.0"])),
                        attributes=key_values(draw(st.lists(st.tuples(keys, scalars), max_size=2))),
                    )
                )
            scope_logs.log_records.extend(
                draw(st.lists(log_records(simple), min_size=low, max_size=4))
            )
    return request


CLIENT_IDS = st.sampled_from([None, "tenant-a"])
ADMIT = st.sampled_from(["none", "count", "refuse"])


# --- the properties -------------------------------------------------------------------------


@PROPERTY
@given(request=requests(simple=True), client_id=CLIENT_IDS)
def test_valid_plain_requests_are_encoded_natively_and_identically(
    pairs: Callable[[str], Pair], request: ExportLogsServiceRequest, client_id: str | None
) -> None:
    native = assert_equivalent(pairs("default"), request.SerializeToString(), client_id)
    outcome = native.observed.outcome
    assert outcome is not None and outcome["rejected"] == 0, "the generator made a bad record"
    assert outcome["accepted"] > 0
    assert native.events > 0, "valid plain feedback never reached the native encoder"
    event(f"native share: {native.events / outcome['accepted']:.0%}")


@PROPERTY
@given(request=requests(), client_id=CLIENT_IDS, admit=ADMIT)
def test_any_request_gives_the_same_result_with_and_without_the_fast_path(
    pairs: Callable[[str], Pair],
    request: ExportLogsServiceRequest,
    client_id: str | None,
    admit: AdmitMode,
) -> None:
    assert_equivalent(pairs("default"), request.SerializeToString(), client_id, admit)


@PROPERTY
@given(
    variant=st.sampled_from(sorted(VARIANTS)),
    request=st.one_of(requests(), requests(simple=True)),
    client_id=st.sampled_from([None, "tenant-a", "", "t\u00ebnant-\U0001f600\x1b"]),
)
def test_every_settings_variant_gives_the_same_result(
    pairs: Callable[[str], Pair],
    variant: str,
    request: ExportLogsServiceRequest,
    client_id: str | None,
) -> None:
    event(variant)
    assert_equivalent(pairs(variant), request.SerializeToString(), client_id)


# --- wire-level forms ------------------------------------------------------------------------
# Legal protobuf encodings the canonical serializer never writes. Every one but ``unknown``
# decodes to the same message; the fast path must read them exactly or hand them to Python.

MAX_TAG_BYTES = 5  # what upb accepts for a tag or a length; a value varint may take 10
WireField = tuple[int, int, Any]


def varint(n: int, pad: int = 0, limit: int = 10) -> bytes:
    """``n`` as a varint, made ``pad`` bytes longer with redundant continuation bytes."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            break
        out.append(low | 0x80)
    pad = min(pad, limit - len(out))
    if pad > 0:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def wire_fields(data: bytes) -> list[WireField]:
    """A canonical message's fields: (number, wire type, int or bytes)."""
    out: list[WireField] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        value: Any
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        elif wire_type == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire_type} in a canonical message")
        out.append((number, wire_type, value))
    return out


_WIRE_TYPES = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_SFIXED64: 1,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_SFIXED32: 5,
    FieldDescriptor.TYPE_FLOAT: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


@dataclass(frozen=True)
class Quirks:
    """Which legal-but-unusual spellings to use. All but ``unknown`` and ``too_long`` keep the
    message: ``unknown`` adds fields protobuf keeps (and re-sends), ``too_long`` pads tags and
    lengths past the 5 bytes protobuf accepts (so the request is undecodable)."""

    reorder: bool  # fields out of number order (a repeated field keeps its own order)
    overlong: bool  # varints with redundant continuation bytes
    superseded: bool  # a singular field (or a oneof rival) sent before its final value
    split: bool  # a singular sub-message sent in two parts (protobuf merges them)
    defaults: bool  # absent scalar fields sent with their default value
    narrow32: bool  # a negative int32/enum in 5 bytes (parsers keep the low 32 bits)
    wide32: bool  # an int32/uint32/enum varint with bits above 32 set (dropped by parsers)
    unknown: bool
    too_long: bool

    @property
    def same_message(self) -> bool:
        return not (self.unknown or self.too_long)


_QUIRKS = tuple(Quirks.__dataclass_fields__)
_INT32_TYPES = frozenset(
    {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_UINT32}
)


class _Writer:
    def __init__(self, draw: st.DrawFn, quirks: Quirks) -> None:
        self.draw = draw
        self.quirks = quirks

    def pad(self) -> int:
        return self.draw(st.integers(0, 4)) if self.quirks.overlong else 0

    def short_pad(self) -> tuple[int, int]:
        """Padding and byte limit for a tag or a length."""
        if self.quirks.too_long and self.draw(st.integers(0, 3)) == 0:
            return self.draw(st.integers(5, 9)), 10
        return self.pad(), MAX_TAG_BYTES

    def tag(self, number: int, wire_type: int) -> bytes:
        return varint((number << 3) | wire_type, *self.short_pad())

    def field(self, number: int, wire_type: int, value: Any) -> bytes:
        tag = self.tag(number, wire_type)
        if wire_type == 0:
            return tag + varint(value, self.pad())
        if wire_type == 2:
            return tag + varint(len(value), *self.short_pad()) + value
        return tag + value

    def int32(self, fd: FieldDescriptor, value: int) -> int:
        """A varint of a 32-bit field, maybe spelt with other high bits (same low 32 bits)."""
        if self.quirks.narrow32 and value >= 2**63 and fd.type != FieldDescriptor.TYPE_UINT32:
            return value & 0xFFFFFFFF
        if self.quirks.wide32 and value < 2**32 and self.draw(st.booleans()):
            return value | (self.draw(st.integers(1, 2**31 - 1)) << 32)
        return value

    def scalar(self, fd: FieldDescriptor, zero: bool) -> bytes:
        """A value of ``fd``'s type: its default, or something else (a superseded value)."""
        wire_type = _WIRE_TYPES.get(fd.type, 0)
        if wire_type == 0:
            return self.field(fd.number, 0, 0 if zero else self.draw(st.integers(1, 2**64 - 1)))
        if wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            raw = bytes(size) if zero else self.draw(st.binary(min_size=size, max_size=size))
            return self.field(fd.number, wire_type, raw)
        text = b"" if zero else "superseded \u00e9".encode()
        return self.field(fd.number, 2, text)

    def unknown(self, descriptor: Descriptor) -> bytes:
        """A field the schema does not have, or a known number with the wrong wire type."""
        kind = self.draw(st.sampled_from(["varint", "fixed64", "fixed32", "len", "group", "wrong"]))
        number = self.draw(st.sampled_from([13, 14, 15, 16, 100, 2047, 2**29 - 1]))
        if kind == "wrong":
            fd = self.draw(st.sampled_from(list(descriptor.fields)))
            wire_type = 0 if _WIRE_TYPES.get(fd.type, 0) != 0 else 2
            return self.field(fd.number, wire_type, 7 if wire_type == 0 else b"\x01")
        if kind == "varint":
            return self.field(number, 0, self.draw(st.integers(0, 2**64 - 1)))
        if kind in ("fixed64", "fixed32"):
            return self.field(
                number, 1 if kind == "fixed64" else 5, bytes(8 if kind == "fixed64" else 4)
            )
        if kind == "len":
            return self.field(number, 2, self.draw(st.binary(max_size=6)))
        return self.tag(number, 3) + self.field(1, 0, 5) + self.tag(number, 4)

    def message(self, data: bytes, descriptor: Descriptor) -> list[bytes]:
        """``data`` (canonical) re-encoded per the quirks, one chunk per field occurrence."""
        draw, quirks = self.draw, self.quirks
        fields = wire_fields(data)
        if quirks.reorder and fields:
            numbers = list(dict.fromkeys(number for number, _, _ in fields))
            rank = {n: i for i, n in enumerate(draw(st.permutations(numbers)))}
            fields.sort(key=lambda f: rank[f[0]])  # stable: a repeated field keeps its order
        chunks: list[bytes] = []
        for number, wire_type, value in fields:
            fd = descriptor.fields_by_number.get(number)
            if fd is not None and fd.type == FieldDescriptor.TYPE_MESSAGE and wire_type == 2:
                inner = self.message(value, fd.message_type)
                parts = [inner]
                if quirks.split and not fd.is_repeated and len(inner) > 1 and draw(st.booleans()):
                    cut = draw(st.integers(1, len(inner) - 1))  # occurrences merge
                    parts = [inner[:cut], inner[cut:]]
                chunks += [self.field(number, 2, b"".join(part)) for part in parts]
                continue
            if quirks.superseded and fd is not None and not fd.is_repeated and draw(st.booleans()):
                oneof = fd.containing_oneof
                rivals = (
                    [fd] if oneof is None else [f for f in oneof.fields if f.message_type is None]
                )
                chunks.append(self.scalar(draw(st.sampled_from(rivals)), zero=False))
            if fd is not None and fd.type in _INT32_TYPES and wire_type == 0:
                value = self.int32(fd, value)
            elif (
                fd is not None
                and fd.type == FieldDescriptor.TYPE_BOOL
                and value == 1
                and quirks.wide32
                and draw(st.booleans())
            ):
                value = draw(st.integers(2, 2**64 - 1))  # any non-zero varint is true
            chunks.append(self.field(number, wire_type, value))
        if quirks.defaults:
            present = {number for number, _, _ in fields}
            for fd in descriptor.fields:
                if (
                    fd.number not in present
                    and not fd.is_repeated
                    and fd.message_type is None
                    and fd.containing_oneof is None
                    and draw(st.booleans())
                ):
                    chunks.insert(draw(st.integers(0, len(chunks))), self.scalar(fd, zero=True))
        if quirks.unknown and draw(st.integers(0, 3)) == 0:
            chunks.insert(draw(st.integers(0, len(chunks))), self.unknown(descriptor))
        return chunks


@st.composite
def reencoded(draw: st.DrawFn, payload: bytes, most: int = 3) -> tuple[bytes, Quirks]:
    # A few quirks at a time: most make a record non-canonical, which hides the others.
    chosen = draw(st.sets(st.sampled_from(_QUIRKS), min_size=1, max_size=most))
    quirks = Quirks(**{name: name in chosen for name in _QUIRKS})
    chunks = _Writer(draw, quirks).message(payload, ExportLogsServiceRequest.DESCRIPTOR)
    return b"".join(chunks), quirks


def _canonical(payload: bytes) -> bytes:
    return ExportLogsServiceRequest.FromString(payload).SerializeToString(deterministic=True)


@FEW
@given(request=requests(), data=st.data())
def test_non_canonical_encodings_give_the_same_result(
    pairs: Callable[[str], Pair], request: ExportLogsServiceRequest, data: st.DataObject
) -> None:
    payload = request.SerializeToString()
    quirky, quirks = data.draw(reencoded(payload))
    if quirks.same_message:  # the generator's own check: the same message, only spelt otherwise
        assert _canonical(quirky) == _canonical(payload)
    event(f"quirks: {sorted(k for k, v in vars(quirks).items() if v)}")
    assert_equivalent(pairs("default"), quirky, "tenant-a")


@FEW
@given(request=requests(simple=True), data=st.data())
def test_valid_plain_requests_in_non_canonical_encodings_give_the_same_result(
    pairs: Callable[[str], Pair], request: ExportLogsServiceRequest, data: st.DataObject
) -> None:
    payload = request.SerializeToString()
    quirky, quirks = data.draw(reencoded(payload, most=1))  # one at a time: records stay native
    if quirks.same_message:
        assert _canonical(quirky) == _canonical(payload)
    event(f"quirks: {sorted(k for k, v in vars(quirks).items() if v)}")
    assert_equivalent(pairs("default"), quirky)


# --- damaged payloads ------------------------------------------------------------------------

_MUTATIONS = st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"])


@st.composite
def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(_MUTATIONS)
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(
                st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))])
            )
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 3))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 16)))
            data[end:end] = data[at:end]
    return bytes(data)


@PROPERTY
@given(request=st.one_of(requests(), requests(simple=True)), data=st.data())
def test_damaged_payloads_give_the_same_result(
    pairs: Callable[[str], Pair], request: ExportLogsServiceRequest, data: st.DataObject
) -> None:
    damaged = data.draw(mutated(request.SerializeToString()))
    native = assert_equivalent(pairs("default"), damaged)
    event("undecodable" if native.observed.raised else "decodable")
    if native.observed.raised is not None:
        assert native.observed.raised[0] == InvalidRequest.__qualname__


@FEW
@given(payload=st.binary(max_size=48))
def test_random_bytes_give_the_same_result(pairs: Callable[[str], Pair], payload: bytes) -> None:
    assert_equivalent(pairs("default"), payload)


@FEW
@given(
    request=requests(simple=True),
    data=st.data(),
    raw=st.one_of(
        st.binary(min_size=4, max_size=4),
        st.sampled_from(
            [b"\xc3\xa9ab", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xef\xbf\xbeA",
             b"\xed\x9f\xbfA", b"\xee\x80\x80A", b"\xed\xa0\x80A", b"\xc0\x80AB",
             b"\xe0\x9f\xbfA", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80",
             b"A\xc2\x85B", b"AB\xc2\x9f", b"\xe2\x80\xaeA", b"\x00ABC"]
        ),
    ),
)  # fmt: skip
def test_any_four_bytes_in_a_string_give_the_same_result(
    pairs: Callable[[str], Pair], request: ExportLogsServiceRequest, data: st.DataObject, raw: bytes
) -> None:
    """Byte sequences valid and invalid as UTF-8, in the place of a key, a value, a name."""
    placeholder = "\u2603Z"  # 4 bytes of UTF-8, found nowhere else in a plain request
    where = data.draw(st.sampled_from(["key", "value", "resource", "scope", "event_name"]))
    records = request.resource_logs[0].scope_logs[0].log_records
    if where == "key":
        records[0].attributes.add(key=placeholder).value.string_value = "v"
    elif where == "value":
        records[0].attributes.add(key="x.k").value.string_value = placeholder
    elif where == "resource":
        request.resource_logs[0].resource.attributes.add(key=placeholder)
    elif where == "scope":
        request.resource_logs[0].scope_logs[0].scope.name = placeholder
    else:
        records.add(event_name=placeholder)
    payload = request.SerializeToString()
    assert payload.count(placeholder.encode()) == 1
    assert_equivalent(pairs("default"), payload.replace(placeholder.encode(), raw))


# --- Kafka refusing events -------------------------------------------------------------------


@PROPERTY
@given(
    request=st.one_of(requests(simple=True), requests()),
    refuse_types=st.sets(st.sampled_from(sorted(conv.FEEDBACK_EVENT_NAMES.values()))),
    refuse_ids=st.sets(SHARED_IDS),
    client_id=CLIENT_IDS,
)
def test_events_kafka_refuses_are_reported_the_same(
    pairs: Callable[[str], Pair],
    request: ExportLogsServiceRequest,
    refuse_types: set[str],
    refuse_ids: set[str],
    client_id: str | None,
) -> None:
    """Events refused for good become rejections naming their record, and dead letters."""
    pair = pairs("refusing_kafka")

    def refuse(record: OutboundRecord) -> bool:
        return record.event_type in refuse_types or record.event_id in refuse_ids

    for sink in (pair.fast_sink, pair.slow_sink):
        assert isinstance(sink, RefusingSink)
        sink.refuse = refuse
    native = assert_equivalent(pair, request.SerializeToString(), client_id)
    outcome = native.observed.outcome
    refused = outcome is not None and "Kafka refused" in outcome["message"]
    event("some refused" if refused else "none refused")


# --- nesting around the protobuf depth limit ------------------------------------------------


def _len_field(number: int, payload: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def chain(depth: int, as_map: bool) -> bytes:
    """An AnyValue nested ``depth`` arrays (or kvlists) deep, around a string."""
    value = _len_field(1, b"leaf")
    for _ in range(depth):
        if as_map:
            value = _len_field(6, _len_field(1, _len_field(1, b"k") + _len_field(2, value)))
        else:
            value = _len_field(5, _len_field(1, value))
    return value


@FEW
@given(
    depth=st.integers(0, 60),
    as_map=st.booleans(),
    where=st.sampled_from(["attribute", "body", "resource"]),
    name=st.sampled_from(EVENT_NAMES),
)
def test_nesting_around_the_depth_limit_gives_the_same_result(
    pairs: Callable[[str], Pair], depth: int, as_map: bool, where: str, name: str
) -> None:
    deep = chain(depth, as_map)
    attribute = _len_field(1, b"x.deep") + _len_field(2, deep)
    valid = b"".join(
        _len_field(6, _len_field(1, k.encode()) + _len_field(2, _len_field(1, v.encode())))
        for k, v in (("session.id", "s-1"), ("gen_ai.request.model", "m"))
    )
    record = _len_field(12, name.encode()) + valid
    record += _len_field(6, attribute) if where == "attribute" else b""
    record += _len_field(5, deep) if where == "body" else b""
    resource = _len_field(1, _len_field(1, attribute)) if where == "resource" else b""
    payload = _len_field(1, resource + _len_field(2, _len_field(2, record)))
    assert_equivalent(pairs("default"), payload)


# --- the gate's soundness, on the same generated texts --------------------------------------------

REDACTING_VARIANTS = [
    name for name, overrides in VARIANTS.items()
    if overrides.get("redaction", {}).get("enabled", True)
]  # fmt: skip


@PROPERTY
@given(variant=st.sampled_from(REDACTING_VARIANTS), text=texts)
def test_a_text_the_gate_passes_is_one_the_redactor_leaves_unchanged(
    variant: str, text: str
) -> None:
    redactor = Redactor(load_config(**VARIANTS[variant]).redaction)
    gate = redaction_gate(redactor)
    fires = _native.gate_fires(gate, text)
    if not fires:
        assert redactor.redact_text(text) == text
    # Each rule's trigger is necessary for its matches: where it does not fire, the scrub
    # (run ungated) changes nothing. This is what lets C skip the detectors entirely.
    for rule in redactor.detectors:
        if not rule.trigger.fires(text):
            assert rule.scrub(text) == text, rule.name
    assert fires == any(rule.trigger.fires(text) for rule in redactor.detectors)


@pytest.mark.parametrize("layout", ["jsonl", "json list", "json cases"])
def test_the_pii_corpus_loader_reads_json_and_jsonl(tmp_path: Path, layout: str) -> None:
    cases = [{"text": "call +44 20 7946 0958", "detector": "phone"}, "jo@example.com", {"x": 1}]
    if layout == "jsonl":
        body = "\n".join(json.dumps(c) for c in cases) + "\n\n"
        (tmp_path / "corpus.jsonl").write_text(body, encoding="utf-8")
    else:
        loaded: Any = cases if layout == "json list" else {"cases": cases}
        (tmp_path / "corpus.json").write_text(json.dumps(loaded), encoding="utf-8")
    (tmp_path / "make_corpus.py").write_text("ignored", encoding="utf-8")
    assert load_pii_corpus(tmp_path) == ["call +44 20 7946 0958", "jo@example.com"]
    assert load_pii_corpus(tmp_path / "missing") == []
