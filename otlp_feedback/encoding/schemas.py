"""The versioned Avro schemas in ``schemas/avro/<event_type>/vN.avsc``, loaded once.

The repository's ``schemas/avro`` folder is the source of truth; the wheel carries a copy under
``otlp_feedback/_schemas`` (see ``_bundled_dir``). Every version is kept forever; producers write
the newest one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro

from otlp_feedback.errors import SchemaError
from otlp_feedback.events import EVENT_TYPES, EventType

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class LocalSchema:
    """One version of one event type's schema as it is on disk."""

    event_type: EventType
    version: int
    path: Path
    text: str

    @cached_property
    def definition(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.text)
        return parsed

    @cached_property
    def parsed(self) -> Any:
        """fastavro's parsed form, for the hot path."""
        return fastavro.parse_schema(self.definition)


@dataclass(frozen=True)
class SchemaSet:
    """All local versions, by event type, oldest first."""

    versions: dict[EventType, tuple[LocalSchema, ...]]

    def latest(self, event_type: EventType) -> LocalSchema:
        return self.versions[event_type][-1]

    def version(self, event_type: EventType, version: int) -> LocalSchema:
        for schema in self.versions[event_type]:
            if schema.version == version:
                return schema
        raise SchemaError(f"no local schema {event_type} v{version}")


def default_schemas_dir() -> Path:
    """``schemas/avro`` of a source checkout, else the copy bundled in the package."""
    repo = Path(__file__).resolve().parents[2] / "schemas" / "avro"
    return repo if repo.is_dir() else Path(__file__).resolve().parents[1] / "_schemas" / "avro"


def load_schemas(directory: Path | None = None) -> SchemaSet:
    """Load and parse every version. Raises ``SchemaError`` naming the bad file."""
    root = directory or default_schemas_dir()
    versions: dict[EventType, tuple[LocalSchema, ...]] = {}
    for event_type in EVENT_TYPES:
        folder = root / event_type
        found: list[LocalSchema] = []
        for path in sorted(folder.glob("v*.avsc")) if folder.is_dir() else []:
            match = _VERSION_FILE.match(path.name)
            if not match:
                continue
            schema = LocalSchema(event_type, int(match.group(1)), path, path.read_text())
            try:
                _ = schema.parsed
            except (ValueError, fastavro.schema.SchemaParseException) as exc:
                raise SchemaError(f"{path}: invalid Avro schema: {exc}") from exc
            found.append(schema)
        if not found:
            raise SchemaError(f"no schema for {event_type} under {folder}")
        versions[event_type] = tuple(sorted(found, key=lambda s: s.version))
    return SchemaSet(versions)
