"""The schema registry as the pipeline sees it: a small protocol and two implementations.

``ConfluentRegistry`` talks the Confluent Schema Registry REST API through
``confluent_kafka.schema_registry`` (so Confluent SR, Karapace, Apicurio ccompat, Redpanda and
the bundled ``otlp-feedback registry`` all work). ``InMemoryRegistry`` is the test double for
unit tests that need no network. Both also implement ``SchemaRegistryAdmin``, the read side the
``otlp-feedback schemas`` tools need (a subject's history and compatibility mode).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from confluent_kafka.schema_registry import (
    RegisteredSchema,
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
)

from otlp_feedback.errors import RegistryUnavailable, SchemaError

T = TypeVar("T")


class SchemaRegistry(Protocol):
    """What the pipeline needs from a registry. Implementations are thread-safe."""

    def register(self, subject: str, schema_text: str) -> int:
        """Register (idempotently) and return the schema id. Raises SchemaError if refused."""
        ...

    def lookup(self, subject: str, schema_text: str) -> int:
        """The id of an already-registered schema. Raises SchemaError if it is not there."""
        ...

    def set_compatibility(self, subject: str, level: str) -> None: ...

    def schema_text(self, schema_id: int) -> str: ...


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """One live version of a subject, as the registry holds it."""

    version: int
    schema_id: int
    schema_text: str


class SchemaRegistryAdmin(SchemaRegistry, Protocol):
    """What ``otlp-feedback schemas`` needs on top: a subject's history and its mode."""

    def subject_versions(self, subject: str) -> list[RegisteredVersion]:
        """Every live version of ``subject``, oldest first; empty if the subject is unknown."""
        ...

    def subject_compatibility(self, subject: str) -> str | None:
        """The mode set on ``subject`` itself; None if it has none (the global mode applies)."""
        ...

    def global_compatibility(self) -> str: ...


# Confluent error codes for "no such subject" and "no subject-level compatibility".
_SUBJECT_NOT_FOUND = 40401
_SUBJECT_CONFIG_NOT_FOUND = 40408


class ConfluentRegistry:
    """A registry reached over HTTP with confluent-kafka's client."""

    def __init__(self, conf: dict[str, object]) -> None:
        self._client = SchemaRegistryClient(conf)

    @property
    def client(self) -> SchemaRegistryClient:
        """The underlying client, for AvroSerializer/AvroDeserializer users."""
        return self._client

    def register(self, subject: str, schema_text: str) -> int:
        return _call(
            f"registering {subject}",
            lambda: int(self._client.register_schema(subject, Schema(schema_text, "AVRO"))),
        )

    def lookup(self, subject: str, schema_text: str) -> int:
        return _call(
            f"looking up {subject}",
            lambda: _schema_id(self._client.lookup_schema(subject, Schema(schema_text, "AVRO"))),
        )

    def set_compatibility(self, subject: str, level: str) -> None:
        _call(
            f"setting compatibility of {subject}",
            lambda: self._client.set_compatibility(subject, level),
        )

    def schema_text(self, schema_id: int) -> str:
        return _call(
            f"fetching schema id {schema_id}",
            lambda: str(self._client.get_schema(schema_id).schema_str),
        )

    def subject_versions(self, subject: str) -> list[RegisteredVersion]:
        numbers = _call_unless(
            _SUBJECT_NOT_FOUND,
            f"listing versions of {subject}",
            lambda: self._client.get_versions(subject),
        )
        return [self._version(subject, int(number)) for number in sorted(numbers or [])]

    def _version(self, subject: str, number: int) -> RegisteredVersion:
        found = _call(
            f"fetching {subject} version {number}",
            lambda: self._client.get_version(subject, number),
        )
        return RegisteredVersion(number, _schema_id(found), str(found.schema.schema_str))

    def subject_compatibility(self, subject: str) -> str | None:
        return _call_unless(
            _SUBJECT_CONFIG_NOT_FOUND,
            f"reading the compatibility of {subject}",
            lambda: str(self._client.get_compatibility(subject)),
        )

    def global_compatibility(self) -> str:
        return _call(
            "reading the global compatibility", lambda: str(self._client.get_compatibility())
        )


class InMemoryRegistry:
    """A registry in a dict: ids are global, registration is idempotent per subject."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}  # canonical schema text -> id
        self._subjects: dict[str, list[int]] = {}
        self.compatibility: dict[str, str] = {}

    def register(self, subject: str, schema_text: str) -> int:
        key = _canonical(schema_text)
        with self._lock:
            schema_id = self._ids.setdefault(key, len(self._ids) + 1)
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def lookup(self, subject: str, schema_text: str) -> int:
        key = _canonical(schema_text)
        with self._lock:
            schema_id = self._ids.get(key)
            if schema_id is None or schema_id not in self._subjects.get(subject, []):
                raise SchemaError(f"schema not registered under {subject}")
            return schema_id

    def set_compatibility(self, subject: str, level: str) -> None:
        with self._lock:
            self.compatibility[subject] = level

    def schema_text(self, schema_id: int) -> str:
        with self._lock:
            for text, known in self._ids.items():
                if known == schema_id:
                    return text
        raise SchemaError(f"schema id {schema_id} not found")

    def subject_versions(self, subject: str) -> list[RegisteredVersion]:
        with self._lock:
            texts = {known: text for text, known in self._ids.items()}
            return [
                RegisteredVersion(number, schema_id, texts[schema_id])
                for number, schema_id in enumerate(self._subjects.get(subject, []), start=1)
            ]

    def subject_compatibility(self, subject: str) -> str | None:
        with self._lock:
            return self.compatibility.get(subject)

    def global_compatibility(self) -> str:
        return "BACKWARD"  # Confluent's default


def _schema_id(found: RegisteredSchema) -> int:
    if found.schema_id is None:
        raise SchemaError(f"registry answered a lookup of {found.subject} without an id")
    return int(found.schema_id)


def _canonical(schema_text: str) -> str:
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))


def _call_unless(not_found_code: int, doing: str, fn: Callable[[], T]) -> T | None:
    """``_call``, but None when the registry answers 404 with ``not_found_code``."""
    try:
        return _call(doing, fn)
    except SchemaError as exc:
        cause = exc.__cause__
        if isinstance(cause, SchemaRegistryError) and cause.error_code == not_found_code:
            return None
        raise


def _call(doing: str, fn: Callable[[], T]) -> T:
    """Run a client call, mapping its failures to ours (retryable when the server is at fault)."""
    try:
        return fn()
    except SchemaRegistryError as exc:
        status = exc.http_status_code
        if status is None or status < 0 or status >= 500:
            raise RegistryUnavailable(
                f"schema registry failed {doing}: {exc.error_message}"
            ) from exc
        raise SchemaError(
            f"schema registry refused {doing}: {exc.error_message} (error {exc.error_code})"
        ) from exc
    except Exception as exc:
        # Transport errors come from httpx or httpx2 depending on the installed authlib, and
        # neither derives from OSError; anything that is not a registry answer is "unreachable".
        raise RegistryUnavailable(f"schema registry unreachable {doing}: {exc}") from exc
