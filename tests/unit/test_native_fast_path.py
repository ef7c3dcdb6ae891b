"""The native fast path, by example: which requests it encodes itself, which records it defers,
which requests it hands wholly to Python, and that every one answers exactly as the Python path.

Each case exports the same payload through a pipeline with ``receiver.native_fast_path`` on and
one with it off (in-memory registry and sink, one fixed clock) and compares what a client and a
consumer can see: the sink's records (topic, key, value bytes, headers, event id, type; dead
letters too), the ``ExportOutcome``, the calls to ``admit`` and the stats, or the exception.
``stats.native_events`` / ``stats.native_deferred`` then say which path did the work.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs
from otlp_builders import RECEIVED_NS, T0_NS, Admit

from otlp_feedback.config import RedactionConfig, load_config
from otlp_feedback.encoding.outbound import RECEIVER_HEADERS, OutboundRecord
from otlp_feedback.errors import DeliveryFailed, InvalidRequest, RateLimited, RequestTooLarge
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.observe import outcome_facts, record_facts
from otlp_feedback.testing.otlp import logs_request, make_log_record, to_any_value
from otlp_feedback.validation import redaction
from otlp_feedback.validation.detectors import DetectorRule, builtin_detectors

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
RESOURCE = {"service.name": "support-bot", "deployment.environment.name": "staging"}
# The smallest valid record of each type (service.name comes from RESOURCE).
MINIMAL: dict[str, dict[str, Any]] = {
    "user_feedback": {"session.id": "sess-1", "feedback.rating": 4},
    "performance_metrics": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12},
    "model_response": {"feedback.quality_score": 80.0, "feedback.quality.tone": 0.5},
    "system_health": {"feedback.health.status": "healthy", "feedback.health.cpu_percent": 12.5},
    "experiment_result": {
        "feedback.experiment.id": "exp-1",
        "feedback.experiment.type": "ab_test",
        "feedback.experiment.variant_id": "A",
    },
}


def _loadgen() -> ModuleType:
    """``benchmarks/loadgen.py`` (not a package), for its ``build_request``."""
    name = "_benchmarks_loadgen"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


LOADGEN = _loadgen()


# --- two pipelines, one payload ---------------------------------------------------------------


@dataclass
class Observed:
    raised: tuple[str, str] | None = None
    outcome: dict[str, Any] | None = None
    records: list[tuple[Any, ...]] = field(default_factory=list)
    admitted: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Compared:
    """The (common) result of both pipelines, and how the fast one split the work."""

    observed: Observed
    native_events: int
    native_deferred: int
    fast_records: list[OutboundRecord]

    @property
    def outcome(self) -> dict[str, Any]:
        assert self.observed.outcome is not None, f"raised {self.observed.raised}"
        return self.observed.outcome


def _stats(pipeline: Pipeline) -> dict[str, Any]:
    s = pipeline.stats
    return {
        "requests": s.requests,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "ignored": s.ignored,
        "dead_lettered": s.dead_lettered,
        "accepted_by_type": Counter(s.accepted_by_type),
        "rejected_by_type": Counter(s.rejected_by_type),
        "redacted_by_type": Counter(s.redacted_by_type),
        "native_events": s.native_events,
        "native_deferred": s.native_deferred,
    }


class Pair:
    """A pipeline with the fast path on and one with it off, same settings and clock."""

    def __init__(self, **overrides: Any) -> None:
        self.fast, self.fast_sink = self._start(True, overrides)
        self.slow, self.slow_sink = self._start(False, overrides)

    @staticmethod
    def _start(native: bool, overrides: Mapping[str, Any]) -> tuple[Pipeline, InMemorySink]:
        receiver = {"endpoint": "127.0.0.1:0", "native_fast_path": native}
        settings = load_config(receiver=receiver, **overrides)
        sink = InMemorySink()
        pipeline = Pipeline(settings, InMemoryRegistry(), sink, clock_ns=lambda: RECEIVED_NS)
        pipeline.start()
        return pipeline, sink

    def _observe(
        self, pipeline: Pipeline, sink: InMemorySink, payload: bytes, client_id: str | None,
        refuse: bool,
    ) -> tuple[Observed, dict[str, Any]]:  # fmt: skip
        sink.records.clear()
        seen: list[int] = []

        def admit(count: int) -> None:
            seen.append(count)
            if refuse:
                raise RateLimited("over the limit", retry_after=1.0)

        before = _stats(pipeline)
        observed = Observed(admitted=seen)
        try:
            observed.outcome = outcome_facts(
                pipeline.export("logs", payload, client_id, Admit(admit))
            )
        except Exception as exc:  # compared below: both modes must raise the same
            observed.raised = (type(exc).__qualname__, str(exc))
        observed.records = [record_facts(r) for r in sink.records]
        after = _stats(pipeline)
        delta = {name: after[name] - before[name] for name in before}
        return observed, delta

    def compare(
        self, payload: bytes, client_id: str | None = None, refuse: bool = False
    ) -> Compared:
        fast, fast_delta = self._observe(self.fast, self.fast_sink, payload, client_id, refuse)
        fast_records = list(self.fast_sink.records)
        slow, slow_delta = self._observe(self.slow, self.slow_sink, payload, client_id, refuse)
        assert (slow_delta.pop("native_events"), slow_delta.pop("native_deferred")) == (0, 0)
        events, deferred = fast_delta.pop("native_events"), fast_delta.pop("native_deferred")
        fast.stats, slow.stats = fast_delta, slow_delta
        assert fast == slow
        return Compared(fast, events, deferred, fast_records)

    def shutdown(self) -> None:
        self.fast.shutdown(1.0)
        self.slow.shutdown(1.0)


@pytest.fixture
def make_pair() -> Iterator[Callable[..., Pair]]:
    made: list[Pair] = []

    def make(**overrides: Any) -> Pair:
        made.append(Pair(**overrides))
        return made[-1]

    yield make
    for pair in made:
        pair.shutdown()


@pytest.fixture
def pair(make_pair: Callable[..., Pair]) -> Pair:
    return make_pair()


def record(event_type: str, attributes: Mapping[str, Any] | None = None, **kw: Any) -> LogRecord:
    """A valid record of ``event_type`` (MINIMAL attributes, overridden by ``attributes``)."""
    kw.setdefault("time_unix_nano", T0_NS)
    kw.setdefault("trace_id", TRACE_ID)
    kw.setdefault("span_id", SPAN_ID)
    return make_log_record(
        f"feedback.{event_type}", {**MINIMAL[event_type], **(attributes or {})}, **kw
    )


def payload_of(*records: LogRecord, resource: Mapping[str, Any] = RESOURCE) -> bytes:
    return logs_request(records, resource).SerializeToString()


# --- wire surgery for what the protobuf API refuses to write ---------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def with_unknown_field(message: Any, number: int = 100) -> Any:
    """A copy of ``message`` carrying an unknown varint field (protobuf keeps and re-sends it)."""
    raw = message.SerializeToString() + _varint(number << 3) + _varint(7)
    return type(message).FromString(raw)


def with_pairs(rec: LogRecord, pairs: list[tuple[str, Any]]) -> LogRecord:
    """``rec`` with ``pairs`` appended to its attributes, repeated keys and all."""
    rec.attributes.extend(KeyValue(key=k, value=to_any_value(v)) for k, v in pairs)
    return rec


def replaced(payload: bytes, placeholder: str, raw: bytes) -> bytes:
    """``payload`` with the UTF-8 of ``placeholder`` swapped for ``raw`` (same length)."""
    old = placeholder.encode()
    assert len(old) == len(raw) and payload.count(old) == 1
    return payload.replace(old, raw)


# --- the cases ----------------------------------------------------------------------------------


def test_the_fast_path_is_on_by_default() -> None:
    assert load_config(receiver={"endpoint": "127.0.0.1:0"}).receiver.native_fast_path is True


@pytest.mark.parametrize(("records", "seed"), [(5, 0), (50, 1), (200, 7)])
@pytest.mark.parametrize("client_id", [None, "tenant-a"])
def test_a_loadgen_request_is_encoded_wholly_natively_and_byte_for_byte(
    pair: Pair, records: int, seed: int, client_id: str | None
) -> None:
    request = LOADGEN.build_request(records, seed, now_ns=RECEIVED_NS)
    result = pair.compare(request.SerializeToString(), client_id)
    assert result.outcome["accepted"] == records
    assert result.outcome["rejected"] == 0
    assert (result.native_events, result.native_deferred) == (records, 0)
    assert len(result.observed.records) == records


@pytest.mark.parametrize(
    ("event_type", "legacy_name"),
    [
        pytest.param(
            t,
            legacy,
            id=f"{'event.name' if legacy else 'event_name'}-{t}",
        )
        for legacy in (False, True)
        for t in sorted(MINIMAL)
    ],
)
def test_a_minimal_valid_record_of_each_type_is_encoded_natively(
    pair: Pair, event_type: str, legacy_name: bool
) -> None:
    rec = record(event_type)
    if legacy_name:  # older SDKs: the name as an attribute, the field empty
        rec = make_log_record(
            "",
            {**MINIMAL[event_type], "event.name": f"feedback.{event_type}"},
            time_unix_nano=T0_NS,
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
        )
    result = pair.compare(payload_of(rec, make_log_record("app.log", {"a": 1})))
    assert result.outcome["accepted"] == 1 and result.outcome["ignored"] == 1
    if not legacy_name:
        assert (result.native_events, result.native_deferred) == (1, 0)
    else:
        assert result.native_events + result.native_deferred == 1


# (comment, whether redaction changes it)
TRIGGERS = [
    ("mail me at jane.doe@example.com", True),
    ("call +44 20 7946 0958 please", True),
    ("my phone is (415) 555-2671", True),
    ("office: 020 7946 0321", True),  # a national format (redaction.phone_regions)
    ("from 10.0.0.1 today", True),
    ("card 4111 1111 1111 1111", True),
    ("ssn 123-45-6789", True),
    ("ratio 3:2, fine", False),  # ':' makes redaction look; nothing matches
    ("order 12345678", False),  # eight digits: the phone detector runs, none matches
    ("my phone is (555) 234-5678", False),  # no US area code 555: libphonenumber says no number
]


@pytest.mark.parametrize(("comment", "changes"), TRIGGERS, ids=[c for c, _ in TRIGGERS])
@pytest.mark.parametrize(
    "carry",
    ["feedback.comment", "body", "x.comment", "explanation"],
)
def test_a_record_redaction_may_touch_is_deferred_and_redacted_as_python_does(
    pair: Pair, comment: str, changes: bool, carry: str
) -> None:
    if carry == "body":
        target = record("user_feedback", body=comment)
    elif carry == "explanation":  # an LLM judge's explanation (gen_ai.evaluation.result)
        target = make_log_record(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.5,
                "gen_ai.evaluation.explanation": comment,
            },
            time_unix_nano=T0_NS,
        )
    else:
        target = record("user_feedback", {carry: comment})
    plain = record("system_health")
    result = pair.compare(payload_of(plain, target, plain))
    assert result.outcome["accepted"] == 3
    assert result.native_events == 2, "the plain records around it stay native"
    assert result.native_deferred == 1
    redacted = [r for r in result.fast_records if any(k == "redacted" for k, _ in r.headers)]
    assert len(redacted) == (1 if changes else 0)
    assert dict(result.outcome["redacted_by_type"]) == (
        {"model_response" if carry == "explanation" else "user_feedback": 1} if changes else {}
    )
    # The order of the request is kept: plain, redacted, plain.
    assert [r.event_type for r in result.fast_records] == [
        "system_health",
        "model_response" if carry == "explanation" else "user_feedback",
        "system_health",
    ]


# Numbers no detector's trigger needs: the C path encodes them (no Python detour).
NO_TRIGGER = [
    "tried it on the 2024 data set",  # four digits: not an IPv4 address (no three dots)
    "order 12345, version 1.2.3",  # five digits; two dots
]


@pytest.mark.parametrize("comment", NO_TRIGGER)
def test_a_text_no_trigger_fires_on_stays_on_the_native_path(pair: Pair, comment: str) -> None:
    result = pair.compare(payload_of(record("user_feedback", {"feedback.comment": comment})))
    assert (result.native_events, result.native_deferred) == (1, 0)
    assert result.outcome["accepted"] == 1


@dataclass(frozen=True)
class EndsWithBang:
    """A trigger kind the native plan does not know (fires when the text ends with "!")."""

    def fires(self, text: str) -> bool:
        return text.endswith("!")


def _shouted(text: str) -> str:
    return text[:-1] + " [SHOUT]" if text.endswith("!") else text


class FutureRedactionConfig(RedactionConfig):
    """A redaction option the native plan has not been told about."""

    mask_style: str = "brackets"


_UNKNOWN_TO_THE_PLAN = ["trigger", "option"]


@pytest.mark.parametrize("unknown", _UNKNOWN_TO_THE_PLAN)
def test_a_redaction_rule_the_plan_does_not_know_defers_every_redactable_text(
    make_pair: Callable[..., Pair],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unknown: str,
) -> None:
    if unknown == "trigger":
        # A detector whose trigger is of a new kind, as a detector author might add one.
        shout = DetectorRule("shout", EndsWithBang(), _shouted)  # type: ignore[arg-type]
        monkeypatch.setattr(
            redaction, "builtin_detectors", lambda enabled: (*builtin_detectors(enabled), shout)
        )
    with caplog.at_level(logging.WARNING, logger="otlp_feedback.native"):
        pair = make_pair()
        if unknown == "option":
            config = FutureRedactionConfig()
            pair.fast.set_redaction(config)
            pair.slow.set_redaction(config)
    warnings = [r.getMessage() for r in caplog.records if "redaction gate" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert ("EndsWithBang" if unknown == "trigger" else "'mask_style'") in warnings[0]
    rules = pair.fast.rules
    assert rules.native is not None and rules.native.gate.every_text

    # Redactable texts (comment, body, a value under *comment*), every type, however plain:
    # all deferred. What nothing redacts (no redactable text) stays native.
    payload = payload_of(
        record("user_feedback", {"feedback.comment": "great answer!"}),
        record("user_feedback", body="plain words"),
        record("system_health", {"x.comment": "ok"}),
        record("system_health"),
        record("performance_metrics"),
    )
    result = pair.compare(payload)
    assert result.outcome["accepted"] == 5
    assert (result.native_events, result.native_deferred) == (2, 3)
    expected = {"user_feedback": 1} if unknown == "trigger" else {}
    assert dict(result.outcome["redacted_by_type"]) == expected
    assert pair.fast.stats.native_deferred == 3  # the otlp_feedback_native_records_total counter


def _unknown_in_record() -> bytes:
    return payload_of(with_unknown_field(record("user_feedback")), record("system_health"))


def _unknown_in_request() -> bytes:
    request = logs_request([record("user_feedback"), record("system_health")], RESOURCE)
    return with_unknown_field(request, 9).SerializeToString()


def _unknown_in_value() -> bytes:
    rec = record("user_feedback")
    rec.attributes[0].value.CopyFrom(with_unknown_field(rec.attributes[0].value, 20))
    return payload_of(rec, record("system_health"))


def _unknown_in_resource() -> bytes:
    request = logs_request([record("user_feedback"), record("system_health")], RESOURCE)
    resource = request.resource_logs[0].resource
    resource.CopyFrom(with_unknown_field(resource, 30))
    return request.SerializeToString()


def _wrong_wire_type() -> bytes:
    # LogRecord.time_unix_nano (field 1, fixed64) sent as a varint: protobuf keeps it unknown.
    rec = record("user_feedback", time_unix_nano=0)
    rec = LogRecord.FromString(rec.SerializeToString() + _varint(1 << 3) + _varint(T0_NS))
    return payload_of(rec, record("system_health"))


def _repeated_singular_field() -> bytes:
    # event_name twice: the last one wins (and the record is re-serialized with one).
    rec = record("user_feedback")
    raw = _varint(12 << 3 | 2) + _varint(8) + b"app.logs" + rec.SerializeToString()
    return payload_of(LogRecord.FromString(raw), record("system_health"))


WHOLE_PYTHON = {
    "unknown field in a record": _unknown_in_record,
    "unknown field in the request": _unknown_in_request,
    "unknown field in an AnyValue": _unknown_in_value,
    "unknown field in the resource": _unknown_in_resource,
    "known field, wrong wire type": _wrong_wire_type,
}


@pytest.mark.parametrize("build", list(WHOLE_PYTHON.values()), ids=list(WHOLE_PYTHON))
def test_a_request_the_parser_cannot_read_exactly_goes_wholly_to_python(
    pair: Pair, build: Callable[[], bytes]
) -> None:
    result = pair.compare(build())
    assert result.outcome["accepted"] == 2, result.outcome
    assert result.native_events == 0, "the plain record must not be encoded natively either"


def test_a_superseded_singular_field_answers_as_python(pair: Pair) -> None:
    result = pair.compare(_repeated_singular_field())
    assert result.outcome["accepted"] == 2


INVALID_UTF8 = {
    "attribute key": ("kkkk", b"\xff\xfekk"),
    "string value": ("vvvv", b"v\xc3\x28v"),
    "event name": ("feedback.user_feedback", b"feedback.user_feedbac\xc0"),
    "surrogate": ("ssss", b"s\xed\xa0\x80"),
    "overlong NUL": ("nnnn", b"nn\xc0\x80"),
}


@pytest.mark.parametrize(
    ("placeholder", "raw"), list(INVALID_UTF8.values()), ids=list(INVALID_UTF8)
)
def test_invalid_utf8_is_an_invalid_request_in_both_modes(
    pair: Pair, placeholder: str, raw: bytes
) -> None:
    attrs = {"kkkk": "vvvv", "x.other": "ssss", "x.nul": "nnnn"}
    payload = payload_of(record("user_feedback", attrs), record("system_health"))
    result = pair.compare(replaced(payload, placeholder, raw))
    assert result.observed.raised is not None
    assert result.observed.raised[0] == InvalidRequest.__qualname__
    assert result.observed.records == []
    assert result.native_events == 0


@pytest.mark.parametrize("payload", [b"\xff", b"\x0a\x05\x01", b"\x0a"], ids=repr)
def test_an_undecodable_payload_is_an_invalid_request_in_both_modes(
    pair: Pair, payload: bytes
) -> None:
    result = pair.compare(payload)
    assert result.observed.raised is not None
    assert result.observed.raised[0] == InvalidRequest.__qualname__


def test_with_the_fast_path_off_the_native_counters_stay_zero(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair()
    request = LOADGEN.build_request(20, 3, now_ns=RECEIVED_NS)
    for _ in range(2):
        pair.compare(request.SerializeToString())  # asserts the off pipeline moved nothing
    assert (pair.slow.stats.native_events, pair.slow.stats.native_deferred) == (0, 0)
    assert pair.slow.stats.accepted == 40
    assert pair.fast.stats.native_events == 40


# Requests that must answer identically, whichever path takes which record.
EXAMPLES: dict[str, Callable[[], bytes]] = {
    "empty payload": lambda: b"",
    "empty resource": lambda: ExportLogsServiceRequest(
        resource_logs=[ResourceLogs()]
    ).SerializeToString(),
    "noise only": lambda: payload_of(make_log_record("app.log", {"feedback.rating": 4})),
    "evaluation: user feedback": lambda: payload_of(
        make_log_record(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "user_feedback",
                "gen_ai.evaluation.score.value": 4,
                "gen_ai.evaluation.score.label": "thumbs_up",
                "session.id": "s",
            },
            time_unix_nano=T0_NS,
        )
    ),
    "evaluation: custom score": lambda: payload_of(
        make_log_record(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 0.25},
        )
    ),
    "kvlist body": lambda: payload_of(
        record("user_feedback", body={"feedback.comment": "nice", "session.id": "body-sess"})
    ),
    "string body as the comment": lambda: payload_of(record("user_feedback", body="Nice one")),
    "record beats resource": lambda: payload_of(
        record("system_health", {"service.name": "record-svc", "x.same": "record"}),
        resource={**RESOURCE, "x.same": "resource", "session.id": "res-sess"},
    ),
    "duplicate keys: the last wins": lambda: payload_of(
        with_pairs(
            record("user_feedback"),
            [("feedback.rating", 5), ("x.k", "first"), ("x.j", 1), ("x.k", "second")],
        )
    ),
    "rating out of range": lambda: payload_of(record("user_feedback", {"feedback.rating": 6})),
    "thumbs sideways": lambda: payload_of(record("user_feedback", {"feedback.thumbs": "side"})),
    "negative tokens": lambda: payload_of(
        record("performance_metrics", {"gen_ai.usage.input_tokens": -1})
    ),
    "quality bounds": lambda: payload_of(
        record("model_response", {"feedback.quality.accuracy": 1.0, "feedback.quality.safety": 0}),
        record("model_response", {"feedback.quality.accuracy": 1.0000000000000002}),
    ),
    "required field missing": lambda: payload_of(
        make_log_record("feedback.experiment_result", {"feedback.experiment.id": "e"})
    ),
    "negative zero": lambda: payload_of(
        record("performance_metrics", {"feedback.latency_ms": -0.0, "feedback.cost_usd": -0.0})
    ),
    "float and int attributes": lambda: payload_of(
        record(
            "user_feedback",
            {"x.f": 1e16, "x.g": 0.1 + 0.2, "x.h": -0.0, "x.i": 2**63 - 1, "x.n": float("nan")},
        )
    ),
    "array and kvlist attributes": lambda: payload_of(
        record("user_feedback", {"x.a": ["\u00e9", 1, True, b"\x00"], "x.m": {"k": [None]}})
    ),
    "comment of 1000 and 1001 characters": lambda: payload_of(
        record("user_feedback", {"feedback.comment": "a" * 1000}),
        record("user_feedback", {"feedback.comment": "\U0001f600" * 1001}),
    ),
    "control characters": lambda: payload_of(
        record("user_feedback", {"user.id": "u\x1b[31m", "x.k\u202e": "v\u2028"})
    ),
    "tab and newline": lambda: payload_of(record("user_feedback", {"user.id": "a\tb\nc"})),
    "time zero, observed only": lambda: payload_of(
        record("user_feedback", time_unix_nano=0, observed_time_unix_nano=T0_NS + 123_456_789)
    ),
    "time zero, nothing observed": lambda: payload_of(record("user_feedback", time_unix_nano=0)),
    "far future": lambda: payload_of(record("user_feedback", time_unix_nano=2**64 - 1)),
    "very old": lambda: payload_of(record("user_feedback", time_unix_nano=1)),
    "odd trace and span ids": lambda: payload_of(
        record("user_feedback", trace_id=b"\x01\x02\x03", span_id=b"\x00" * 8)
    ),
    "zero trace id": lambda: payload_of(record("performance_metrics", trace_id=bytes(16))),
    "event.id given": lambda: payload_of(record("user_feedback", {"event.id": "client-id-1"})),
    "event.id empty": lambda: payload_of(record("user_feedback", {"event.id": ""})),
    "event.id too long": lambda: payload_of(record("user_feedback", {"event.id": "e" * 129})),
    "event.id an integer": lambda: payload_of(record("user_feedback", {"event.id": 42})),
    "service.name unset": lambda: payload_of(
        record("user_feedback"), resource={"service.name": None}
    ),
    # Past the C code's own bounds (it hands these to Python).
    "600 attributes": lambda: payload_of(
        record("user_feedback", {f"x.{i}": i for i in range(600)}), record("system_health")
    ),
    "600 resource attributes": lambda: payload_of(
        record("user_feedback"), resource={**RESOURCE, **{f"x.{i}": i for i in range(600)}}
    ),
    "70 custom metrics": lambda: payload_of(
        record("performance_metrics", {f"feedback.metric.m{i}": float(i) for i in range(70)})
    ),
    "a 70000-character attribute": lambda: payload_of(
        record("user_feedback", {"x.long": "a" * 70_000})
    ),
    "a 100-byte trace id": lambda: payload_of(record("user_feedback", trace_id=b"\x01" * 100)),
}


@pytest.mark.parametrize("build", list(EXAMPLES.values()), ids=list(EXAMPLES))
@pytest.mark.parametrize("client_id", [None, "tenant-a"])
def test_examples_answer_identically(
    pair: Pair, build: Callable[[], bytes], client_id: str | None
) -> None:
    result = pair.compare(build(), client_id)
    assert result.observed.raised is None, result.observed.raised


def user_feedback_without(attributes: Mapping[str, Any], **kw: Any) -> LogRecord:
    """User feedback with no rating (MINIMAL has one): ``attributes`` only."""
    return make_log_record(
        "feedback.user_feedback", attributes, time_unix_nano=T0_NS, trace_id=TRACE_ID, **kw
    )


NUMBER = "expected a number (double or int)"
NEEDS_ONE = "user_feedback needs at least one of feedback.rating, feedback.thumbs, feedback.comment"
# A value of another OTLP type than its field's (outside the two widenings), or user feedback
# with none of rating, thumbs, comment: (record, the rejection reason).
STRICT: dict[str, tuple[Callable[[], LogRecord], str]] = {
    "rating true": (
        lambda: record("user_feedback", {"feedback.rating": True}),
        f"feedback.rating: {NUMBER}, got a bool (True)",
    ),
    "rating '5'": (
        lambda: record("user_feedback", {"feedback.rating": "5"}),
        f"feedback.rating: {NUMBER}, got a string ('5')",
    ),
    "tokens 12.0": (
        lambda: record("performance_metrics", {"gen_ai.usage.input_tokens": 12.0}),
        "gen_ai.usage.input_tokens: expected an int, got a double (12.0)",
    ),
    "success 'true'": (
        lambda: record("performance_metrics", {"feedback.success": "true"}),
        "feedback.success: expected a bool, got a string ('true')",
    ),
    "cache_hit 1": (
        lambda: record("performance_metrics", {"feedback.cache_hit": 1}),
        "feedback.cache_hit: expected a bool, got an int (1)",
    ),
    "session.id a double": (
        lambda: record("user_feedback", {"session.id": 1.5}),
        "session.id: expected a string or an int, got a double (1.5)",
    ),
    "user.id a bool": (
        lambda: record("user_feedback", {"user.id": False}),
        "user.id: expected a string or an int, got a bool (False)",
    ),
    "tags with an int": (
        lambda: record("user_feedback", {"feedback.tags": ["a", 2]}),
        "feedback.tags[1]: expected a string, got an int (2)",
    ),
    "custom score a bool": (
        lambda: record("model_response", {"feedback.quality.tone": True}),
        f"feedback.quality.tone: {NUMBER}, got a bool (True)",
    ),
    "health status an int": (
        lambda: record("system_health", {"feedback.health.status": 1}),
        "feedback.health.status: Input should be 'healthy', 'degraded' or 'unhealthy' (got 1)",
    ),
    "session only": (lambda: user_feedback_without({"session.id": "s"}), NEEDS_ONE),
    "session, tags and an empty comment": (
        lambda: user_feedback_without(
            {"session.id": "s", "feedback.tags": ["a"], "feedback.comment": ""}
        ),
        NEEDS_ONE,
    ),
}


@pytest.mark.parametrize(("build", "reason"), list(STRICT.values()), ids=list(STRICT))
def test_a_value_of_another_type_or_feedback_saying_nothing_is_deferred_and_rejected(
    pair: Pair, build: Callable[[], LogRecord], reason: str
) -> None:
    result = pair.compare(payload_of(build(), record("system_health")))
    assert (result.native_events, result.native_deferred) == (1, 1)
    assert (result.outcome["accepted"], result.outcome["rejected"]) == (1, 1)
    ((*_, rejected_for, _event_id, _category, _source),) = result.outcome["rejections"]
    assert rejected_for == reason
    assert reason in result.outcome["message"]


# The widenings and the body -> comment rule: accepted by both paths, natively where C can.
ACCEPTED: dict[str, tuple[Callable[[], LogRecord], bool]] = {
    "an int rating": (lambda: record("user_feedback", {"feedback.rating": 5}), True),
    "an int custom score": (lambda: record("model_response", {"feedback.quality.tone": 1}), True),
    "an int where a double is, bounded": (
        lambda: record("system_health", {"feedback.health.cpu_percent": 100}),
        True,
    ),
    "an int user.id (its text: Python)": (lambda: record("user_feedback", {"user.id": 42}), False),
    "thumbs alone": (
        lambda: user_feedback_without({"session.id": "s", "feedback.thumbs": "up"}),
        True,
    ),
    "comment alone": (
        lambda: user_feedback_without({"session.id": "s", "feedback.comment": "ok"}),
        True,
    ),
    "a string body alone": (lambda: user_feedback_without({"session.id": "s"}, body="ok"), True),
}


@pytest.mark.parametrize(("build", "native"), list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_widened_values_and_any_one_of_rating_thumbs_comment_are_accepted_in_both_modes(
    pair: Pair, build: Callable[[], LogRecord], native: bool
) -> None:
    result = pair.compare(payload_of(build()))
    assert (result.outcome["accepted"], result.outcome["rejected"]) == (1, 0)
    assert (result.native_events, result.native_deferred) == ((1, 0) if native else (0, 1))


def test_a_pipeline_shut_down_answers_identically(pair: Pair) -> None:
    pair.fast.shutdown(1.0)
    pair.slow.shutdown(1.0)
    result = pair.compare(LOADGEN.build_request(3, 1, now_ns=RECEIVED_NS).SerializeToString())
    assert result.observed.raised is not None
    assert result.observed.raised[0] == "SinkUnavailable"


def test_a_refused_admission_is_raised_identically(pair: Pair) -> None:
    request = LOADGEN.build_request(10, 2, now_ns=RECEIVED_NS)
    result = pair.compare(request.SerializeToString(), refuse=True)
    assert result.observed.raised == (RateLimited.__qualname__, "over the limit")
    assert result.observed.admitted == [10]
    assert result.observed.records == []


def test_too_many_records_is_refused_identically(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(validation={"max_feedback_per_request": 3})
    request = LOADGEN.build_request(4, 2, now_ns=RECEIVED_NS)
    result = pair.compare(request.SerializeToString())
    assert result.observed.raised is not None
    assert result.observed.raised[0] == RequestTooLarge.__qualname__
    assert result.observed.admitted == []


SETTINGS = {
    "long attribute values": {"validation": {"max_attribute_value_len": 100_000}},
    "control characters kept": {"validation": {"control_characters": "keep"}},
    "control characters rejected": {"validation": {"control_characters": "reject"}},
    "redaction off": {"redaction": {"enabled": False}},
    "extra pattern": {
        "redaction": {
            "extra_patterns": [{"name": "pw", "regex": "swordfish", "replacement": "[PW]"}]
        }
    },
    "session_id redacted": {"redaction": {"fields": ["comment", "session_id"]}},
    "small limits": {
        "validation": {"max_string_length": 8, "max_attribute_value_len": 16, "max_attributes": 1}
    },
}


@pytest.mark.parametrize("overrides", list(SETTINGS.values()), ids=list(SETTINGS))
def test_settings_variants_answer_identically(
    make_pair: Callable[..., Pair], overrides: dict[str, Any]
) -> None:
    pair = make_pair(**overrides)
    payload = payload_of(
        record("user_feedback", {"feedback.comment": "the password is swordfish"}),
        record("user_feedback", {"session.id": "jane@example.com", "x.a": "\x1b" + "b" * 20}),
        record("user_feedback", {"x.one": "1", "x.two": "2", "user.id": "abcdefghijk"}),
        record("user_feedback", {"x.long": "\u00e9" * 70_000, "x.mid": "c" * 5000}),
    )
    request = LOADGEN.build_request(10, 5, now_ns=RECEIVED_NS).SerializeToString()
    pair.compare(payload, "tenant-a")
    pair.compare(request, "tenant-a")


def test_a_redaction_reload_keeps_both_paths_equal(pair: Pair) -> None:
    payload = payload_of(
        record("user_feedback", {"feedback.comment": "the password is swordfish"}),
        record("user_feedback", {"feedback.comment": "plain words"}),
    )
    before = pair.compare(payload)
    assert before.outcome["redacted_by_type"] == []
    config = load_config(
        redaction={"extra_patterns": [{"name": "pw", "regex": "swordfish", "replacement": "[PW]"}]}
    ).redaction
    pair.fast.set_redaction(config)
    pair.slow.set_redaction(config)
    after = pair.compare(payload)
    assert after.outcome["redacted_by_type"] == [("user_feedback", 1)]


# --- wire forms protobuf reads its own way ------------------------------------------------------


def _frame(field: int, payload: bytes, length_bytes: int = 0, tag_bytes: int = 0) -> bytes:
    """A length-delimited field; ``tag_bytes``/``length_bytes`` pad the varints to that size."""

    def padded(n: int, size: int) -> bytes:
        minimal = _varint(n)
        if size <= len(minimal):
            return minimal
        out = bytearray(minimal)
        out[-1] |= 0x80
        return bytes(out) + b"\x80" * (size - len(minimal) - 1) + b"\x00"

    return padded(field << 3 | 2, tag_bytes) + padded(len(payload), length_bytes) + payload


def _request_of(record_bytes: bytes) -> bytes:
    """ExportLogsServiceRequest{resource_logs{scope_logs{log_records: record_bytes}}}."""
    return _frame(1, _frame(2, _frame(2, record_bytes)))


def test_a_negative_severity_spelt_in_five_bytes_has_the_python_event_id(pair: Pair) -> None:
    # protobuf writes int32 -1 in 10 bytes; a parser reads the 5-byte form as -1 too, and the
    # content id hashes the record as protobuf re-serializes it (10 bytes).
    canonical = record("user_feedback", trace_id=b"", span_id=b"").SerializeToString()
    assert canonical[0] == 0x09  # time_unix_nano (field 1, fixed64) comes first: 9 bytes
    severity = bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])  # severity_number = -1
    result = pair.compare(_request_of(canonical[:9] + severity + canonical[9:]))
    assert result.outcome["accepted"] == 1


@pytest.mark.parametrize(
    ("tag_bytes", "length_bytes"), [(6, 0), (10, 0), (0, 6), (0, 10), (5, 5)], ids=str
)
def test_tags_and_lengths_longer_than_protobuf_reads_answer_as_python(
    pair: Pair, tag_bytes: int, length_bytes: int
) -> None:
    # upb reads a tag or a length of at most 5 bytes; (5, 5) is still a valid request.
    resource_logs = logs_request([record("user_feedback")], RESOURCE).resource_logs[0]
    payload = _frame(1, resource_logs.SerializeToString(), length_bytes, tag_bytes)
    result = pair.compare(payload)
    if (tag_bytes, length_bytes) == (5, 5):
        assert result.outcome["accepted"] == 1
    else:
        assert result.observed.raised is not None
        assert result.observed.raised[0] == InvalidRequest.__qualname__


def test_an_extra_pattern_that_matches_empty_text_redacts_it_in_both_modes(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair(
        redaction={"extra_patterns": [{"name": "empty", "regex": "^$", "replacement": "[EMPTY]"}]}
    )
    result = pair.compare(payload_of(record("user_feedback", {"x.comment": ""})))
    assert result.outcome["redacted_by_type"] == [("user_feedback", 1)]


def test_a_client_id_utf8_cannot_encode_answers_as_python(pair: Pair) -> None:
    # A JWT ``sub`` of "\ud800" is a str with a lone surrogate: the Python path rejects each
    # record (the event cannot be encoded), it does not raise.
    result = pair.compare(payload_of(record("user_feedback")), client_id="\ud800")
    assert result.observed.raised is None, result.observed.raised


class _RefusingSink(InMemorySink):
    """Kafka refusing the events whose id is in ``refuse`` for good; dead letters get through."""

    refuse: frozenset[str] = frozenset({"dup"})

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        refused = [r for r in records if r.topic != "feedback.dlq" and r.event_id in self.refuse]
        super().deliver([r for r in records if all(r is not x for x in refused)], timeout)
        if refused:
            raise DeliveryFailed("refused", failed={r.event_id: "too large" for r in refused})


@pytest.mark.parametrize("order", ["valid first", "invalid first"])
def test_a_refused_event_is_attributed_to_its_own_record_when_ids_repeat(order: str) -> None:
    # Two records with one event.id, one valid, one not: Kafka refuses the valid one's event.
    valid = record("user_feedback", {"event.id": "dup"})
    invalid = record("user_feedback", {"event.id": "dup", "feedback.rating": 9})
    records = (valid, invalid) if order == "valid first" else (invalid, valid)
    payload = payload_of(*records)
    pair = Pair.__new__(Pair)
    pair.fast, pair.fast_sink = _started(True, _RefusingSink())
    pair.slow, pair.slow_sink = _started(False, _RefusingSink())
    try:
        result = pair.compare(payload)
    finally:
        pair.shutdown()
    assert result.outcome["accepted"] == 0
    assert "Kafka refused it" in result.outcome["message"]


def _started(native: bool, sink: InMemorySink) -> tuple[Pipeline, InMemorySink]:
    receiver = {"endpoint": "127.0.0.1:0", "native_fast_path": native}
    pipeline = Pipeline(
        load_config(receiver=receiver), InMemoryRegistry(), sink, clock_ns=lambda: RECEIVED_NS
    )
    pipeline.start()
    return pipeline, sink


def test_concurrent_exports_give_what_sequential_python_exports_give(pair: Pair) -> None:
    # The plan is shared by the receiver's worker threads: no call may see another's state.
    payloads = [
        LOADGEN.build_request(20, seed, now_ns=RECEIVED_NS).SerializeToString() for seed in range(8)
    ]
    payloads += [payload_of(record("user_feedback", {"feedback.comment": "jane@example.com"}))]
    expected: Counter[tuple[Any, ...]] = Counter()
    for payload in payloads:
        pair.slow.export("logs", payload, "tenant-a")
    expected.update(record_facts(r) for r in pair.slow_sink.records)
    errors: list[BaseException] = []

    def export(payload: bytes) -> None:
        try:
            for _ in range(3):
                pair.fast.export("logs", payload, "tenant-a")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=export, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = Counter(record_facts(r) for r in pair.fast_sink.records)
    assert got == Counter({record: 3 * n for record, n in expected.items()})
    assert pair.fast.stats.native_events == 3 * 8 * 20


# Each kind of OTLP scalar kept in ``attributes``, at the edges of its text (C's ``attr_text``
# twin of ``validator._to_text``): bool words, int extremes, float repr (CPython's, from C),
# base64 padding of every length class, and the unset value ("null").
ATTRIBUTE_TEXTS: dict[str, Any] = {
    "bool": [True, False],
    "int": [0, -1, 7, 2**63 - 1, -(2**63)],
    "double": [0.1, -0.0, 5.0, 1e16, 1e-7, 2.5e-300, float("inf"), float("-inf"), float("nan")],
    "bytes": [b"", b"a", b"ab", b"abc", b"\xff\x00\xfe\x01"],
    "unset": [None],
}


@pytest.mark.parametrize("values", list(ATTRIBUTE_TEXTS.values()), ids=list(ATTRIBUTE_TEXTS))
def test_attribute_values_of_every_kind_get_the_python_text_natively(
    pair: Pair, values: list[Any]
) -> None:
    attributes = {f"app.value{i}": value for i, value in enumerate(values)}
    result = pair.compare(payload_of(record("user_feedback", attributes)))
    assert (result.outcome["accepted"], result.outcome["rejected"]) == (1, 0)
    assert (result.native_events, result.native_deferred) == (1, 0)


@pytest.mark.parametrize("client_id", [None, "tenant-a"])
def test_both_paths_end_every_record_with_the_receivers_lineage_headers(
    pair: Pair, client_id: str | None
) -> None:
    # The same pairs (names and values from outbound.RECEIVER_HEADERS, the plan's data) last.
    result = pair.compare(payload_of(record("user_feedback")), client_id)
    assert result.native_events == 1
    (fast,) = result.fast_records
    assert tuple(fast.headers[-2:]) == RECEIVER_HEADERS
    client = [("client_id", client_id.encode())] if client_id else []
    assert [name for name, _ in fast.headers[3:-2]] == ["trace_id", *(n for n, _ in client)]
