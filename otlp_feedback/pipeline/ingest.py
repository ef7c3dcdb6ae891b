"""Ingest: one request as sent -> a ``Batch``, the one hand-off to admission and process.

Called by the ``Pipeline`` facade, once per request, whatever the transport:

- ``ingest_payload(signal, payload, ...)`` for OTLP bytes. Logs try the native fast path first
  (``NativeLogs.export``: C maps, validates and encodes the records it can prove the Python
  stages would accept unchanged); the records it defers, or the whole request when C cannot
  parse it exactly as protobuf would, are decoded and mapped here in Python. Traces always
  take the Python path.
- ``logs_batch``/``traces_batch`` for a request already decoded (in-process callers);
- ``events_batch`` for typed events that arrive already mapped (the events API, dead-letter
  replay): they enter the same stages from here on.

Whatever the path, the batch holds the request's feedback records in request order, each as an
``OutboundRecord`` (encoded by C) or a ``RawFeedback`` (to process), and finds each one's source
on demand (``Batch.sources``, which a Kafka refusal needs for the rejection and its dead letter).
Nothing is decoded twice: a request is parsed by protobuf at most once per batch, and a
record C encoded is mapped only if Kafka refuses it.

Pure apart from the C call: no clock (``received_ns`` is passed in), no I/O, no config.
Raises ``InvalidRequest`` for bytes that are not the signal's request message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import InvalidRequest
from otlp_feedback.mapping import RawFeedback, map_logs_request, map_traces_request
from otlp_feedback.mapping.logs import feedback_locations, unknown_feedback_names
from otlp_feedback.native import NativeLogs, NativeResult

M = TypeVar("M", bound=Message)

Signal = Literal["logs", "traces"]
"""The OTLP signals a payload can carry."""

Entry = OutboundRecord | RawFeedback
"""One feedback record of a batch: encoded by the native fast path, or mapped, to process."""


@dataclass(slots=True)
class Batch:
    """One request's feedback, as ingest found it. Built once per request, read by one thread.

    ``entries`` holds every feedback record of the request in request order; ``len(batch)``
    is the count admission is decided on. ``native``/``deferred`` count the records the native
    fast path encoded and those it handed to Python (both 0 off the native path).
    """

    entries: Sequence[Entry]
    ignored: int  # records that are not feedback
    received_ns: int
    native: int = 0
    deferred: int = 0
    # Ignored records named feedback.* that match no type (misspellings), for the warning.
    unknown_names: Sequence[str] = ()
    # For the sources of records C encoded (logs only): the bytes, and the request once decoded.
    payload: bytes | None = field(default=None, repr=False)
    _request: ExportLogsServiceRequest | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.entries)

    def sources(self, positions: Iterable[int]) -> dict[int, RawFeedback]:
        """The mapped record at each of ``positions``: the entry itself where it is one; for
        a record C encoded, mapped now, only those, from the request decoded at most once."""
        found: dict[int, RawFeedback] = {}
        encoded: set[int] = set()
        for position in positions:
            entry = self.entries[position]
            if isinstance(entry, RawFeedback):
                found[position] = entry
            else:
                encoded.add(position)
        if encoded:
            request = self.logs_request()
            locations = feedback_locations(request)
            wanted = sorted(encoded)
            only = frozenset(locations[p] for p in wanted)
            mapped = map_logs_request(request, only=only).feedback
            found.update(zip(wanted, mapped, strict=True))
        return found

    def logs_request(self) -> ExportLogsServiceRequest:
        """The logs request the native entries came from, decoded once."""
        if self._request is None:
            if self.payload is None:
                raise ValueError("this batch holds no encoded records (no payload to decode)")
            # The C parser accepted these bytes, so protobuf does too.
            self._request = decode(ExportLogsServiceRequest, self.payload)
        return self._request


def ingest_payload(
    signal: Signal,
    payload: bytes,
    plan: NativeLogs | None,
    received_ns: int,
    client_id: str | None,
) -> Batch:
    """The batch of one OTLP request as sent. ``plan`` is the native plan to try first (logs
    only; None: Python only). ``client_id`` goes into what C encodes, as Python adds it later.
    Raises ``InvalidRequest`` if ``payload`` does not decode."""
    if signal == "logs":
        if plan is not None:
            result = plan.export(payload, received_ns, client_id)
            if result is not None:
                return native_batch(result, payload, received_ns)
        return logs_batch(decode(ExportLogsServiceRequest, payload), received_ns)
    if signal == "traces":
        return traces_batch(decode(ExportTraceServiceRequest, payload), received_ns)
    raise ValueError(f"unknown signal {signal!r}")


def native_batch(result: NativeResult, payload: bytes, received_ns: int) -> Batch:
    """The C path's result as a batch: its encoded records, with the records it deferred
    mapped in Python (the request decoded once, only those records mapped) in their places."""
    slots = result.slots
    if not result.deferred and not result.unknown_feedback:
        # The common case: every feedback record encoded, nothing to map.
        entries = cast("list[Entry]", slots)  # no None where nothing was deferred
        return Batch(entries, result.ignored, received_ns, native=len(slots), payload=payload)
    request = decode(ExportLogsServiceRequest, payload)
    # Rare (a misspelt name): C counted them; Python names them, from the one decode.
    unknown = unknown_feedback_names(request) if result.unknown_feedback else ()
    deferred: Sequence[RawFeedback] = ()
    merged = cast("list[Entry]", slots)  # no None where nothing was deferred
    if result.deferred:
        deferred = map_logs_request(request, only=frozenset(result.deferred)).feedback
        pending = iter(deferred)
        merged = [slot if slot is not None else next(pending) for slot in slots]
    return Batch(
        merged,
        result.ignored,
        received_ns,
        native=len(slots) - len(deferred),
        deferred=len(deferred),
        unknown_names=unknown,
        payload=payload,
        _request=request,
    )


def logs_batch(request: ExportLogsServiceRequest, received_ns: int) -> Batch:
    """A decoded logs request, mapped in Python."""
    mapped = map_logs_request(request)
    return Batch(mapped.feedback, mapped.ignored, received_ns, unknown_names=mapped.unknown_names)


def traces_batch(request: ExportTraceServiceRequest, received_ns: int) -> Batch:
    """A decoded traces request: feedback span events and GenAI spans, mapped in Python."""
    mapped = map_traces_request(request)
    return Batch(mapped.feedback, mapped.ignored, received_ns, unknown_names=mapped.unknown_names)


def events_batch(feedback: Sequence[RawFeedback], received_ns: int) -> Batch:
    """Typed events that arrive already mapped (each a ``RawFeedback``): nothing ignored."""
    return Batch(list(feedback), 0, received_ns)


def decode(cls: type[M], payload: bytes) -> M:
    """Parse an OTLP request. Raises ``InvalidRequest`` naming the message type."""
    try:
        return cls.FromString(payload)
    except DecodeError as exc:
        reason = exc or "malformed protobuf"
        raise InvalidRequest(f"cannot decode {cls.__name__}: {reason}") from exc
