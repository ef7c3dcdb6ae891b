"""The schema ids of the last good start, kept on disk so that a receiver started while the
registry is down can serve at once (``registry.id_cache_file``).

Written after every binding the registry confirmed: per event type, its subject, the SHA-256
of the newest local schema's text and the id the registry gave it, with the registry's URL.
Read only when the registry does not answer at start, and used only if it still describes this
start exactly: the same registry URL and, for every event type, the same subject and the same
newest local schema, byte for byte. Anything else (a schema edited, a type added, a topic
renamed, another registry, an unreadable file) and it is not used, saying why: the receiver
then waits for the registry as without a cache. An id is never guessed.

Once the registry answers, the binding is made again from it (``Pipeline``); an id that
differs from the cached one replaces it and is logged (a registry wiped and refilled since the
cache was written: the records encoded meanwhile name the old id, as they would have had the
receiver been running all along).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EventType

log = logging.getLogger(__name__)

FORMAT = 1


def fingerprint(schema: LocalSchema) -> str:
    return hashlib.sha256(schema.text.encode()).hexdigest()


def write(
    path: Path,
    registry_url: str,
    subjects: dict[EventType, str],
    schemas: dict[EventType, LocalSchema],
    ids: dict[EventType, int],
) -> None:
    """Replace the cache with this binding (atomically: a crash leaves the old one or this).
    A cache that cannot be written is logged, never raised: it is a convenience."""
    entries = {
        t: {"subject": subjects[t], "schema_sha256": fingerprint(schemas[t]), "id": ids[t]}
        for t in ids
    }
    body = json.dumps({"format": FORMAT, "registry_url": registry_url, "types": entries})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(body)
        os.replace(scratch, path)
    except OSError as exc:
        log.warning("could not write the schema id cache %s: %s", path, exc)


def read(
    path: Path,
    registry_url: str,
    subjects: dict[EventType, str],
    schemas: dict[EventType, LocalSchema],
) -> tuple[dict[EventType, int] | None, str]:
    """The cached id of every type if the cache matches this start exactly; else None and why."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no schema id cache at {path}"
    except (OSError, ValueError) as exc:
        return None, f"schema id cache {path} unreadable: {exc}"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None, f"schema id cache {path} is not in format {FORMAT}"
    if data.get("registry_url") != registry_url:
        return None, f"schema id cache {path} is for another registry"
    entries = data.get("types")
    if not isinstance(entries, dict):
        return None, f"schema id cache {path} has no types"
    ids: dict[EventType, int] = {}
    for event_type, subject in subjects.items():
        entry = entries.get(event_type)
        if not isinstance(entry, dict) or entry.get("subject") != subject:
            return None, f"schema id cache {path} has no id for {subject}"
        if entry.get("schema_sha256") != fingerprint(schemas[event_type]):
            return None, f"{event_type}'s newest local schema changed since the cache was written"
        schema_id = entry.get("id")
        if not isinstance(schema_id, int) or isinstance(schema_id, bool) or schema_id < 0:
            return None, f"schema id cache {path} has a bad id for {subject}"
        ids[event_type] = schema_id
    return ids, "matches"
