"""The native plan's allow-lists: what the plan compiles crosses into C by name, and whatever it
does not know (an option, a ClassVar, a constraint, a validator, an Avro construct) makes that
event type take the Python path, logged and counted, rather than approximated.

The drift guards fail when a ValidationConfig/RedactionConfig option, a model ClassVar, a
model_config key or a validator is added without the plan's allow-list deciding on it, and when a
field of the plan's dataclasses is one C does not read."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

import fastavro
import pytest
from pydantic import ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from otlp_feedback import native
from otlp_feedback.config import RedactionConfig, ValidationConfig, load_config
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, PerformanceMetrics
from otlp_feedback.events import SystemHealth as _SystemHealth
from otlp_feedback.mapping import convention as conv
from otlp_feedback.observability.metrics import NATIVE_PYTHON_ONLY, Telemetry
from otlp_feedback.testing.otlp import logs_request, make_log_record
from otlp_feedback.validation.redaction import Redactor

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="native extension not built")

_RECEIVED_NS = 1_764_000_000_000_000_000
_HEALTH = make_log_record("feedback.system_health", {"feedback.health.status": "healthy"})
_FEEDBACK = make_log_record("feedback.user_feedback", {"session.id": "s", "feedback.rating": 1})


def _build(
    validation: ValidationConfig | None = None,
    serializers: dict[str, AvroEventSerializer] | None = None,
    telemetry: Telemetry | None = None,
) -> native.NativeLogs:
    settings = load_config()
    schemas = load_schemas()
    chosen: dict[Any, AvroEventSerializer] = {
        t: AvroEventSerializer(schemas.latest(t), 7) for t in EVENT_TYPES
    }
    chosen.update(serializers or {})
    plan = native.build_plan(
        chosen,
        {t: settings.kafka.topic_for(t) for t in EVENT_TYPES},
        validation or settings.validation,
        Redactor(settings.redaction),
        10**6,
        telemetry=telemetry,
    )
    assert plan is not None
    return plan


def _assert_python_only(
    plan: native.NativeLogs,
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
    types: set[str],
    why: str,
) -> None:
    assert set(plan.python_only) == types
    assert all(why in reason for reason in plan.python_only.values())
    assert set(plan.native_types) == set(EVENT_TYPES) - types
    warned = [r.getMessage() for r in caplog.records if r.name == native.log.name]
    assert sorted(
        w.split(" takes the Python path")[0].rsplit(" ", 1)[-1] for w in warned
    ) == sorted(types), warned  # once per type and plan build
    assert telemetry.gauge_values(NATIVE_PYTHON_ONLY) == {
        (t,): float(t in types) for t in EVENT_TYPES
    }
    result = plan.export(logs_request([_HEALTH, _FEEDBACK]).SerializeToString(), _RECEIVED_NS, None)
    assert result is not None
    deferred = [i for i, slot in enumerate(result.slots) if slot is None]
    expected = [i for i, t in enumerate(("system_health", "user_feedback")) if t in types]
    assert deferred == expected


@pytest.fixture
def swap_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Put a test-only model in the plan's place for its event type."""

    def swap(model: type[Any]) -> None:
        monkeypatch.setitem(native.EVENT_MODELS, model.event_type, model)

    yield swap


# --- a rule the plan does not know: that type (or every type) goes Python-only ---------------


def test_an_unknown_validation_option_makes_every_type_python_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Wider(ValidationConfig):
        max_tag_count: int = 8  # a limit the plan has not decided on

    telemetry = Telemetry()
    with caplog.at_level(logging.WARNING, logger=native.log.name):
        plan = _build(validation=Wider(), telemetry=telemetry)
    _assert_python_only(plan, telemetry, caplog, set(EVENT_TYPES), "max_tag_count")


def test_an_unknown_classvar_makes_that_type_python_only(
    caplog: pytest.LogCaptureFixture, swap_model: Any
) -> None:
    class Health(_SystemHealth):
        dedup_window_s: ClassVar[int] = 60  # a new rule declared as data

    swap_model(Health)
    telemetry = Telemetry()
    with caplog.at_level(logging.WARNING, logger=native.log.name):
        plan = _build(telemetry=telemetry)
    _assert_python_only(plan, telemetry, caplog, {"system_health"}, "ClassVar dedup_window_s")


def test_an_unknown_constraint_makes_that_type_python_only(
    caplog: pytest.LogCaptureFixture, swap_model: Any
) -> None:
    class Health(_SystemHealth):
        active_requests: Annotated[int, Field(ge=0, multiple_of=2)] | None = None

    swap_model(Health)
    telemetry = Telemetry()
    with caplog.at_level(logging.WARNING, logger=native.log.name):
        plan = _build(telemetry=telemetry)
    _assert_python_only(plan, telemetry, caplog, {"system_health"}, "MultipleOf")


def test_an_unknown_validator_or_model_config_makes_that_type_python_only(
    caplog: pytest.LogCaptureFixture, swap_model: Any
) -> None:
    class Health(_SystemHealth):
        model_config = ConfigDict(**_SystemHealth.model_config, str_strip_whitespace=True)

        @model_validator(mode="after")
        def _calm(self) -> Health:
            return self

    swap_model(Health)
    telemetry = Telemetry()
    with caplog.at_level(logging.WARNING, logger=native.log.name):
        plan = _build(telemetry=telemetry)
    _assert_python_only(plan, telemetry, caplog, {"system_health"}, "str_strip_whitespace")
    assert "model validator _calm" in plan.python_only["system_health"]


def test_an_unknown_avro_construct_makes_that_type_python_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    latest = load_schemas().latest("system_health")
    definition = json.loads(latest.text)
    definition["fields"][-1]["aliases"] = ["old_name"]  # a field key the plan does not read
    odd = LocalSchema(latest.event_type, latest.version, latest.path, json.dumps(definition))
    telemetry = Telemetry()
    with caplog.at_level(logging.WARNING, logger=native.log.name):
        plan = _build(
            serializers={"system_health": AvroEventSerializer(odd, 7)}, telemetry=telemetry
        )
    _assert_python_only(plan, telemetry, caplog, {"system_health"}, "aliases")


def test_the_python_only_gauge_is_shown_per_type_once_a_plan_was_built() -> None:
    telemetry = Telemetry()
    assert NATIVE_PYTHON_ONLY.encode() not in telemetry.exposition()
    _build(telemetry=telemetry)
    shown = telemetry.exposition().decode()
    for event_type in EVENT_TYPES:
        assert f'{NATIVE_PYTHON_ONLY}{{event_type="{event_type}"}} 0.0' in shown


# --- drift guards: nothing is added without the plan deciding on it -------------------------


def test_every_validation_and_redaction_option_is_decided_by_the_plan() -> None:
    # A new option: add it to the allow-list with how the plan applies it (or leave it out on
    # purpose and watch its types go Python-only).
    assert set(ValidationConfig.model_fields) == set(native.KNOWN_VALIDATION_OPTIONS)
    assert set(RedactionConfig.model_fields) == set(native.KNOWN_REDACTION_OPTIONS)


def test_every_model_rule_is_decided_by_the_plan() -> None:
    class_vars = set().union(*(m.__class_vars__ for m in EVENT_MODELS.values()))
    assert class_vars == set(native.KNOWN_CLASSVARS)
    # Config keys and validators may be known ahead of the models that use them.
    config_keys = set().union(*(m.model_config for m in EVENT_MODELS.values()))
    assert config_keys <= set(native.KNOWN_MODEL_CONFIG)
    validators = set().union(
        *(m.__pydantic_decorators__.model_validators for m in EVENT_MODELS.values())
    )
    assert validators <= set(native.KNOWN_VALIDATORS)
    constraints = {
        type(item)
        for model in EVENT_MODELS.values()
        for info in model.model_fields.values()
        for item in _constraints(info)
    }
    assert constraints <= set(native.KNOWN_CONSTRAINTS)
    assert _build().python_only == {}


def _constraints(info: FieldInfo) -> Iterator[Any]:
    import typing

    yield from info.metadata
    stack = [info.annotation]
    while stack:
        annotation = stack.pop()
        if typing.get_origin(annotation) is Annotated:
            for item in typing.get_args(annotation)[1:]:
                yield from item.metadata if isinstance(item, FieldInfo) else [item]
        stack.extend(typing.get_args(annotation))


class _Recorder:
    """Stands in for one plan object, recording the attributes C reads of it."""

    def __init__(self, target: Any, reads: set[tuple[str, str]]) -> None:
        self._target, self._reads = target, reads

    def __getattr__(self, name: str) -> Any:
        self._reads.add((type(self._target).__name__, name))
        return _record(getattr(self._target, name), self._reads)


def _record(value: Any, reads: set[tuple[str, str]]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _Recorder(value, reads)
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return tuple(_record(item, reads) for item in value)
    return value


# Fields of the plan's classes that C does not read, each with why.
_NOT_READ_BY_C = {
    ("RedactionGate", "unknown"): "why every_text is forced: for the log",
    ("FieldPlan", "name"): "for a reader of the plan; C works by index",
    ("HeaderNames", "event_type"): "inside TypePlan.type_header",
    ("HeaderNames", "schema_version"): "inside TypePlan.version_header",
    ("HeaderNames", "redacted"): "a redacted record is deferred: C never writes it",
    ("HeaderNames", "receiver_id"): "inside PlanSpec.receiver_headers",
    ("HeaderNames", "receiver_version"): "inside PlanSpec.receiver_headers",
}


def test_c_reads_every_field_of_the_plan() -> None:
    settings = load_config()
    schemas = load_schemas()
    serializers: dict[Any, AvroEventSerializer] = {
        t: AvroEventSerializer(schemas.latest(t), 7) for t in EVENT_TYPES
    }
    gate = native.redaction_gate(Redactor(settings.redaction))
    spec, _ = native.compile_plan(
        serializers,
        {t: settings.kafka.topic_for(t) for t in EVENT_TYPES},
        settings.validation,
        gate,
        Redactor(settings.redaction),
        10**6,
    )
    # The real models declare no sum yet everywhere: give one type a rule so C reads one.
    first = dataclasses.replace(spec.types[0], sums=(native.SumPlan(total=0, parts=(1,)),))
    spec = dataclasses.replace(spec, types=(first, *spec.types[1:]))
    reads: set[tuple[str, str]] = set()
    native._native.Plan(_record(spec, reads))  # type: ignore[union-attr]
    declared = {
        (type(obj).__name__, f.name)
        for obj in (spec, spec.limits, spec.redaction, spec.headers, spec.redaction.digit_runs[0],
                    first, first.fields[0], first.keys[0], first.sums[0])
        for f in dataclasses.fields(obj)
    }  # fmt: skip
    assert declared - reads == set(_NOT_READ_BY_C)
    assert reads <= declared


# --- sum_fields: C derives an absent total and defers a contradicted one ----------------------

# PerformanceMetrics.tokens_total = input_tokens + output_tokens, read from the convention.
_TOTAL_KEY = conv.FIELD_KEYS["performance_metrics"]["tokens_total"][0]


@pytest.fixture
def sum_plan() -> tuple[native.NativeLogs, dict[str, Any]]:
    assert PerformanceMetrics.sum_fields == (("tokens_total", ("input_tokens", "output_tokens")),)
    built = _build()
    assert "performance_metrics" in built.native_types
    return built, load_schemas().latest("performance_metrics").definition


def _metrics(**attributes: Any) -> Any:
    return make_log_record(
        "feedback.performance_metrics", {"gen_ai.request.model": "m", **attributes}
    )


@pytest.mark.parametrize(
    ("attributes", "total"),
    [
        ({"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}, 7),
        ({"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4, _TOTAL_KEY: 7}, 7),
        ({"gen_ai.usage.input_tokens": 3, _TOTAL_KEY: 9}, 9),  # a part absent: as sent
        ({"gen_ai.usage.output_tokens": 4}, None),
        ({_TOTAL_KEY: 5}, 5),
        ({}, None),
    ],
)
def test_a_total_is_derived_or_kept_as_sent_natively(
    sum_plan: tuple[native.NativeLogs, dict[str, Any]], attributes: dict[str, Any], total: Any
) -> None:
    plan, schema = sum_plan
    result = plan.export(
        logs_request([_metrics(**attributes)]).SerializeToString(), _RECEIVED_NS, None
    )
    assert result is not None and result.deferred == []
    record = result.slots[0]
    assert record is not None
    decoded = fastavro.schemaless_reader(
        io.BytesIO(record.value[5:]), fastavro.parse_schema(schema), None
    )
    assert isinstance(decoded, dict)
    assert decoded["tokens_total"] == total


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4, _TOTAL_KEY: 8},
        {"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4, _TOTAL_KEY: "7"},
        {"gen_ai.usage.input_tokens": 2**62, "gen_ai.usage.output_tokens": 2**62},  # > int64
        {"gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": 1},
        {"gen_ai.usage.input_tokens": 3.0, "gen_ai.usage.output_tokens": 4},
    ],
    ids=["contradicted", "total-text", "past-max", "overflow", "part-double"],
)
def test_a_contradicted_or_unrepresentable_total_is_deferred(
    sum_plan: tuple[native.NativeLogs, dict[str, Any]], attributes: dict[str, Any]
) -> None:
    plan, _ = sum_plan
    result = plan.export(
        logs_request([_metrics(**attributes)]).SerializeToString(), _RECEIVED_NS, None
    )
    assert result is not None
    assert result.deferred == [(0, 0, 0)] and result.slots == [None]


def test_sum_fields_over_a_field_c_cannot_sum_keep_that_type_in_python(swap_model: Any) -> None:
    class Odd(_SystemHealth):
        sum_fields: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
            ("cpu_percent", ("memory_percent",)),  # doubles: not compiled
        )

    swap_model(Odd)
    plan = _build()
    assert (
        "sum_fields of other than optional integer attributes" in plan.python_only["system_health"]
    )


def test_the_body_feeds_the_field_the_convention_names() -> None:
    # One piece of data: the mapper and the plan both read convention.BODY_FIELDS.
    plan, _ = native.compile_plan(
        {t: AvroEventSerializer(load_schemas().latest(t), 7) for t in EVENT_TYPES},
        {t: t for t in EVENT_TYPES},
        load_config().validation,
        native.redaction_gate(Redactor(RedactionConfig())),
        Redactor(RedactionConfig()),
        10**6,
    )
    for type_plan in plan.types:
        body = conv.BODY_FIELDS.get(type_plan.event_type)  # type: ignore[call-overload]
        if body is None:
            assert type_plan.body_field == -1
        else:
            assert type_plan.fields[type_plan.body_field].name == body


def test_a_started_pipeline_shows_which_types_its_plan_leaves_to_python() -> None:
    from otlp_feedback.pipeline import Pipeline
    from otlp_feedback.registry.client import InMemoryRegistry
    from otlp_feedback.sinks.memory import InMemorySink

    telemetry = Telemetry()
    pipeline = Pipeline(load_config(), InMemoryRegistry(), InMemorySink(), telemetry=telemetry)
    pipeline.start()
    assert telemetry.gauge_values(NATIVE_PYTHON_ONLY) == {(t,): 0.0 for t in EVENT_TYPES}
    pipeline.set_redaction(RedactionConfig(enabled=False))  # a reload builds the plan again
    assert telemetry.gauge_values(NATIVE_PYTHON_ONLY) == {(t,): 0.0 for t in EVENT_TYPES}
