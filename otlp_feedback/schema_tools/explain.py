"""Why one schema version cannot follow others, in words a schema author can act on.

The verdicts come from the bundled registry's checker (``registry.compat``, built on the
``avro`` package's reader/writer checker), so a local ``schemas check`` and the registry agree.
This module only rephrases its ``Incompatibility`` records: "field `session_id` removed without
default: consumers on v1 cannot read v2 data", merged across directions and versions, plus a
hint when a removal and an addition look like a rename.

Pure functions; no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from otlp_feedback.errors import SchemaError
from otlp_feedback.registry.compat import (
    CompatibilityLevel,
    Incompatibility,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_schema,
)

Change = Literal["added", "removed", "type", "other"]
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class VersionedSchema:
    """A schema text and the name people know it by (``v2``, ``registry version 3 (id 7)``)."""

    label: str
    text: str

    @cached_property
    def parsed(self) -> ParsedSchema:
        """Parsed as the registry parses it. Raises ``SchemaError`` naming the label."""
        try:
            return parse_schema(self.text)
        except InvalidSchemaError as exc:
            raise SchemaError(f"{self.label}: {exc}") from exc

    @cached_property
    def definition(self) -> dict[str, Any]:
        parsed = json.loads(self.text)
        if not isinstance(parsed, dict):
            raise SchemaError(f"{self.label}: the top level must be a record")
        return parsed

    @property
    def canonical(self) -> str:
        """The registry's identity of a schema: equal for texts that differ only in layout."""
        return self.parsed.canonical

    def field_types(self) -> dict[str, Any]:
        return {f["name"]: f["type"] for f in self.definition.get("fields", [])}


@dataclass(frozen=True)
class Finding:
    """One incompatibility of a new version, merged over the versions and directions it breaks."""

    what: str  # e.g. "field `session_id` removed without default"
    change: Change
    field_name: str | None  # the top-level field concerned, if any
    kinds: tuple[str, ...]  # the checker's kinds, e.g. READER_FIELD_MISSING_DEFAULT_VALUE
    unreadable_by: tuple[str, ...] = ()  # consumers on these versions cannot read the new data
    cannot_read: tuple[str, ...] = ()  # the new version cannot read data written with these

    def describe(self, new: str) -> str:
        """``what: who breaks [KIND]`` for the version labelled ``new``."""
        who = []
        if self.unreadable_by:
            who.append(f"consumers on {', '.join(self.unreadable_by)} cannot read {new} data")
        if self.cannot_read:
            who.append(f"{new} cannot read data written with {', '.join(self.cannot_read)}")
        return f"{self.what}: {'; '.join(who)} [{', '.join(self.kinds)}]"


@dataclass
class _Merged:
    change: Change
    field_name: str | None
    kinds: list[str] = field(default_factory=list)
    unreadable_by: list[str] = field(default_factory=list)
    cannot_read: list[str] = field(default_factory=list)

    def finding(self, what: str) -> Finding:
        return Finding(
            what,
            self.change,
            self.field_name,
            tuple(self.kinds),
            tuple(self.unreadable_by),
            tuple(self.cannot_read),
        )


def compare(
    new: VersionedSchema, older: Sequence[VersionedSchema], level: CompatibilityLevel
) -> list[Finding]:
    """What stops ``new`` from following ``older`` (oldest first) under ``level``.

    Empty means compatible. Non-transitive levels look at the last of ``older`` only, as a
    registry does. Raises ``SchemaError`` if a schema is not valid Avro.
    """
    existing = [(index, schema.parsed) for index, schema in enumerate(older, start=1)]
    problems = check_compatibility(new.parsed, existing, level)
    problems.sort(key=lambda p: p.version)  # the checker goes newest first; name oldest first
    findings = []
    for problem in problems:
        old = older[problem.version - 1]
        what, change, name = _what(problem, new, old)
        broken = (old.label,)
        if problem.new_is_reader:
            findings.append(Finding(what, change, name, (problem.kind,), cannot_read=broken))
        else:
            findings.append(Finding(what, change, name, (problem.kind,), unreadable_by=broken))
    return merge(findings)


def merge(*groups: Sequence[Finding]) -> list[Finding]:
    """Findings about one version from several comparisons, each ``what`` once."""
    merged: dict[str, _Merged] = {}
    for finding in (f for group in groups for f in group):
        entry = merged.setdefault(finding.what, _Merged(finding.change, finding.field_name))
        for items, new in (
            (entry.kinds, finding.kinds),
            (entry.unreadable_by, finding.unreadable_by),
            (entry.cannot_read, finding.cannot_read),
        ):
            items += [item for item in new if item not in items]
    return [entry.finding(what) for what, entry in merged.items()]


def rename_hints(
    findings: Sequence[Finding],
    new: VersionedSchema,
    older: Sequence[VersionedSchema],
    level: CompatibilityLevel,
) -> list[str]:
    """A hint for each field gone since the previous version that a new field of the same type
    may have replaced, when either of them is part of a finding.

    Avro matches fields by name, so a rename is a removal plus an addition. A reader-side alias
    fixes the backward direction only; under a FORWARD or FULL mode a field without a default
    can never leave, because consumers on the old versions still need it.
    """
    if not older:
        return []
    before, after = older[-1].field_types(), new.field_types()
    involved = {f.field_name for f in findings if f.change in ("added", "removed")}
    hints = []
    for old, old_type in before.items():
        if old in after:
            continue
        to = [a for a, t in after.items() if a not in before and t == old_type]
        if not to or not involved & {old, *to}:
            continue
        candidates = " or ".join(f"`{name}`" for name in to)
        removed = next((f for f in findings if f.change == "removed" and f.field_name == old), None)
        if level.old_reads_new and removed is not None:
            hints.append(
                f"if `{old}` was renamed to {candidates}: under {level.value} a field without "
                f"default can be neither removed nor renamed (consumers on "
                f"{', '.join(removed.unreadable_by)} need it); keep `{old}` and add the new "
                "name as an optional field"
            )
        else:
            hints.append(
                f'if `{old}` was renamed to {candidates}, declare it: "aliases": ["{old}"] '
                "on the new field"
            )
    return hints


def render_type(avro_type: Any) -> str:
    """A short human form: ``null | long``, ``map<string>``, ``long(timestamp-micros)``."""
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, list):
        return " | ".join(render_type(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if "logicalType" in avro_type:
            return f"{render_type(kind)}({avro_type['logicalType']})"
        if kind == "map":
            return f"map<{render_type(avro_type.get('values'))}>"
        if kind == "array":
            return f"array<{render_type(avro_type.get('items'))}>"
        if kind in ("record", "enum", "fixed"):
            return f"{kind} {avro_type.get('name')}"
        return render_type(kind)
    return json.dumps(avro_type)


def _what(
    problem: Incompatibility, new: VersionedSchema, old: VersionedSchema
) -> tuple[str, Change, str | None]:
    """The sentence naming what changed, the kind of change, and the top-level field."""
    reader = new if problem.new_is_reader else old
    root = str(getattr(reader.parsed.schema, "fullname", ""))
    rest = problem.path[len(root) :].lstrip(".") if problem.path.startswith(root) else ""
    match = _FIELD_NAME.match(rest)
    name = match.group(0) if match else None
    top_level = name if rest == name else None
    if problem.kind == "READER_FIELD_MISSING_DEFAULT_VALUE" and rest:
        if problem.new_is_reader:
            return f"field `{rest}` added without default", "added", top_level
        return f"field `{rest}` removed without default", "removed", top_level
    if problem.kind in ("TYPE_MISMATCH", "MISSING_UNION_BRANCH") and name:
        before, after = old.field_types().get(name), new.field_types().get(name)
        if before is not None and after is not None and before != after:
            return (
                f"field `{name}` changed type from `{render_type(before)}` to "
                f"`{render_type(after)}`",
                "type",
                name,
            )
    if problem.kind == "NAME_MISMATCH" and not rest:
        old_name = getattr(old.parsed.schema, "fullname", "?")
        new_name = getattr(new.parsed.schema, "fullname", "?")
        return f"record renamed from `{old_name}` to `{new_name}` without an alias", "other", None
    where = f"`{problem.path}`" if problem.path else "the schema"
    return f"{where}: {problem.detail}", "other", name
