"""The pydantic events and the NEWEST Avro schema of each type describe the same records.

The encoder hands ``event.__dict__`` straight to the Avro writer of the newest version, so a
field added to one side only would be dropped silently or fail at runtime; these tests make it
fail here instead. Older versions are history: they stay exactly as released (pinned below) and
``otlp-feedback schemas check`` proves each version compatible with the ones before it.
"""

from __future__ import annotations

import hashlib
import types
import typing
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic.fields import FieldInfo

from otlp_feedback.encoding import load_schemas
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType, FeedbackEvent
from otlp_feedback.registry.compat import parse_schema

SCHEMAS = load_schemas()
# Each model against the newest version of its type: that is what producers write.
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


# sha256 of each version's canonical form (the registry's identity of a schema: formatting aside,
# any edit changes it). Versions are kept forever and never edited; an evolution is a new vN+1
# file, pinned here when it is added.
PINNED_VERSIONS: dict[tuple[EventType, int], str] = {
    ("user_feedback", 1): "3bfcdbe102f8fa5843b5397f0e9b62ac7858583532e58be529acee4299d6ce7b",
    ("user_feedback", 2): "020e613cfe2491335e4c38c0727ff9f9eb8eb31cae524630d185efcb96274631",
    ("performance_metrics", 1): "21561e5eb527776179b1b66258878d24096efc6dc92539fbaed60e710b6ed8b3",
    ("performance_metrics", 2): "ea641d29be17c3bc040bbdc174c22fc6135b90d6d41b0a561e15eec3fc3d3cfb",
    ("performance_metrics", 3): "93c1eaf9c6e623dc2662b0c5885b80fee4c9216615708b4a3c582cc9f7171e78",
    ("performance_metrics", 4): "4d3b6ef01e77de817bf7f8ba7c50f3304dadc576c7dbc1bee21b174e71eb21ea",
    ("model_response", 1): "4085961b64d47b28c013266f067b54c079b5bd5316c33e689401b6cb10465958",
    ("model_response", 2): "b02ad3a6c9eda41a7816f47a46ce6595b3740da4524bbc431e72d21a591615d3",
    ("model_response", 3): "0685df9473bd6d12a344e9c455ba1f2ca5a33984a900f55fb8f9df67e2a492a1",
    ("system_health", 1): "afd3434df702a5bbf836b1c65c9fba602384369fe85a58f65d8e9f366c261daa",
    ("system_health", 2): "11aec6fb996a2e8b0835113e03682278250749257c9275de9ca3ec0a3fd1a3db",
    ("experiment_result", 1): "01049a75968e1eef9da15e0ef58e3a803810de8b92f6cce3fa4ca68a67b2cbd8",
    ("experiment_result", 2): "444e899710eece4f25f1787529509702c708d4dc929c93e72c09426f0b88105f",
}


def fingerprint(schema: LocalSchema) -> str:
    return hashlib.sha256(parse_schema(schema.text).canonical.encode()).hexdigest()


def test_every_schema_version_is_pinned() -> None:
    local = {(t, s.version) for t in EVENT_TYPES for s in SCHEMAS.versions[t]}
    assert local == set(PINNED_VERSIONS)


@pytest.mark.parametrize(("event_type", "version"), sorted(PINNED_VERSIONS))
def test_schema_versions_are_never_edited(event_type: EventType, version: int) -> None:
    schema = SCHEMAS.version(event_type, version)
    assert fingerprint(schema) == PINNED_VERSIONS[event_type, version], (
        f"{schema.path} changed: versions are kept as released; put the change in a new version"
    )
