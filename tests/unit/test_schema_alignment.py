"""The pydantic events and the Avro schemas in ``schemas/avro`` describe the same records.

The encoder hands ``event.__dict__`` straight to the Avro writer, so a field added to one side
only would be dropped silently or fail at runtime; these tests make it fail here instead.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic.fields import FieldInfo

from otlp_feedback.encoding import load_schemas
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType, FeedbackEvent

SCHEMAS = load_schemas()
PAIRS = [pytest.param(EVENT_MODELS[t], SCHEMAS.latest(t), id=t) for t in EVENT_TYPES]
TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}


def avro_type_of(annotation: Any) -> Any:
    """The Avro type a (non-optional) Python annotation must be written as."""
    if get_origin(annotation) is typing.Annotated:
        return avro_type_of(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        assert all(isinstance(v, str) for v in get_args(annotation)), annotation
        return "string"
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        assert key is str, f"Avro map keys are strings, not {key}"
        return {"type": "map", "values": avro_type_of(value)}
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": avro_type_of(item)}
    scalar = {str: "string", float: "double", int: "long", bool: "boolean"}
    if annotation in scalar:
        return scalar[annotation]
    if annotation is datetime:
        return TIMESTAMP_MICROS
    raise AssertionError(f"no Avro mapping for {annotation!r}")


def split_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (annotation, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def avro_fields(schema: LocalSchema) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema.definition["fields"]}


def model_fields(model: type[FeedbackEvent]) -> dict[str, FieldInfo]:
    return dict(model.model_fields)


@pytest.mark.parametrize(("model", "schema"), PAIRS)
def test_same_field_names_in_the_same_order(
    model: type[FeedbackEvent], schema: LocalSchema
) -> None:
    assert list(avro_fields(schema)) == list(model_fields(model))


@pytest.mark.parametrize(("model", "schema"), PAIRS)
def test_record_is_named_after_the_model_in_the_events_namespace(
    model: type[FeedbackEvent], schema: LocalSchema
) -> None:
    assert schema.definition["type"] == "record"
    assert schema.definition["name"] == model.__name__
    assert schema.definition["namespace"] == "otlp_feedback.events"


@pytest.mark.parametrize(("model", "schema"), PAIRS)
def test_field_types_agree(model: type[FeedbackEvent], schema: LocalSchema) -> None:
    fields = avro_fields(schema)
    for name, info in model_fields(model).items():
        inner, optional = split_optional(info.annotation)
        expected = ["null", avro_type_of(inner)] if optional else avro_type_of(inner)
        assert fields[name]["type"] == expected, name


@pytest.mark.parametrize(("model", "schema"), PAIRS)
def test_optional_fields_are_nullable_unions_defaulting_to_null(
    model: type[FeedbackEvent], schema: LocalSchema
) -> None:
    fields = avro_fields(schema)
    for name, info in model_fields(model).items():
        _, optional = split_optional(info.annotation)
        avro_nullable = isinstance(fields[name]["type"], list) and "null" in fields[name]["type"]
        assert avro_nullable == optional, name
        if optional:
            assert fields[name]["type"][0] == "null", f"{name}: null must come first"
            assert "default" in fields[name], name
            assert fields[name]["default"] is None, name
            assert info.default is None, name


@pytest.mark.parametrize(("model", "schema"), PAIRS)
def test_required_fields_have_no_default_and_defaults_agree(
    model: type[FeedbackEvent], schema: LocalSchema
) -> None:
    fields = avro_fields(schema)
    for name, info in model_fields(model).items():
        if info.is_required():
            assert "default" not in fields[name], f"{name} is required in the model"
            continue
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        assert "default" in fields[name], f"{name} has a default in the model"
        assert fields[name]["default"] == default, name


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_versions_are_numbered_from_one_without_gaps(event_type: EventType) -> None:
    versions = [schema.version for schema in SCHEMAS.versions[event_type]]
    assert versions == list(range(1, len(versions) + 1))
    assert SCHEMAS.latest(event_type).version == versions[-1]


def test_annotation_mapping_rejects_what_avro_cannot_express() -> None:
    # Guard for the checker itself: an unmapped Python type must fail, not pass silently.
    with pytest.raises(AssertionError):
        avro_type_of(set[str])
    with pytest.raises(AssertionError):
        avro_type_of(dict[int, str])
