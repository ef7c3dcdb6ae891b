"""The OTLP/JSON encoding (OTLP spec, "JSON Protobuf Encoding"): request bodies in, responses out.

OTLP/JSON is protobuf's canonical JSON mapping with a few differences, all handled here so the
rest of the receiver sees protobuf bytes only:

- ``traceId``, ``spanId`` and ``parentSpanId`` are hex strings, not base64 (other ``bytes``
  fields, e.g. an attribute's ``bytesValue``, stay base64). They are converted by walking the
  request's known shape (resource -> scope -> record/span/link), not by key name anywhere, so
  an attribute map whose key happens to be ``"traceId"`` is never touched;
- field names are lowerCamelCase (protobuf's parser also takes the original snake_case names);
- 64-bit integers may be strings or numbers, enums are integers (protobuf's parser takes both
  integers and names); unknown fields are ignored, as the spec requires of receivers.

``to_protobuf(signal, body)`` returns the request serialized as protobuf, which is what the
pipeline takes (the one ingest path behind both encodings). It raises ``InvalidRequest`` for
anything unusable: not UTF-8, not JSON, nested deeper than the parsers allow, a type mismatch,
an id that is not hex. Pure functions; thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_feedback.errors import InvalidRequest

Signal = Literal["logs", "traces"]

REQUEST_TYPES: dict[Signal, type[ExportLogsServiceRequest] | type[ExportTraceServiceRequest]] = {
    "logs": ExportLogsServiceRequest,
    "traces": ExportTraceServiceRequest,
}

# The path from the request to the messages holding hex ids: (container keys at each level),
# camelCase first, protobuf's own names second (its JSON parser accepts both).
_PATHS: dict[Signal, tuple[tuple[str, ...], ...]] = {
    "logs": (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"),
             ("logRecords", "log_records")),
    "traces": (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"),
               ("spans",)),
}  # fmt: skip
_ID_KEYS = frozenset(("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"))
_LINKS = ("links",)

# protobuf's JSON parser refuses deeper messages (its default is 100, as its binary parser's).
_MAX_DEPTH = 100


def load_json(body: bytes, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """A request body as JSON values (both JSON doors read bodies through this).

    ``parse_constant`` is ``json.loads``'s hook for ``NaN``/``Infinity``. Raises
    ``InvalidRequest`` for a body that is not UTF-8, not JSON, or nested too deeply.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the JSON body is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    try:
        return json.loads(text, parse_constant=parse_constant)
    except RecursionError as exc:
        raise InvalidRequest("the JSON body is nested too deeply") from exc
    except ValueError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc


def to_protobuf(signal: Signal, body: bytes) -> bytes:
    """An OTLP/JSON Export request -> the same request as protobuf bytes.

    Raises ``InvalidRequest`` naming what is wrong (never quoting more than a short excerpt).
    """
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest("an OTLP/JSON request must be a JSON object")
    cls = REQUEST_TYPES[signal]
    _hex_ids_to_base64(data, _PATHS[signal], signal == "traces")
    message = cls()
    try:
        json_format.ParseDict(
            data, message, ignore_unknown_fields=True, max_recursion_depth=_MAX_DEPTH
        )
    except RecursionError as exc:
        raise InvalidRequest(f"cannot decode {cls.__name__}: nested too deeply") from exc
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"cannot decode {cls.__name__} from JSON: {exc}") from exc
    return message.SerializeToString()


def from_message(message: Message) -> bytes:
    """A response (or ``google.rpc.Status``) in the OTLP/JSON encoding, UTF-8."""
    return json_format.MessageToJson(message, indent=None).encode()


def _hex_ids_to_base64(node: Any, path: tuple[tuple[str, ...], ...], links: bool) -> None:
    """Rewrite, in place, the hex ids of the records (or spans and their links) under
    ``node`` as base64, which is what protobuf's JSON parser expects for ``bytes``. Whatever
    is not shaped as expected is left for the parser to refuse."""
    if not path:
        _convert_ids(node)
        if links and isinstance(node, dict):
            for key in _LINKS:
                for link in _items(node.get(key)):
                    _convert_ids(link)
        return
    if not isinstance(node, dict):
        return
    for key in path[0]:
        for child in _items(node.get(key)):
            _hex_ids_to_base64(child, path[1:], links)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _convert_ids(record: Any) -> None:
    if not isinstance(record, dict):
        return
    for key in _ID_KEYS.intersection(record):
        value = record[key]
        if not isinstance(value, str):
            continue  # the parser names the type error
        try:
            raw = binascii.unhexlify(value)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(f"{key} must be hex (OTLP/JSON), got {value[:40]!r}") from exc
        record[key] = base64.b64encode(raw).decode("ascii")
