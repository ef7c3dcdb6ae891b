"""Parse Avro schemas and decide whether a new schema is compatible with a subject's history.

Called by ``server`` when a schema is registered and by the compatibility test endpoints. The
reader/writer rules are the ``avro`` package's (``ReaderWriterCompatibilityChecker``); this
module only picks which (reader, writer) pairs each Confluent level checks, and turns the
checker's result into explanations a person can act on (``Incompatibility.describe``).

Two rough edges of the avro checker are smoothed without changing its verdicts:

- when it descends into the branches of a writer union it restarts the location at "/", so a
  field whose type narrowed from ``["null", "string"]`` to ``"string"`` would be reported at the
  root; ``_LocatingChecker`` keeps the union's location instead;
- its result holds messages and locations as two unrelated sets; every location is resolved
  against the schemas it came from (field names, types, symbols) and avro's message is attached
  where it can be matched, so each explanation names a field and a reason.

Thread-safe: pure functions; every check uses a fresh checker. Parsed schemas are cached by
canonical text and treated as read-only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)
from avro.errors import AvroException
from avro.schema import (
    ArraySchema,
    EnumSchema,
    FixedSchema,
    MapSchema,
    NamedSchema,
    RecordSchema,
    Schema,
    UnionSchema,
)

SUPPORTED_SCHEMA_TYPES = ("AVRO",)


class InvalidSchemaError(ValueError):
    """The request does not carry a schema this registry accepts (Confluent error 42201)."""


class InvalidCompatibilityLevelError(ValueError):
    """Not one of the seven Confluent compatibility levels (Confluent error 42203)."""


class CompatibilityLevel(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def new_reads_old(self) -> bool:
        """BACKWARD: consumers on the new schema must read data written with the old ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def old_reads_new(self) -> bool:
        """FORWARD: consumers still on old schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))

    @property
    def transitive(self) -> bool:
        """Check every live version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")


def parse_level(value: object) -> CompatibilityLevel:
    """The level named by ``value`` (any case). Raises ``InvalidCompatibilityLevelError``."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.strip().upper())
        except ValueError:
            pass
    valid = ", ".join(level.value for level in CompatibilityLevel)
    raise InvalidCompatibilityLevelError(
        f"Invalid compatibility level {value!r}. Valid values are: {valid}"
    )


@dataclass(frozen=True, slots=True)
class ParsedSchema:
    """An Avro schema and its canonical text, the registry's notion of schema identity."""

    schema: Schema
    canonical: str


def parse_schema(
    text: object, schema_type: object = None, references: object = None
) -> ParsedSchema:
    """Parse the ``schema``/``schemaType``/``references`` of a request body.

    ``schema_type`` ``None`` means AVRO, as in Confluent. The canonical text is the schema's
    full JSON form (docs, defaults and custom properties kept, unlike Avro's Parsing Canonical
    Form, because they matter to readers) with whitespace removed and keys sorted, so two
    requests that differ only in formatting get the same id.

    Raises ``InvalidSchemaError`` for other schema types, references, or invalid Avro.
    """
    kind = "AVRO" if schema_type is None else schema_type
    if not isinstance(kind, str) or kind.upper() not in SUPPORTED_SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"Schema type {kind!r} is not supported: this registry only stores AVRO schemas"
        )
    if references:
        raise InvalidSchemaError("Schema references are not supported by this registry")
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError("Empty schema")
    schema = _parse_avro(text)
    return ParsedSchema(schema, _canonical(schema))


@lru_cache(maxsize=1024)
def parse_stored(canonical: str) -> ParsedSchema:
    """A schema as the store returns it (already canonical, already valid).

    Cached because every registration re-checks the subject's stored versions.
    """
    return ParsedSchema(_parse_avro(canonical), canonical)


def _parse_avro(text: str) -> Schema:
    try:
        return avro.schema.parse(text)
    except (AvroException, ValueError, TypeError, KeyError, AttributeError) as exc:
        # The avro parser lets some malformed shapes surface as built-in errors.
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc


def _canonical(schema: Schema) -> str:
    return json.dumps(schema.to_json(), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason the new schema cannot coexist with one registered version."""

    version: int  # the registered version the new schema was checked against
    new_is_reader: bool  # True for the BACKWARD direction, False for FORWARD
    kind: str  # avro's SchemaIncompatibilityType, upper-cased, e.g. TYPE_MISMATCH
    location: str  # avro's location in the reader schema, e.g. "/fields/2/type"; "" if unknown
    path: str  # the same place named by record and field names, e.g. "Feedback.score"
    detail: str

    def describe(self) -> str:
        if self.new_is_reader:
            who = f"the new schema cannot read data written with version {self.version}"
        else:
            who = f"version {self.version} cannot read data written with the new schema"
        where = f" at '{self.path}' ({self.location})" if self.location else ""
        return f"{self.kind}{where}: {self.detail} ({who})"


def check_compatibility(
    candidate: ParsedSchema,
    existing: Sequence[tuple[int, ParsedSchema]],
    level: CompatibilityLevel,
) -> list[Incompatibility]:
    """Why ``candidate`` violates ``level`` against ``existing``; empty means compatible.

    ``existing`` is the subject's live versions as ``(version, schema)``, oldest first.
    Non-transitive levels look at the last one only; transitive ones at all, newest first.
    """
    if level is CompatibilityLevel.NONE or not existing:
        return []
    targets = list(reversed(existing)) if level.transitive else [existing[-1]]
    problems: list[Incompatibility] = []
    for version, old in targets:
        if level.new_reads_old:
            problems += _check_pair(candidate.schema, old.schema, version, new_is_reader=True)
        if level.old_reads_new:
            problems += _check_pair(old.schema, candidate.schema, version, new_is_reader=False)
    return problems


def _check_pair(
    reader: Schema, writer: Schema, version: int, *, new_is_reader: bool
) -> list[Incompatibility]:
    checker = _LocatingChecker()
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    return [
        Incompatibility(version, new_is_reader, kind, location, path, detail)
        for kind, location, path, detail in _explain(reader, checker.nodes, result)
    ]


class _LocatingChecker(ReaderWriterCompatibilityChecker):
    """avro's checker, recording the (reader, writer) pair seen at every location."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, tuple[Schema, Schema]] = {}
        self._stack: list[list[str]] = []

    def get_compatibility(
        self,
        reader: Schema,
        writer: Schema,
        reference_token: str = ReaderWriterCompatibilityChecker.ROOT_REFERENCE_TOKEN,
        location: list[str] | None = None,
    ) -> SchemaCompatibilityResult:
        if location is None and self._stack:
            # avro calls us without a location for union branches, which would restart the
            # path at "/"; report them at the location of the union being compared instead.
            parent = self._stack[-1]
            reference_token, location = parent[-1], parent[:-1]
        return super().get_compatibility(reader, writer, reference_token, location)

    def calculate_compatibility(
        self, reader: Schema, writer: Schema, location: list[str]
    ) -> SchemaCompatibilityResult:
        self.nodes.setdefault(_location_key(location), (reader, writer))
        self._stack.append(location)
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._stack.pop()


def _location_key(tokens: Sequence[str]) -> str:
    """The string avro's ``incompatible()`` makes of a location list."""
    joined = "/".join(tokens)
    return joined[1:] if len(tokens) > 1 else joined


def _explain(
    reader_root: Schema, nodes: dict[str, tuple[Schema, Schema]], result: SchemaCompatibilityResult
) -> list[tuple[str, str, str, str]]:
    """``(kind, location, path, detail)`` for every location in an incompatible result."""
    messages = set(result.messages)
    explained: list[tuple[str, str, str, str]] = []
    node_locations: list[str] = []
    for location in sorted(result.locations):
        tokens = [t for t in location.split("/") if t]
        path = _readable_path(reader_root, tokens)
        parent = nodes.get("/" + "/".join(tokens[:-1]))
        last = tokens[-1] if tokens else ""
        if len(tokens) >= 2 and tokens[-2] == "fields" and last.isdigit():
            record = nodes.get("/" + "/".join(tokens[:-2]))
            if record is not None and isinstance(record[0], RecordSchema):
                name = record[0].fields[int(last)].name
                messages.discard(name)
                explained.append(
                    (
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        location,
                        path,
                        f"field '{name}' has no default value and the writer's schema lacks it",
                    )
                )
                continue
        if parent is not None:
            reason = _explain_child(last, parent[0], parent[1], messages)
            if reason is not None:
                explained.append((reason[0], location, path, reason[1]))
                continue
        node_locations.append(location)
    for location in node_locations:
        tokens = [t for t in location.split("/") if t]
        path = _readable_path(reader_root, tokens)
        node = nodes.get(location)
        matched = sorted(messages & _node_messages(*node)) if node else []
        for message in matched:
            kind = "MISSING_UNION_BRANCH" if message.startswith("reader union") else "TYPE_MISMATCH"
            explained.append((kind, location, path, message))
        messages.difference_update(matched)
        if not matched and location != "/":
            # "/" also appears as a by-product of avro merging a compatible result; skip it.
            explained.append(("INCOMPATIBLE", location, path, "the reader cannot read this"))
    explained.sort(key=lambda item: _location_order(item[1]))
    # Anything avro said that we could not place is still reported, just without a location.
    explained += [("INCOMPATIBLE", "", "", message) for message in sorted(messages)]
    return explained


def _location_order(location: str) -> list[tuple[int, str]]:
    """Sort key putting ``/fields/2`` before ``/fields/10``."""
    return [(int(t), "") if t.isdigit() else (-1, t) for t in location.split("/")]


def _explain_child(
    token: str, reader: Schema, writer: Schema, messages: set[str]
) -> tuple[str, str] | None:
    """Name and reason for a location one token below the node ``(reader, writer)``."""
    if token == "name" and isinstance(reader, NamedSchema) and isinstance(writer, NamedSchema):
        messages.discard(f"expected: {writer.fullname}")
        return "NAME_MISMATCH", (
            f"reader name '{reader.fullname}' is not the writer's '{writer.fullname}' "
            "nor one of its aliases"
        )
    if token == "size" and isinstance(reader, FixedSchema) and isinstance(writer, FixedSchema):
        messages.discard(f"expected: {writer.size}, found: {reader.size}")
        return "FIXED_SIZE_MISMATCH", (
            f"reader fixed size {reader.size} differs from writer size {writer.size}"
        )
    if token == "symbols" and isinstance(reader, EnumSchema) and isinstance(writer, EnumSchema):
        # Built exactly as avro builds its message so the two can be matched.
        missing = set(writer.symbols).difference(set(reader.symbols))
        messages.discard(str(missing))
        return "MISSING_ENUM_SYMBOLS", (
            f"writer symbols {sorted(missing)} are missing from reader enum "
            f"'{reader.fullname}', which has no default symbol"
        )
    if token.isdigit() and isinstance(reader, UnionSchema) and isinstance(writer, UnionSchema):
        branch = writer.schemas[int(token)]
        messages.discard(f"reader union lacking writer type: {branch.type.upper()}")
        return "MISSING_UNION_BRANCH", (
            f"no branch of the reader union can read writer union branch {token} ({branch.type})"
        )
    return None


def _node_messages(reader: Schema, writer: Schema) -> set[str]:
    """The messages avro can produce for a mismatch at the node ``(reader, writer)`` itself."""
    branches = writer.schemas if isinstance(writer, UnionSchema) else [writer]
    expected = {
        f"reader type: {reader.type} not compatible with writer type: {branch.type}"
        for branch in branches
    }
    expected.add(f"reader union lacking writer type {writer.type}")
    return expected


def _readable_path(root: Schema, tokens: Sequence[str]) -> str:
    """``Feedback.items[].score`` for ``/fields/3/type/items/fields/0``."""
    parts = [root.fullname if isinstance(root, NamedSchema) else str(root.type)]
    node: Schema = root
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "fields" and i + 1 < len(tokens) and isinstance(node, RecordSchema):
            field = node.fields[int(tokens[i + 1])]
            parts.append(f".{field.name}")
            node = field.type
            i += 3 if i + 2 < len(tokens) and tokens[i + 2] == "type" else 2
            continue
        if token == "items" and isinstance(node, ArraySchema):
            parts.append("[]")
            node = node.items
        elif token == "values" and isinstance(node, MapSchema):
            parts.append("{}")
            node = node.values
        elif token.isdigit() and isinstance(node, UnionSchema):
            parts.append(f"<writer branch {token}>")
            break
        else:
            break  # name / size / symbols: the path already names the type
        i += 1
    return "".join(parts)
