"""The Confluent Schema Registry REST API over ``store`` and ``compat``, as a Starlette app.

``runner`` serves ``create_app(db_path)`` with uvicorn; tests may drive it in-process. The
subset implemented is what ``confluent_kafka.schema_registry.SchemaRegistryClient`` and the
Avro serializers use: subjects and versions, lookup, schemas by id, soft and hard deletes,
compatibility tests, compatibility config, and a fixed READWRITE mode. Only AVRO schemas.

Errors are Confluent's JSON body ``{"error_code": N, "message": "..."}``; ``ERROR_STATUS`` is
the one place that turns our exceptions into an HTTP status and Confluent error code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otlp_feedback.registry import store as st
from otlp_feedback.registry.compat import (
    SUPPORTED_SCHEMA_TYPES,
    CompatibilityLevel,
    Incompatibility,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_level,
    parse_schema,
    parse_stored,
)
from otlp_feedback.registry.store import Store, VersionRecord

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPTED_BODY_TYPES = frozenset(
    {
        MEDIA_TYPE,
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)
_MAX_VERSION = 2**31 - 1
_MODE = "READWRITE"


class RegistryJSONResponse(JSONResponse):
    media_type = MEDIA_TYPE


class InvalidVersionError(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"The specified version '{text}' is not a valid version id. Allowed values are "
            f'between [1, {_MAX_VERSION}] and the string "latest"'
        )


class InvalidModeError(ValueError):
    """This registry is always READWRITE."""


class MalformedRequestError(ValueError):
    """The body is not a JSON object."""


class UnsupportedMediaTypeError(ValueError):
    """The body's content type is not one the registry reads."""


class IncompatibleSchemaError(Exception):
    """Registration refused by the subject's compatibility level."""

    def __init__(self, subject: str, problems: Sequence[Incompatibility]) -> None:
        details = "; ".join(p.describe() for p in problems)
        super().__init__(
            f"Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}", details: [{details}]'
        )
        self.problems = list(problems)


# Exception type -> (HTTP status, Confluent error_code). Looked up along the MRO.
ERROR_STATUS: dict[type[Exception], tuple[int, int]] = {
    st.SubjectNotFoundError: (404, 40401),
    st.VersionNotFoundError: (404, 40402),
    st.SchemaNotFoundError: (404, 40403),
    st.SubjectSoftDeletedError: (404, 40404),
    st.SubjectNotSoftDeletedError: (404, 40405),
    st.VersionSoftDeletedError: (404, 40406),
    st.VersionNotSoftDeletedError: (404, 40407),
    st.SubjectConfigNotFoundError: (404, 40408),
    IncompatibleSchemaError: (409, 409),
    MalformedRequestError: (400, 400),
    UnsupportedMediaTypeError: (415, 415),
    InvalidSchemaError: (422, 42201),
    InvalidVersionError: (422, 42202),
    InvalidCompatibilityLevelError: (422, 42203),
    InvalidModeError: (422, 42204),
    st.StoreError: (500, 50001),
}


def error_status(exc: BaseException) -> tuple[int, int]:
    """``(http_status, error_code)`` for ``exc``; ``(500, 500)`` for anything unexpected."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500, 500


def create_app(db_path: str | Path) -> Starlette:
    """The registry app over the SQLite database at ``db_path`` (created if missing).

    The store is opened now (so a bad path fails here, not on the first request) and closed
    when the app's lifespan ends. Raises ``StoreError`` if the database cannot be opened.
    """
    store = Store(db_path)
    api = _Api(store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    handlers: dict[Any, Any] = {cls: _registry_error for cls in ERROR_STATUS}
    handlers[HTTPException] = _http_error
    handlers[Exception] = _unexpected_error
    app = Starlette(routes=api.routes(), exception_handlers=handlers, lifespan=lifespan)
    app.state.store = store
    return app


async def _registry_error(request: Request, exc: Exception) -> Response:
    status, code = error_status(exc)
    return RegistryJSONResponse({"error_code": code, "message": str(exc)}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return RegistryJSONResponse(
        {"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("registry request %s %s failed", request.method, request.url.path, exc_info=exc)
    return RegistryJSONResponse(
        {"error_code": 500, "message": "Internal Server Error"}, status_code=500
    )


class _Api:
    """The endpoints. SQLite calls take microseconds here, so they run on the event loop."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        # Subject names are URL-encoded by clients and may contain "/", hence ``:path``; the
        # more specific patterns come first so ".../versions" is never taken as a subject.
        s = "/subjects/{subject:path}"
        c = "/compatibility/subjects/{subject:path}"
        return [
            Route("/", self.root, methods=["GET"]),
            Route("/subjects", self.list_subjects, methods=["GET"]),
            Route(s + "/versions/{version}/schema", self.get_version_schema, methods=["GET"]),
            Route(s + "/versions/{version}/referencedby", self.referenced_by, methods=["GET"]),
            Route(s + "/versions/{version}", self.get_version, methods=["GET"]),
            Route(s + "/versions/{version}", self.delete_version, methods=["DELETE"]),
            Route(s + "/versions", self.list_versions, methods=["GET"]),
            Route(s + "/versions", self.register, methods=["POST"]),
            Route(s, self.lookup, methods=["POST"]),
            Route(s, self.delete_subject, methods=["DELETE"]),
            Route("/schemas/types", self.schema_types, methods=["GET"]),
            Route("/schemas/ids/{schema_id:int}", self.schema_by_id, methods=["GET"]),
            Route("/schemas/ids/{schema_id:int}/schema", self.raw_schema_by_id, methods=["GET"]),
            Route("/schemas/ids/{schema_id:int}/versions", self.id_versions, methods=["GET"]),
            Route("/schemas/ids/{schema_id:int}/subjects", self.id_subjects, methods=["GET"]),
            Route(c + "/versions/{version}", self.test_against_version, methods=["POST"]),
            Route(c + "/versions", self.test_against_subject, methods=["POST"]),
            Route("/config", self.get_global_config, methods=["GET"]),
            Route("/config", self.put_global_config, methods=["PUT"]),
            Route("/config", self.delete_global_config, methods=["DELETE"]),
            Route("/config/{subject:path}", self.get_subject_config, methods=["GET"]),
            Route("/config/{subject:path}", self.put_subject_config, methods=["PUT"]),
            Route("/config/{subject:path}", self.delete_subject_config, methods=["DELETE"]),
            Route("/mode", self.get_mode, methods=["GET"]),
            Route("/mode", self.put_mode, methods=["PUT"]),
            Route("/mode/{subject:path}", self.get_mode, methods=["GET"]),
            Route("/mode/{subject:path}", self.put_mode, methods=["PUT"]),
            Route("/contexts", self.contexts, methods=["GET"]),
        ]

    # -- subjects and versions ---------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return RegistryJSONResponse({})

    async def list_subjects(self, request: Request) -> Response:
        subjects = self._store.subjects(
            include_deleted=_flag(request, "deleted"),
            deleted_only=_flag(request, "deleted_only"),
            prefix=request.query_params.get("subjectPrefix", ""),
        )
        return RegistryJSONResponse(_page(request, subjects))

    async def list_versions(self, request: Request) -> Response:
        records = self._store.versions(
            _subject(request),
            include_deleted=_flag(request, "deleted"),
            deleted_only=_flag(request, "deleted_only"),
        )
        return RegistryJSONResponse(_page(request, [r.version for r in records]))

    async def get_version(self, request: Request) -> Response:
        return RegistryJSONResponse(_version_body(self._find_version(request)))

    async def get_version_schema(self, request: Request) -> Response:
        # The schema itself is the body, not a JSON string holding it.
        return Response(self._find_version(request).schema, media_type=MEDIA_TYPE)

    async def referenced_by(self, request: Request) -> Response:
        self._find_version(request)
        return RegistryJSONResponse([])  # references are not supported, so nothing refers

    async def register(self, request: Request) -> Response:
        subject = _subject(request)
        candidate = _schema_from(await _body(request))

        def guard(live: Sequence[VersionRecord]) -> None:
            # Runs under the store's lock, so the level and history cannot change under us.
            level = parse_level(self._store.effective_compatibility(subject))
            problems = check_compatibility(candidate, _parsed(live), level)
            if problems:
                raise IncompatibleSchemaError(subject, problems)

        record, created = self._store.register(
            subject, candidate.canonical, SUPPORTED_SCHEMA_TYPES[0], guard=guard
        )
        if created:
            logger.info("registered %s v%d as id %d", subject, record.version, record.schema_id)
        return RegistryJSONResponse(
            {"id": record.schema_id, "version": record.version, "subject": record.subject}
        )

    async def lookup(self, request: Request) -> Response:
        candidate = _schema_from(await _body(request))
        record = self._store.lookup(
            _subject(request),
            candidate.canonical,
            SUPPORTED_SCHEMA_TYPES[0],
            include_deleted=_flag(request, "deleted"),
        )
        return RegistryJSONResponse(_version_body(record))

    async def delete_subject(self, request: Request) -> Response:
        versions = self._store.delete_subject(
            _subject(request), permanent=_flag(request, "permanent")
        )
        return RegistryJSONResponse(versions)

    async def delete_version(self, request: Request) -> Response:
        version = self._store.delete_version(
            _subject(request),
            _version(request.path_params["version"]),
            permanent=_flag(request, "permanent"),
        )
        return RegistryJSONResponse(version)

    def _find_version(self, request: Request) -> VersionRecord:
        version = _version(request.path_params["version"])
        return self._store.get_version(
            _subject(request), version, include_deleted=_flag(request, "deleted")
        )

    # -- schemas by id -----------------------------------------------------------------------

    async def schema_types(self, request: Request) -> Response:
        return RegistryJSONResponse(list(SUPPORTED_SCHEMA_TYPES))

    async def schema_by_id(self, request: Request) -> Response:
        # ``?subject=`` only selects a context in Confluent; with one context it changes nothing.
        schema, schema_type = self._store.schema_by_id(request.path_params["schema_id"])
        body: dict[str, Any] = {"schema": schema}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        return RegistryJSONResponse(body)

    async def raw_schema_by_id(self, request: Request) -> Response:
        schema, _ = self._store.schema_by_id(request.path_params["schema_id"])
        return Response(schema, media_type=MEDIA_TYPE)

    async def id_versions(self, request: Request) -> Response:
        records = self._id_records(request)
        return RegistryJSONResponse(
            _page(request, [{"subject": r.subject, "version": r.version} for r in records])
        )

    async def id_subjects(self, request: Request) -> Response:
        subjects = sorted({r.subject for r in self._id_records(request)})
        return RegistryJSONResponse(_page(request, subjects))

    def _id_records(self, request: Request) -> list[VersionRecord]:
        schema_id = request.path_params["schema_id"]
        self._store.schema_by_id(schema_id)  # 40403 for an unknown id rather than []
        records = self._store.versions_by_id(schema_id, include_deleted=_flag(request, "deleted"))
        subject = request.query_params.get("subject")
        return [r for r in records if subject is None or r.subject == subject]

    # -- compatibility -----------------------------------------------------------------------

    async def test_against_version(self, request: Request) -> Response:
        subject = _subject(request)
        candidate = _schema_from(await _body(request))
        record = self._find_version(request)
        level = parse_level(self._store.effective_compatibility(subject))
        problems = check_compatibility(candidate, _parsed([record]), level)
        return _compatibility_body(problems, verbose=_flag(request, "verbose"))

    async def test_against_subject(self, request: Request) -> Response:
        subject = _subject(request)
        candidate = _schema_from(await _body(request))
        try:
            live = self._store.versions(subject)
        except st.SubjectNotFoundError:
            live = []  # nothing registered yet: anything is compatible, as in Confluent
        level = parse_level(self._store.effective_compatibility(subject))
        problems = check_compatibility(candidate, _parsed(live), level)
        return _compatibility_body(problems, verbose=_flag(request, "verbose"))

    # -- config and mode ---------------------------------------------------------------------

    async def get_global_config(self, request: Request) -> Response:
        return RegistryJSONResponse({"compatibilityLevel": self._store.global_compatibility()})

    async def put_global_config(self, request: Request) -> Response:
        level = _level_from(await _body(request))
        self._store.set_global_compatibility(level)
        return RegistryJSONResponse({"compatibility": level.value})

    async def delete_global_config(self, request: Request) -> Response:
        previous = self._store.reset_global_compatibility()
        return RegistryJSONResponse({"compatibilityLevel": previous})

    async def get_subject_config(self, request: Request) -> Response:
        subject = _subject(request)
        level = self._store.subject_compatibility(subject)
        if level is None:
            if not _flag(request, "defaultToGlobal"):
                raise st.SubjectConfigNotFoundError(subject)
            level = self._store.global_compatibility()
        return RegistryJSONResponse({"compatibilityLevel": level})

    async def put_subject_config(self, request: Request) -> Response:
        level = _level_from(await _body(request))
        self._store.set_subject_compatibility(_subject(request), level)
        return RegistryJSONResponse({"compatibility": level.value})

    async def delete_subject_config(self, request: Request) -> Response:
        previous = self._store.delete_subject_compatibility(_subject(request))
        return RegistryJSONResponse({"compatibilityLevel": previous})

    async def get_mode(self, request: Request) -> Response:
        return RegistryJSONResponse({"mode": _MODE})

    async def put_mode(self, request: Request) -> Response:
        mode = (await _body(request)).get("mode")
        if not isinstance(mode, str) or mode.upper() != _MODE:
            raise InvalidModeError(
                f"Mode {mode!r} is not supported: the registry is always {_MODE}"
            )
        return RegistryJSONResponse({"mode": _MODE})

    async def contexts(self, request: Request) -> Response:
        return RegistryJSONResponse(["."])


# -- request parsing -----------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object in the body. Raises Malformed/UnsupportedMediaType errors."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _ACCEPTED_BODY_TYPES:
        raise UnsupportedMediaTypeError(f"Unsupported content type {content_type!r}")
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRequestError(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedRequestError("Request body must be a JSON object")
    return data


def _schema_from(body: dict[str, Any]) -> ParsedSchema:
    return parse_schema(body.get("schema"), body.get("schemaType"), body.get("references"))


def _level_from(body: dict[str, Any]) -> CompatibilityLevel:
    # Confluent reads "compatibility"; ServerConfig.to_dict may send "compatibilityLevel".
    return parse_level(body.get("compatibility", body.get("compatibilityLevel")))


def _subject(request: Request) -> str:
    subject: str = request.path_params["subject"]
    return subject


def _version(text: str) -> int | None:
    """A version path segment: ``None`` for "latest" (or -1), else 1..2^31-1."""
    if text.lower() == "latest" or text == "-1":
        return None
    try:
        version = int(text)
    except ValueError:
        raise InvalidVersionError(text) from None
    if not 1 <= version <= _MAX_VERSION:
        raise InvalidVersionError(text)
    return version


def _flag(request: Request, name: str) -> bool:
    # confluent-kafka sends Python booleans as "True"/"False".
    return request.query_params.get(name, "").strip().lower() == "true"


def _page(request: Request, items: list[Any]) -> list[Any]:
    """Apply ``offset`` and ``limit`` (negative = no limit), as the client always sends them."""
    try:
        offset = max(int(request.query_params.get("offset", 0)), 0)
        limit = int(request.query_params.get("limit", -1))
    except ValueError as exc:
        raise MalformedRequestError(f"offset and limit must be integers: {exc}") from exc
    return items[offset:] if limit < 0 else items[offset : offset + limit]


def _parsed(records: Sequence[VersionRecord]) -> list[tuple[int, ParsedSchema]]:
    return [(r.version, parse_stored(r.schema)) for r in records]


def _version_body(record: VersionRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": record.subject,
        "version": record.version,
        "id": record.schema_id,
        "schema": record.schema,
    }
    if record.schema_type != "AVRO":
        body["schemaType"] = record.schema_type
    return body


def _compatibility_body(problems: Sequence[Incompatibility], *, verbose: bool) -> Response:
    body: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        body["messages"] = [p.describe() for p in problems]
    return RegistryJSONResponse(body)
