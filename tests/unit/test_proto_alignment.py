"""``proto/otlp_feedback/v1/events.proto`` describes the same events as the newest Avro schemas
and the pydantic models, so the three definitions cannot drift apart.

The .proto is compiled with grpcio-tools' protoc into a descriptor set (nothing is generated
into the tree), and each message is compared field by field, in declaration order, with the Avro
record and the model: names, types, optionality, repetition. Numbers are checked apart: a field
added later keeps the next free number even where Avro places it mid-record (the envelope's
client_id and redacted_fields). Every field is reduced to one readable shape (``optional
string``, ``timestamp``, ``map<string,double>``, ``repeated string``)
so a failure says exactly what differs.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from otlp_feedback.encoding import load_schemas
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType

PROTO_ROOT = Path(__file__).parents[2] / "proto"
PROTO_FILE = "otlp_feedback/v1/events.proto"
SCHEMAS = load_schemas()

FieldProto = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FieldProto.TYPE_STRING: "string",
    FieldProto.TYPE_INT64: "int64",
    FieldProto.TYPE_DOUBLE: "double",
    FieldProto.TYPE_BOOL: "bool",
}
AVRO_SCALARS = {"string": "string", "long": "int64", "double": "double", "boolean": "bool"}
PY_SCALARS: dict[Any, str] = {str: "string", int: "int64", float: "double", bool: "bool"}


@pytest.fixture(scope="module")
def proto_file(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path_factory.mktemp("proto") / "events.pb"
    well_known = files("grpc_tools") / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            PROTO_FILE,
        ]
    )
    assert code == 0, (
        f"protoc could not compile {PROTO_FILE} (see its message in the captured stderr)"
    )
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return compiled


def message(
    proto_file: descriptor_pb2.FileDescriptorProto, event_type: EventType
) -> descriptor_pb2.DescriptorProto:
    name = EVENT_MODELS[event_type].__name__
    found = [m for m in proto_file.message_type if m.name == name]
    assert found, f"{PROTO_FILE} has no message {name}"
    return found[0]


def proto_shapes(msg: descriptor_pb2.DescriptorProto) -> dict[str, str]:
    """Field name -> shape, in declaration order."""
    entries = {f".otlp_feedback.v1.{msg.name}.{n.name}": n for n in msg.nested_type}
    shapes = {}
    for field in msg.field:
        if field.type == FieldProto.TYPE_MESSAGE and field.type_name in entries:
            entry = entries[field.type_name]
            assert entry.options.map_entry, f"{field.name}: a nested message, not a map"
            key, value = entry.field
            shape = f"map<{scalar(key)},{scalar(value)}>"
        elif field.type == FieldProto.TYPE_MESSAGE:
            assert field.type_name == ".google.protobuf.Timestamp", field.type_name
            shape = "timestamp"
        else:
            shape = scalar(field)
            if field.label == FieldProto.LABEL_REPEATED:
                shape = f"repeated {shape}"
        shapes[field.name] = f"optional {shape}" if field.proto3_optional else shape
    return shapes


def scalar(field: descriptor_pb2.FieldDescriptorProto) -> str:
    assert field.type in SCALARS, (
        f"{field.name}: no Avro counterpart for protobuf type {field.type}"
    )
    return SCALARS[field.type]


def avro_shape(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        assert avro_type[0] == "null" and len(avro_type) == 2, avro_type
        return f"optional {avro_shape(avro_type[1])}"
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return "timestamp"
        if avro_type["type"] == "map":
            return f"map<string,{avro_shape(avro_type['values'])}>"
        if avro_type["type"] == "array":
            return f"repeated {avro_shape(avro_type['items'])}"
    assert avro_type in AVRO_SCALARS, f"no protobuf shape for Avro type {avro_type!r}"
    return AVRO_SCALARS[avro_type]


def model_shape(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        assert len(args) == 1, annotation
        return f"optional {model_shape(args[0])}"
    if get_origin(annotation) is typing.Annotated:
        return model_shape(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return "string"
    if get_origin(annotation) is dict:
        return f"map<string,{model_shape(get_args(annotation)[1])}>"
    if get_origin(annotation) is list:
        return f"repeated {model_shape(get_args(annotation)[0])}"
    if annotation is datetime:
        return "timestamp"
    assert annotation in PY_SCALARS, f"no protobuf shape for {annotation!r}"
    return PY_SCALARS[annotation]


def test_proto_compiles_as_proto3_in_the_versioned_package(
    proto_file: descriptor_pb2.FileDescriptorProto,
) -> None:
    assert proto_file.syntax == "proto3"
    assert proto_file.package == "otlp_feedback.v1"
    assert list(proto_file.dependency) == ["google/protobuf/timestamp.proto"]


def test_one_message_per_event_type_named_like_the_avro_record_and_model(
    proto_file: descriptor_pb2.FileDescriptorProto,
) -> None:
    records = {SCHEMAS.latest(t).definition["name"] for t in EVENT_TYPES}
    models = {EVENT_MODELS[t].__name__ for t in EVENT_TYPES}
    assert {m.name for m in proto_file.message_type} == records == models


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_fields_match_the_newest_avro_schema_in_name_order_and_shape(
    proto_file: descriptor_pb2.FileDescriptorProto, event_type: EventType
) -> None:
    avro = {
        f["name"]: avro_shape(f["type"]) for f in SCHEMAS.latest(event_type).definition["fields"]
    }
    proto = proto_shapes(message(proto_file, event_type))
    assert list(proto.items()) == list(avro.items())


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_fields_match_the_pydantic_model_in_name_order_and_shape(
    proto_file: descriptor_pb2.FileDescriptorProto, event_type: EventType
) -> None:
    model = {n: model_shape(f.annotation) for n, f in EVENT_MODELS[event_type].model_fields.items()}
    proto = proto_shapes(message(proto_file, event_type))
    assert list(proto.items()) == list(model.items())


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_field_numbers_leave_no_unreserved_gaps(
    proto_file: descriptor_pb2.FileDescriptorProto, event_type: EventType
) -> None:
    # A field added to the Avro schema takes the next free number here; a removed field's
    # number is reserved so it can never be reused with another meaning.
    msg = message(proto_file, event_type)
    numbers = [f.number for f in sorted(msg.field, key=lambda f: f.number)]
    reserved = {n for r in msg.reserved_range for n in range(r.start, r.end)}
    assert set(range(1, numbers[-1] + 1)) - set(numbers) <= reserved


def test_shape_helpers_refuse_what_they_cannot_map() -> None:
    # Guards for the checker itself: an unmapped type must fail, not compare equal by accident.
    with pytest.raises(AssertionError):
        avro_shape("bytes")
    with pytest.raises(AssertionError):
        avro_shape(["string", "null"])
    with pytest.raises(AssertionError):
        model_shape(set[str])


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_version_appended_its_fields_with_the_next_numbers(
    proto_file: descriptor_pb2.FileDescriptorProto, event_type: EventType
) -> None:
    # proto/README: "a field appended in a new Avro version is appended here with the next
    # number". Renumbering would make old protobuf bytes decode into the wrong fields, so the
    # numbers ascend with the version that added each field, then with its place in the Avro
    # record, wherever that place is (v3 put client_id and redacted_fields after attributes).
    numbers = {f.name: f.number for f in message(proto_file, event_type).field}
    history = SCHEMAS.versions[event_type]
    position = {f["name"]: i for i, f in enumerate(history[-1].definition["fields"])}
    added_in = {
        name: next(
            s.version for s in history if name in {f["name"] for f in s.definition["fields"]}
        )
        for name in numbers
    }
    by_age = sorted(numbers, key=lambda name: (added_in[name], position[name]))
    assert [numbers[name] for name in by_age] == sorted(numbers.values()), [
        (name, f"v{added_in[name]}", numbers[name]) for name in by_age
    ]
    assert numbers["attributes"] == 12  # the envelope keeps 1-12 in every message
