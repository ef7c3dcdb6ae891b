"""``schemas diff A B``: fields added, removed and changed between two schema versions.

A and B are ``<event_type>:vN`` (a local version) or paths to ``.avsc`` files. Fields are
matched by name, or by an alias of B's field naming A's (a declared rename). The verdict of
the registry's checker is added in both directions, so the diff says whether the change is
backward and forward compatible, not only what it is.

Pure except for ``resolve``, which reads files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from otlp_feedback.encoding.schemas import SchemaSet
from otlp_feedback.errors import SchemaError
from otlp_feedback.events import EVENT_TYPES, EventType
from otlp_feedback.registry.compat import CompatibilityLevel
from otlp_feedback.schema_tools.explain import VersionedSchema, compare, render_type

_VERSION_REF = re.compile(r"^(?P<type>[a-z_]+):v?(?P<version>\d+)$")
_NO_DEFAULT = object()


def resolve(spec: str, schemas: SchemaSet) -> VersionedSchema:
    """``performance_metrics:v2`` (or ``:2``) from ``schemas``, else an ``.avsc`` file path.

    Raises ``SchemaError`` if it is neither, or if the file cannot be read.
    """
    match = _VERSION_REF.match(spec)
    if match and not Path(spec).exists():
        event_type = match.group("type")
        if event_type not in EVENT_TYPES:
            raise SchemaError(f"{spec}: unknown event type; one of {', '.join(EVENT_TYPES)}")
        local = schemas.version(cast(EventType, event_type), int(match.group("version")))
        return VersionedSchema(f"{event_type}:v{local.version}", local.text)
    path = Path(spec)
    try:
        return VersionedSchema(str(path), path.read_text())
    except OSError as exc:
        raise SchemaError(
            f"{spec}: neither <event_type>:vN nor a readable schema file ({exc.strerror})"
        ) from exc


@dataclass(frozen=True)
class FieldChange:
    """One field of A and/or B. ``before`` is None for an added field, ``after`` for a removed."""

    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def line(self) -> str:
        if self.before is None:
            assert self.after is not None
            return f"  + {self.name}: {_describe(self.after)}"
        if self.after is None:
            return f"  - {self.name}: {_describe(self.before)}"
        aspects = []
        if self.before["name"] != self.after["name"]:
            aspects.append(f"renamed from `{self.before['name']}` (alias)")
        if self.before["type"] != self.after["type"]:
            aspects.append(
                f"type {render_type(self.before['type'])} -> {render_type(self.after['type'])}"
            )
        old, new = _default(self.before), _default(self.after)
        if old != new:
            aspects.append(f"default {old} -> {new}")
        if self.before.get("aliases", []) != self.after.get("aliases", []):
            aspects.append(f"aliases {self.before.get('aliases', [])} -> {self.after['aliases']}")
        return f"  ~ {self.name}: {'; '.join(aspects)}"


@dataclass(frozen=True)
class SchemaDiff:
    a: VersionedSchema
    b: VersionedSchema
    record: tuple[str, ...]  # record-level changes (name, namespace)
    fields: tuple[FieldChange, ...]
    b_reads_a: bool  # BACKWARD: a consumer on B reads data written with A
    a_reads_b: bool  # FORWARD: a consumer on A reads data written with B

    def lines(self) -> list[str]:
        out = [f"{self.a.label} -> {self.b.label}"]
        out += [f"  record {change}" for change in self.record]
        out += [change.line() for change in self.fields]
        counts = {
            kind: sum(1 for c in self.fields if _kind(c) == kind)
            for kind in ("added", "removed", "changed")
        }
        if not self.record and not self.fields:
            out.append("  (no field changes)")
        out.append(", ".join(f"{n} {kind}" for kind, n in counts.items()))
        a, b = self.a.label, self.b.label
        out.append(f"backward: {_yes(self.b_reads_a)} ({b} reads data written with {a})")
        out.append(f"forward:  {_yes(self.a_reads_b)} ({a} reads data written with {b})")
        return out


def diff(a: VersionedSchema, b: VersionedSchema) -> SchemaDiff:
    """What changed from ``a`` to ``b``. Raises ``SchemaError`` if either is not valid Avro."""
    before = {f["name"]: f for f in a.definition.get("fields", [])}
    after = {f["name"]: f for f in b.definition.get("fields", [])}
    renamed = {
        alias: name
        for name, f in after.items()
        if name not in before
        for alias in f.get("aliases", [])
        if alias in before and alias not in after
    }
    changes = [
        FieldChange(name, None, f)
        for name, f in after.items()
        if name not in before and name not in renamed.values()
    ]
    for name, f in before.items():
        if name in renamed:
            changes.append(FieldChange(renamed[name], f, after[renamed[name]]))
        elif name not in after:
            changes.append(FieldChange(name, f, None))
        elif _differs(f, after[name]):
            changes.append(FieldChange(name, f, after[name]))
    order = {name: i for i, name in enumerate([*after, *before])}
    changes.sort(key=lambda c: order[c.name])
    record = [
        f"{key} {a.definition.get(key)} -> {b.definition.get(key)}"
        for key in ("name", "namespace")
        if a.definition.get(key) != b.definition.get(key)
    ]
    return SchemaDiff(
        a,
        b,
        tuple(record),
        tuple(changes),
        b_reads_a=not compare(b, [a], CompatibilityLevel.BACKWARD),
        a_reads_b=not compare(b, [a], CompatibilityLevel.FORWARD),
    )


def _differs(before: dict[str, Any], after: dict[str, Any]) -> bool:
    keys = ("type", "default", "aliases")
    return any(before.get(k, _NO_DEFAULT) != after.get(k, _NO_DEFAULT) for k in keys)


def _default(field: dict[str, Any]) -> str:
    return json.dumps(field["default"]) if "default" in field else "none"


def _describe(field: dict[str, Any]) -> str:
    default = f"default {_default(field)}" if "default" in field else "no default"
    return f"{render_type(field['type'])}, {default}"


def _kind(change: FieldChange) -> str:
    if change.before is None:
        return "added"
    return "removed" if change.after is None else "changed"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
