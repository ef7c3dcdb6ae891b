"""Durable registry state in SQLite: schemas and their global ids, subject versions, config.

The HTTP layer (``server``) is the only caller. The store knows nothing about Avro or HTTP: it
keeps schema text exactly as given (the server passes canonical text, so equal text means the
same schema) and enforces the Confluent rules about ids, versions and deletion:

- one global id per distinct ``(schema_type, schema)``; registering the same text under a second
  subject reuses the id, and ids are never reused for different text, even after a hard delete;
- versions are numbered per subject from 1; a soft delete hides a version but keeps it readable
  by id and with ``include_deleted``; a hard delete is only allowed after a soft delete;
- compatibility config is global (default ``BACKWARD``) with optional per-subject overrides.

Errors, all raised as subclasses of ``RegistryStoreError``::

    RegistryStoreError
    +-- SubjectNotFoundError          no such subject, or only soft-deleted versions left
    +-- VersionNotFoundError          no such version in the subject
    +-- SchemaNotFoundError           no such id, or schema not registered under the subject
    +-- SubjectSoftDeletedError       soft delete of a subject that is already soft-deleted
    +-- SubjectNotSoftDeletedError    hard delete of a subject that still has live versions
    +-- VersionSoftDeletedError       soft delete of a version that is already soft-deleted
    +-- VersionNotSoftDeletedError    hard delete of a live version
    +-- SubjectConfigNotFoundError    subject has no subject-level compatibility
    +-- StoreError                    SQLite failed (wraps ``sqlite3.Error``)

Thread-safety: one connection guarded by a re-entrant lock; every public method is atomic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_COMPATIBILITY = "BACKWARD"

_SCHEMA_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_type TEXT NOT NULL,
    schema      TEXT NOT NULL,
    UNIQUE (schema_type, schema)
);
CREATE TABLE IF NOT EXISTS versions (
    subject   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas (id),
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS versions_by_schema ON versions (schema_id);
CREATE TABLE IF NOT EXISTS subject_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS global_config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_VERSION_COLUMNS = "v.subject, v.version, v.schema_id, s.schema, s.schema_type, v.deleted"
_VERSION_JOIN = "versions v JOIN schemas s ON s.id = v.schema_id"


class RegistryStoreError(Exception):
    """Base of everything the store raises."""


class SubjectNotFoundError(RegistryStoreError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFoundError(RegistryStoreError):
    def __init__(self, subject: str, version: int | None) -> None:
        which = "latest" if version is None else str(version)
        super().__init__(f"Version {which} not found for subject '{subject}'.")


class SchemaNotFoundError(RegistryStoreError):
    def __init__(self, detail: str = "Schema not found") -> None:
        super().__init__(detail)


class SubjectSoftDeletedError(RegistryStoreError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeletedError(RegistryStoreError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeletedError(RegistryStoreError):
    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeletedError(RegistryStoreError):
    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first "
            "before being permanently deleted"
        )


class SubjectConfigNotFoundError(RegistryStoreError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class StoreError(RegistryStoreError):
    """SQLite failed; the request may be retried."""


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One version of one subject, with the schema it points at."""

    subject: str
    version: int
    schema_id: int
    schema: str
    schema_type: str
    deleted: bool


Guard = Callable[[Sequence[VersionRecord]], None]


class Store:
    """SQLite-backed registry state; see the module docstring for the rules it enforces."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the database at ``path``; ``":memory:"`` is allowed.

        Raises ``StoreError`` if the file cannot be opened or initialised.
        """
        self._lock = threading.RLock()
        try:
            # One connection shared by the server's threads; the lock serialises its use.
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.executescript(_SCHEMA_DDL)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open registry database {path}: {exc}") from exc
        self._closed = False
        self._depth = 0

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for one transaction; commit on success, roll back on any error.

        Re-entrant: a method that calls another public method (for instance a register guard
        reading the subject's config) joins the transaction already open.
        """
        with self._lock:
            if self._closed:
                raise StoreError("registry database is closed")
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"registry database error: {exc}") from exc
            self._depth = 1
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"registry database error: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"registry database error: {exc}") from exc
            finally:
                self._depth = 0

    # -- reads -------------------------------------------------------------------------------

    def subjects(
        self, *, include_deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        """Subject names, sorted. By default only subjects with at least one live version."""
        if deleted_only:
            having = "HAVING SUM(deleted = 0) = 0"
        elif include_deleted:
            having = ""
        else:
            having = "HAVING SUM(deleted = 0) > 0"
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT subject FROM versions GROUP BY subject {having} ORDER BY subject"
            ).fetchall()
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def versions(
        self, subject: str, *, include_deleted: bool = False, deleted_only: bool = False
    ) -> list[VersionRecord]:
        """The subject's versions, oldest first. Raises ``SubjectNotFoundError``."""
        with self._tx() as conn:
            records = self._subject_rows(
                conn, subject, include_deleted=include_deleted or deleted_only
            )
        if deleted_only:
            return [r for r in records if r.deleted]
        return records

    def get_version(
        self, subject: str, version: int | None, *, include_deleted: bool = False
    ) -> VersionRecord:
        """One version; ``None`` means the latest. Raises Subject/VersionNotFoundError."""
        with self._tx() as conn:
            records = self._subject_rows(conn, subject, include_deleted=include_deleted)
        return _pick(subject, records, version)

    def lookup(
        self, subject: str, schema: str, schema_type: str, *, include_deleted: bool = False
    ) -> VersionRecord:
        """The latest version of ``subject`` holding exactly ``schema``.

        Raises ``SubjectNotFoundError`` or ``SchemaNotFoundError``.
        """
        with self._tx() as conn:
            records = self._subject_rows(conn, subject, include_deleted=include_deleted)
        for record in reversed(records):
            if record.schema == schema and record.schema_type == schema_type:
                return record
        raise SchemaNotFoundError("Schema not found")

    def schema_by_id(self, schema_id: int) -> tuple[str, str]:
        """``(schema, schema_type)`` for an id still used by some (possibly soft-deleted) version.

        Raises ``SchemaNotFoundError`` when the id is unknown or all its versions were hard-deleted.
        """
        with self._tx() as conn:
            row = conn.execute(
                "SELECT s.schema, s.schema_type FROM schemas s WHERE s.id = ? AND EXISTS "
                "(SELECT 1 FROM versions v WHERE v.schema_id = s.id)",
                (schema_id,),
            ).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return row[0], row[1]

    def versions_by_id(
        self, schema_id: int, *, include_deleted: bool = False
    ) -> list[VersionRecord]:
        """Every subject version that uses ``schema_id``, by subject then version."""
        deleted_filter = "" if include_deleted else "AND v.deleted = 0"
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_JOIN} WHERE v.schema_id = ? "
                f"{deleted_filter} ORDER BY v.subject, v.version",
                (schema_id,),
            ).fetchall()
        return [_record(r) for r in rows]

    # -- writes ------------------------------------------------------------------------------

    def register(
        self, subject: str, schema: str, schema_type: str, *, guard: Guard | None = None
    ) -> tuple[VersionRecord, bool]:
        """Add ``schema`` as the subject's next version; ``(record, created)``.

        Idempotent: if a live version already holds the schema it is returned with
        ``created=False`` and ``guard`` is not called. Otherwise ``guard`` is called with the
        subject's live versions (oldest first) while the lock is held, so a compatibility check
        done there cannot race another registration; whatever it raises aborts the registration.
        """
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_JOIN} WHERE v.subject = ? "
                "ORDER BY v.version",
                (subject,),
            ).fetchall()
            records = [_record(r) for r in rows]
            live = [r for r in records if not r.deleted]
            for record in live:
                if record.schema == schema and record.schema_type == schema_type:
                    return record, False
            if guard is not None:
                guard(live)
            schema_id = self._schema_id(conn, schema, schema_type)
            # Soft-deleted versions keep their numbers, so a re-registration never reuses one.
            version = (records[-1].version if records else 0) + 1
            conn.execute(
                "INSERT INTO versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, version, schema_id),
            )
        return VersionRecord(subject, version, schema_id, schema, schema_type, False), True

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft- or hard-delete every version; returns the version numbers affected.

        A hard delete also drops the subject's compatibility config. Raises
        ``SubjectNotFoundError``, ``SubjectSoftDeletedError`` (soft delete twice) or
        ``SubjectNotSoftDeletedError`` (hard delete while versions are live).
        """
        with self._tx() as conn:
            records = self._subject_rows(conn, subject, include_deleted=True)
            live = [r.version for r in records if not r.deleted]
            if not permanent:
                if not live:
                    raise SubjectSoftDeletedError(subject)
                conn.execute(
                    "UPDATE versions SET deleted = 1 WHERE subject = ? AND deleted = 0", (subject,)
                )
                return live
            if live:
                raise SubjectNotSoftDeletedError(subject)
            conn.execute("DELETE FROM versions WHERE subject = ?", (subject,))
            conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
            return [r.version for r in records]

    def delete_version(self, subject: str, version: int | None, *, permanent: bool = False) -> int:
        """Soft- or hard-delete one version (``None`` = latest); returns its number.

        Raises ``SubjectNotFoundError``, ``VersionNotFoundError``, ``VersionSoftDeletedError``
        (soft delete twice) or ``VersionNotSoftDeletedError`` (hard delete of a live version).
        """
        with self._tx() as conn:
            records = self._subject_rows(conn, subject, include_deleted=True)
            if version is None and not permanent:
                record = _pick(subject, [r for r in records if not r.deleted], None)
            else:
                # A hard delete targets soft-deleted versions, so "latest" there means the
                # latest of all versions, as in Confluent.
                record = _pick(subject, records, version)
            if not permanent:
                if record.deleted:
                    raise VersionSoftDeletedError(subject, record.version)
                conn.execute(
                    "UPDATE versions SET deleted = 1 WHERE subject = ? AND version = ?",
                    (subject, record.version),
                )
            else:
                if not record.deleted:
                    raise VersionNotSoftDeletedError(subject, record.version)
                conn.execute(
                    "DELETE FROM versions WHERE subject = ? AND version = ?",
                    (subject, record.version),
                )
        return record.version

    # -- compatibility config ----------------------------------------------------------------

    def global_compatibility(self) -> str:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT value FROM global_config WHERE key = 'compatibility'"
            ).fetchone()
        return row[0] if row else DEFAULT_COMPATIBILITY

    def set_global_compatibility(self, level: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO global_config (key, value) VALUES ('compatibility', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (level,),
            )

    def reset_global_compatibility(self) -> str:
        """Back to the default; returns the level that was in force."""
        with self._tx() as conn:
            previous = self.global_compatibility()
            conn.execute("DELETE FROM global_config WHERE key = 'compatibility'")
        return previous

    def subject_compatibility(self, subject: str) -> str | None:
        """The subject-level override, or ``None``."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT compatibility FROM subject_config WHERE subject = ?", (subject,)
            ).fetchone()
        return row[0] if row else None

    def effective_compatibility(self, subject: str) -> str:
        """The subject's override, else the global level."""
        with self._tx():
            return self.subject_compatibility(subject) or self.global_compatibility()

    def set_subject_compatibility(self, subject: str, level: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO subject_config (subject, compatibility) VALUES (?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                (subject, level),
            )

    def delete_subject_compatibility(self, subject: str) -> str:
        """Drop the override; returns it. Raises ``SubjectConfigNotFoundError`` if none."""
        with self._tx() as conn:
            previous = self.subject_compatibility(subject)
            if previous is None:
                raise SubjectConfigNotFoundError(subject)
            conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
        return previous

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _subject_rows(
        conn: sqlite3.Connection, subject: str, *, include_deleted: bool
    ) -> list[VersionRecord]:
        rows = conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM {_VERSION_JOIN} WHERE v.subject = ? "
            "ORDER BY v.version",
            (subject,),
        ).fetchall()
        records = [_record(r) for r in rows]
        visible = records if include_deleted else [r for r in records if not r.deleted]
        if not visible:
            # A subject whose versions are all soft-deleted does not exist unless asked for.
            raise SubjectNotFoundError(subject)
        return visible

    @staticmethod
    def _schema_id(conn: sqlite3.Connection, schema: str, schema_type: str) -> int:
        row = conn.execute(
            "SELECT id FROM schemas WHERE schema_type = ? AND schema = ?", (schema_type, schema)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute(
            "INSERT INTO schemas (schema_type, schema) VALUES (?, ?)", (schema_type, schema)
        )
        assert cursor.lastrowid is not None  # always set after an INSERT into a rowid table
        return cursor.lastrowid


def _record(row: tuple[str, int, int, str, str, int]) -> VersionRecord:
    subject, version, schema_id, schema, schema_type, deleted = row
    return VersionRecord(subject, version, schema_id, schema, schema_type, bool(deleted))


def _pick(subject: str, records: Sequence[VersionRecord], version: int | None) -> VersionRecord:
    """The requested version among ``records`` (already filtered by the caller)."""
    if version is None:
        if records:
            return records[-1]
    else:
        for record in records:
            if record.version == version:
                return record
    raise VersionNotFoundError(subject, version)
