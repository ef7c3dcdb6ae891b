"""The compiled Avro writer (``encoding.compiled_writer``) writes exactly what fastavro writes.

Events are generated with hypothesis from the pydantic models' own field types (so every value
is one the pipeline can produce: None, empty maps and lists, unicode, extreme longs), and
records are also generated straight from schemas that use every supported construct.
"""

from __future__ import annotations

import struct
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Annotated, Any, Literal

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from otlp_feedback.encoding import AvroEventSerializer, LocalSchema, load_schemas
from otlp_feedback.encoding.compiled_writer import UnsupportedSchema, compile_record_writer
from otlp_feedback.errors import EncodingError
from otlp_feedback.events import EVENT_MODELS, FeedbackEvent, UserFeedback

SCHEMAS = load_schemas()
ALL_VERSIONS = [s for versions in SCHEMAS.versions.values() for s in versions]
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


def fastavro_bytes(definition: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = BytesIO()
    schemaless_writer(out, parse_schema(definition), record)
    return out.getvalue()


def fast_bytes(definition: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = bytearray()
    compile_record_writer(definition)(buf, record)
    return bytes(buf)


# -- strategies from the models' field types ---------------------------------------------------

TEXT = st.text(max_size=40) | st.sampled_from(["", "é", "日本語", "👍🏽", "a" * 200])
LONGS = (
    st.integers(LONG_MIN, LONG_MAX)
    | st.integers(-200, 200)
    | st.sampled_from([LONG_MIN, LONG_MAX, 63, 64, -64, -65, 0])
)
FLOATS = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(0.0, 1.0)
    | st.floats(0.0, 100.0)
    | st.integers(0, 100)
    | st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1.7976931348623157e308])
)
AWARE_DATETIMES = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(OFFSETS),
)


def _shape(annotation: Any) -> st.SearchStrategy[Any]:
    """Raw values of the annotation's shape; the field's validator filters them afterwards."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_shape(a) for a in typing.get_args(annotation)])
    if origin is Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin is dict:
        _, value = typing.get_args(annotation)
        return st.dictionaries(TEXT, _shape(value), max_size=6)
    if origin is list:
        return st.lists(_shape(typing.get_args(annotation)[0]), max_size=6)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        type(None): st.none(),
        str: TEXT,
        int: LONGS,
        float: FLOATS,
        bool: st.booleans(),
        datetime: AWARE_DATETIMES,
    }
    return simple[annotation]


def _field_values(info: FieldInfo) -> st.SearchStrategy[Any]:
    annotation: Any = info.annotation
    annotated: Any = Annotated[annotation, *info.metadata] if info.metadata else annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotated)

    def valid(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
        return True

    return _shape(info.annotation).filter(valid)


def events_of(model: type[FeedbackEvent]) -> st.SearchStrategy[FeedbackEvent]:
    required = {n: _field_values(f) for n, f in model.model_fields.items() if f.is_required()}
    optional = {n: _field_values(f) for n, f in model.model_fields.items() if not f.is_required()}
    # An event the model refuses as a whole (user feedback without a rating, thumbs or comment;
    # a total that is not the sum of its parts) is not one the encoder ever sees.
    names = model.needs_one_of

    def sums_agree(d: dict[str, Any]) -> bool:
        return all(
            d.get(total) is None
            or any(d.get(p) is None for p in parts)
            or d[total] == sum(d[p] for p in parts)
            for total, parts in model.sum_fields
        )

    return (
        st.fixed_dictionaries(required, optional=optional)
        .filter(lambda d: not names or any(d.get(n) is not None for n in names))
        .filter(sums_agree)
        .map(model.model_validate)
    )


# -- the models' events: fast bytes == fastavro bytes, and they read back -----------------------


@pytest.mark.parametrize("schema", ALL_VERSIONS, ids=lambda s: f"{s.event_type}-v{s.version}")
def test_every_bundled_schema_compiles_to_the_fast_writer(schema: LocalSchema) -> None:
    assert AvroEventSerializer(schema, 7).is_fast


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_event_bytes_equal_fastavro_and_read_back(event_type: str, data: st.DataObject) -> None:
    event = data.draw(events_of(EVENT_MODELS[event_type]))  # type: ignore[index]
    for schema in SCHEMAS.versions[event.event_type]:
        serializer = AvroEventSerializer(schema, 42)
        encoded = serializer(event)

        assert encoded[:5] == b"\x00" + struct.pack(">I", 42)
        assert encoded[5:] == fastavro_bytes(schema.definition, event.__dict__)
        back = schemaless_reader(BytesIO(encoded[5:]), schema.parsed, None)
        assert back == {f["name"]: event.__dict__[f["name"]] for f in schema.definition["fields"]}


def test_user_feedback_bytes_are_pinned() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    event = UserFeedback(
        event_id="e-1",
        timestamp=at,
        received_at=at + timedelta(seconds=1),
        carrier="log_record",
        session_id="s",
        rating=4.5,
        comment="très bien",
        tags=["a"],
        attributes={"k": "v"},
    )
    # v1, pinned when it was the newest (test_encoding.py pins the newest versions' bytes).
    encoded = AvroEventSerializer(SCHEMAS.version("user_feedback", 1), 1)(event)
    assert encoded.hex() == (
        "0000000001"  # magic byte, schema id 1
        "06652d31eabc9ba48dac9506eac595a58dac9506146c6f675f7265636f72"
        "64000000000002730002026b0276000200000000000012400002147472c3"
        "a873206269656e02026100"
    )


# -- schemas using every supported construct, records drawn from the schema --------------------

KITCHEN_SINK: dict[str, Any] = {
    "type": "record",
    "name": "KitchenSink",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "l", "type": "long"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "ns", "type": ["null", "string"], "default": None},
        {"name": "nl", "type": ["null", "long"]},
        {"name": "nd", "type": ["null", "double"], "default": None},
        {"name": "nb", "type": ["null", "boolean"], "default": None},
        {"name": "nt", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "ms", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "md", "type": {"type": "map", "values": "double"}},
        {"name": "as_", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "al", "type": {"type": "array", "items": ["null", "long"]}},
        {"name": "nm", "type": ["null", {"type": "map", "values": "boolean"}]},
        {"name": "aa", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
        {"name": "flag", "type": "boolean", "default": True},
    ],
}
_TIMESTAMPS = AWARE_DATETIMES | st.integers(LONG_MIN, LONG_MAX)


def _from_schema(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.none() | _from_schema(schema[1])
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-micros":
            return _TIMESTAMPS
        if schema["type"] == "map":
            return st.dictionaries(TEXT, _from_schema(schema["values"]), max_size=70)
        if schema["type"] == "array":
            return st.lists(_from_schema(schema["items"]), max_size=70)
        return _from_schema(schema["type"])
    return {
        "string": TEXT,
        "long": LONGS,
        "double": FLOATS,
        "boolean": st.booleans(),
    }[schema]


def records_of(definition: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Records of ``definition``; fields with a default or a null branch may be left out."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for f in definition["fields"]:
        may_omit = "default" in f or isinstance(f["type"], list)
        (optional if may_omit else required)[f["name"]] = _from_schema(f["type"])
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize(
    "definition",
    [KITCHEN_SINK, *(s.definition for s in ALL_VERSIONS)],
    ids=lambda d: d["name"],
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_records_bytes_equal_fastavro(
    definition: dict[str, Any], data: st.DataObject
) -> None:
    record = data.draw(records_of(definition))
    assert fast_bytes(definition, record) == fastavro_bytes(definition, record)


def test_naive_datetimes_are_written_as_fastavro_writes_them() -> None:
    definition = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
    }
    for naive in (datetime(2024, 2, 29, 23, 59, 59, 999999), datetime(1969, 12, 31, 0, 0, 0, 1)):
        assert fast_bytes(definition, {"t": naive}) == fastavro_bytes(definition, {"t": naive})


# -- what the compiler refuses, and the fallback ------------------------------------------------

UNSUPPORTED: list[Any] = [
    "int",
    "float",
    "bytes",
    "null",
    "SomeNamedType",
    {"type": "enum", "name": "E", "symbols": ["A"]},
    {"type": "fixed", "name": "F", "size": 4},
    {"type": "record", "name": "Inner", "fields": []},
    ["string", "null"],
    ["null", "string", "long"],
    ["null", ["null", "string"]],
    {"type": "string", "logicalType": "uuid"},
    {"type": "int", "logicalType": "date"},
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "bytes", "logicalType": "decimal", "precision": 4},
    {"type": "map", "values": "int"},
    {"type": "array", "items": "bytes"},
]


@pytest.mark.parametrize("field_type", UNSUPPORTED, ids=repr)
def test_unsupported_construct_is_refused_at_compile_time(field_type: Any) -> None:
    definition = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
    with pytest.raises(UnsupportedSchema):
        compile_record_writer(definition)


def test_non_record_top_level_is_refused() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_record_writer({"type": "map", "values": "string"})


def test_serializer_falls_back_to_fastavro_for_an_unsupported_schema(tmp_path: Any) -> None:
    definition = dict(SCHEMAS.latest("system_health").definition)
    definition["fields"] = [
        *definition["fields"],
        {
            "name": "tier",
            "type": {"type": "enum", "name": "Tier", "symbols": ["A"]},
            "default": "A",
        },
    ]
    import json

    schema = LocalSchema("system_health", 9, tmp_path / "v9.avsc", json.dumps(definition))
    serializer = AvroEventSerializer(schema, 3)
    event = EVENT_MODELS["system_health"].model_validate(
        {
            "event_id": "e",
            "timestamp": datetime(2025, 1, 1, tzinfo=UTC),
            "received_at": datetime(2025, 1, 1, tzinfo=UTC),
            "carrier": "log_record",
            "service": "svc",
            "status": "healthy",
        }
    )
    assert not serializer.is_fast
    assert serializer(event)[5:] == fastavro_bytes(definition, event.__dict__)


# -- values that do not fit raise EncodingError -------------------------------------------------


def _user_feedback(**overrides: Any) -> FeedbackEvent:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "event_id": "e",
        "timestamp": at,
        "received_at": at,
        "carrier": "log_record",
        "session_id": "s",
        **overrides,
    }
    return UserFeedback.model_construct(**fields)  # no validation: lets bad values through


@pytest.mark.parametrize(
    "overrides",
    [
        {"session_id": 12},
        {"session_id": None},
        {"rating": "4"},
        {"rating": True},
        {"comment": b"bytes"},
        {"tags": "not-a-list"},
        {"tags": [1]},
        {"attributes": {"k": 1}},
        {"attributes": [("k", "v")]},
        {"timestamp": "2025-01-01"},
        {"timestamp": 2**70},
        {"comment": "\ud800"},
    ],
    ids=repr,
)
def test_value_that_does_not_fit_raises_encoding_error(overrides: dict[str, Any]) -> None:
    serializer = AvroEventSerializer(SCHEMAS.latest("user_feedback"), 1)
    with pytest.raises(EncodingError, match="does not fit schema"):
        serializer(_user_feedback(**overrides))


def test_missing_required_field_raises_encoding_error() -> None:
    event = _user_feedback()
    del event.__dict__["session_id"]
    with pytest.raises(EncodingError):
        AvroEventSerializer(SCHEMAS.latest("user_feedback"), 1)(event)


def test_long_out_of_range_raises_encoding_error() -> None:
    serializer = AvroEventSerializer(SCHEMAS.latest("model_response"), 1)
    fields: dict[str, Any] = {
        "event_id": "e",
        "timestamp": datetime(2025, 1, 1, tzinfo=UTC),
        "received_at": datetime(2025, 1, 1, tzinfo=UTC),
        "carrier": "log_record",
        "max_tokens": 2**63,
    }
    event = EVENT_MODELS["model_response"].model_construct(**fields)
    with pytest.raises(EncodingError, match=r"max_tokens|long"):
        serializer(event)
