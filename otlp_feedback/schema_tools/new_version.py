"""``schemas new-version TYPE``: the next Avro version and protobuf field(s), from the model.

Adding a field means editing the model (``events.py``) and the convention, then running this.
The next version is the newest one's fields, in order, plus each model field the newest lacks,
appended: ``["null", T]`` defaulting to null for an optional field (a field with another
default keeps it), with a ``doc`` naming the attribute keys it is read from and the version it
was added in, as the hand-written versions did. The protobuf message gets the same fields with
the next free numbers (proto/README.md: "appended here with the next number").

It only appends. What appending cannot express, and FULL_TRANSITIVE would refuse anyway, is
refused naming the field: a field the model no longer has, a changed type, a new field without a
default, a new field declared before existing ones (Avro order must stay the model's). The
result is then checked against every earlier version under the configured mode with the same
checker as ``schemas check`` (``explain.compare``).

``plan`` and ``append_to_proto`` are pure; ``write`` writes the files; the CLI is a thin shell.
"""

from __future__ import annotations

import json
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo

from otlp_feedback.encoding.schemas import SchemaSet
from otlp_feedback.errors import SchemaError
from otlp_feedback.events import EventType, FeedbackEvent
from otlp_feedback.registry.compat import CompatibilityLevel
from otlp_feedback.schema_tools.explain import VersionedSchema, compare, render_type

_TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}
_AVRO_SCALARS: dict[Any, str] = {str: "string", float: "double", int: "long", bool: "boolean"}
_PROTO_SCALARS = {"string": "string", "long": "int64", "double": "double", "boolean": "bool"}
_FIELD_NUMBER = re.compile(r"=\s*(\d+)\s*(?:\[[^\]]*\])?\s*;")
_RESERVED = re.compile(r"^\s*reserved\s+([^;]*);", re.MULTILINE)
_COMMENT_WIDTH = 95  # the .proto's comments stay within 100 columns


def history_of(schemas: SchemaSet, event_type: EventType) -> list[VersionedSchema]:
    """Every local version of ``event_type``, oldest first, labelled ``vN``."""
    return [VersionedSchema(f"v{s.version}", s.text) for s in schemas.versions[event_type]]


def proto_next_to(schemas_dir: Path) -> Path:
    """Where the repository keeps the .proto relative to its ``schemas/avro`` folder."""
    parents = schemas_dir.resolve().parents
    root = parents[1] if len(parents) > 1 else parents[0]  # a folder right under / has no repo
    return root / "proto" / "otlp_feedback" / "v1" / "events.proto"


class NewVersionRefused(SchemaError):
    """The model asks for a change that appending fields cannot make compatibly."""


@dataclass(frozen=True)
class NewVersion:
    """The next version of one event type: its definition and the fields it appends."""

    event_type: EventType
    version: int
    definition: dict[str, Any]
    added: tuple[dict[str, Any], ...]  # the appended Avro fields, as written

    @property
    def text(self) -> str:
        """The ``.avsc`` text, laid out as the hand-written versions are."""
        return json.dumps(self.definition, indent=2) + "\n"

    def lines(self) -> list[str]:
        return [
            f"  + {f['name']}: {render_type(f['type'])}, default {json.dumps(f['default'])}"
            for f in self.added
        ]


def avro_type(annotation: Any) -> Any:
    """The Avro type of a model annotation (``X | None`` -> ``["null", X]``).

    Raises ``NewVersionRefused`` for a type Avro cannot express here.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(typing.get_args(annotation)) != 2:
            raise NewVersionRefused(f"no Avro type for {annotation!r}")
        return ["null", avro_type(members[0])]
    if origin is typing.Annotated:
        return avro_type(typing.get_args(annotation)[0])
    if origin is Literal and all(isinstance(v, str) for v in typing.get_args(annotation)):
        return "string"
    if origin is dict and typing.get_args(annotation)[0] is str:
        return {"type": "map", "values": avro_type(typing.get_args(annotation)[1])}
    if origin is list:
        return {"type": "array", "items": avro_type(typing.get_args(annotation)[0])}
    if annotation is datetime:
        return dict(_TIMESTAMP_MICROS)
    if annotation in _AVRO_SCALARS:
        return _AVRO_SCALARS[annotation]
    raise NewVersionRefused(f"no Avro type for {annotation!r}")


def plan(
    model: type[FeedbackEvent],
    history: Sequence[VersionedSchema],
    keys: Mapping[str, tuple[str, ...]],
    level: CompatibilityLevel = CompatibilityLevel.FULL_TRANSITIVE,
) -> NewVersion | None:
    """The version after ``history[-1]`` that ``model`` needs, or None if it needs none.

    ``history`` is every local version, oldest first, labelled ``vN``; ``keys`` maps a field to
    the attribute keys the convention reads it from (for the new fields' ``doc``). Raises
    ``NewVersionRefused`` naming the field for a change that is not an append, or whatever
    ``level`` refuses. Pure.
    """
    newest = history[-1]
    version = int(newest.label.removeprefix("v")) + 1
    fields: list[dict[str, Any]] = newest.definition["fields"]
    have = {f["name"]: f for f in fields}
    wanted = model.model_fields
    label = f"{model.event_type} {newest.label}"
    for name, existing in have.items():
        if name not in wanted:
            raise NewVersionRefused(
                f"field `{name}` of {label} is not in the model: new-version only appends; "
                "a removal needs a default in every version and a hand-written version"
            )
        expected = avro_type(wanted[name].annotation)
        if existing["type"] != expected:
            raise NewVersionRefused(
                f"field `{name}` is {render_type(existing['type'])} in {label} but "
                f"{render_type(expected)} in the model: a type never changes; add a new field"
            )
    new_names = [name for name in wanted if name not in have]
    if list(wanted) != [*have, *new_names]:
        first = next(n for n, o in zip(wanted, [*have, *new_names], strict=True) if n != o)
        raise NewVersionRefused(
            f"field `{first}` is out of place in the model: Avro appends new fields, so declare "
            f"them after the {len(have)} fields of {label}, in that order"
        )
    if not new_names:
        return None
    added = tuple(
        _new_field(name, wanted[name], model, keys.get(name, ()), version, label)
        for name in new_names
    )
    definition = {**newest.definition, "fields": [*fields, *added]}
    new = NewVersion(model.event_type, version, definition, added)
    findings = compare(VersionedSchema(f"v{version}", new.text), history, level)
    if findings:
        raise NewVersionRefused("; ".join(f.describe(f"v{version}") for f in findings))
    return new


def _new_field(
    name: str,
    info: FieldInfo,
    model: type[FeedbackEvent],
    keys: tuple[str, ...],
    version: int,
    label: str,
) -> dict[str, Any]:
    if info.is_required():
        raise NewVersionRefused(
            f"new field `{name}` is required in the model: data written with {label} and "
            "before has no value for it; give it a default (`= None`)"
        )
    default = info.get_default(call_default_factory=True)
    kind = avro_type(info.annotation)
    # A union's default must match its first branch: the convention is null first.
    if isinstance(kind, list) and default is not None:
        raise NewVersionRefused(f"new field `{name}` is optional: its default must be None")
    doc = _doc(name, info, model, keys, version)
    return {"name": name, "type": kind, "doc": doc, "default": default}


def _doc(
    name: str, info: FieldInfo, model: type[FeedbackEvent], keys: tuple[str, ...], version: int
) -> str:
    """``<description> (<keys>, else <a> + <b>). Added in vN.``, as in the v2 files."""
    sources = " or ".join(keys)
    for total, parts in model.sum_fields:
        if total == name:
            summed = " + ".join(parts)
            sources = f"{sources}, else {summed}" if sources else summed
    text = (info.description or "").strip().rstrip(".")
    if text and sources:
        text = f"{text} ({sources})"
    elif sources:
        text = f"From {sources}"
    return f"{text}. Added in v{version}." if text else f"Added in v{version}."


def append_to_proto(proto: str, message: str, new: NewVersion) -> tuple[str, list[str]]:
    """``proto`` with ``new``'s fields appended to ``message`` with the next free numbers.

    Returns the text and the lines added. A field the message already has is left alone, so a
    second run adds nothing. Raises ``SchemaError`` if the message is not in ``proto``. Pure.
    """
    start = re.search(rf"^message\s+{re.escape(message)}\s*\{{", proto, re.MULTILINE)
    if start is None:
        raise SchemaError(f"no `message {message}` in the .proto")
    end = proto.index("\n}", start.end())  # messages here nest none: the first closing brace
    body = proto[start.end() : end]
    taken = [int(n) for n in _FIELD_NUMBER.findall(body)]
    for spec in _RESERVED.findall(body):
        for part in spec.split(","):
            low, _, high = part.strip().partition(" to ")
            if low.strip().isdigit():
                taken.append(int(high.strip() if high.strip().isdigit() else low))
    present = set(re.findall(r"\b(\w+)\s*=\s*\d+", body))
    number = max(taken, default=0)
    added: list[str] = []
    for field in new.added:
        if field["name"] in present:
            continue
        number += 1
        added += [f"  // {line}" for line in textwrap.wrap(field["doc"], _COMMENT_WIDTH)]
        added.append(f"  {_proto_type(field['type'])} {field['name']} = {number};")
    if not added:
        return proto, []
    block = [f"  // --- added in v{new.version} ---", *added]
    text = proto[:end] + "\n" + "\n".join(block) + proto[end:]
    return text, block


def _proto_type(avro: Any) -> str:
    if isinstance(avro, list):
        return f"optional {_proto_type(avro[1])}"
    if isinstance(avro, dict):
        if avro.get("logicalType") == "timestamp-micros":
            return "google.protobuf.Timestamp"
        if avro["type"] == "map":
            return f"map<string, {_proto_type(avro['values'])}>"
        if avro["type"] == "array":
            return f"repeated {_proto_type(avro['items'])}"
    if avro not in _PROTO_SCALARS:
        raise NewVersionRefused(f"no protobuf type for Avro {render_type(avro)}")
    return _PROTO_SCALARS[avro]


def write(new: NewVersion, schemas_dir: Path, proto_path: Path | None) -> list[str]:
    """Write ``<schemas_dir>/<type>/vN.avsc`` (never over an existing file) and append to the
    .proto; returns what was written, one line each. Raises ``SchemaError`` on I/O errors."""
    path = schemas_dir / new.event_type / f"v{new.version}.avsc"
    message = new.definition["name"]
    try:
        proto_text = proto_path.read_text() if proto_path else None
        proto_new, block = (
            append_to_proto(proto_text, message, new) if proto_text is not None else ("", [])
        )
        with path.open("x") as out:
            out.write(new.text)
        written = [f"wrote {path}", *new.lines()]
        if proto_path and block:
            proto_path.write_text(proto_new)
            written.append(f"appended to message {message} in {proto_path}:")
            written += block
    except OSError as exc:
        raise SchemaError(f"new-version {new.event_type}: {exc}") from exc
    return written
