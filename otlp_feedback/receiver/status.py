"""The ONE place where our errors become gRPC status codes (with RetryInfo when retryable) and
OTLP/HTTP statuses: ``STATUS_TABLE``, one row per error class, a column per transport.

OTLP clients retry UNAVAILABLE and RESOURCE_EXHAUSTED-with-RetryInfo and honour the RetryInfo
delay; INVALID_ARGUMENT and the rest are final. A size refusal is RESOURCE_EXHAUSTED *without*
RetryInfo, because resending the same request cannot succeed. UNAUTHENTICATED and
PERMISSION_DENIED are final too: the SDK exporters do not retry them.

The delay travels twice, because clients look for it in two different places:

``grpc-status-details-bin``
    a serialized ``google.rpc.Status`` whose details hold the ``RetryInfo``: the gRPC rich-status
    convention. Read by the Go SDK exporters (``otlp*grpc``: ``throttleDelay`` walks
    ``status.Details()``), the .NET exporter (``OtlpRetry`` parses this trailer) and any
    ``grpc_status.rpc_status.from_call`` / ``status.FromError`` reader.
``google.rpc.retryinfo-bin``
    a bare serialized ``RetryInfo``. The only place the OTel *Python* SDK looks
    (opentelemetry-exporter-otlp-proto-grpc 1.45, ``OTLPExporterMixin._export``): it takes
    ``retry_delay.seconds + nanos / 1e9`` as-is, with no jitter and no cap, *instead of* its own
    backoff ``2**n * uniform(0.8, 1.2)``. It never reads ``grpc-status-details-bin``.

What the Python SDK does with it, so a delay we advise is one it can follow: it gives up on the
batch (no retry) when the delay exceeds what is left of its export timeout
(``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default), and after 6 attempts, so it waits out at most
5 advised delays. It retries on its own list of codes, RESOURCE_EXHAUSTED among them with or
without RetryInfo, so it does resend a RequestTooLarge (with its own backoff, until that
deadline); recent Go SDKs retry RESOURCE_EXHAUSTED only with RetryInfo.

Over OTLP/HTTP the same row gives the HTTP status, and the same ``google.rpc.Status`` (RetryInfo
among its details) is the response body, in the request's content type; a retryable status
also carries ``Retry-After`` in whole seconds, which is what the OTel Python SDK's HTTP
exporters read (they retry 429, 502, 503 and 504).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2

from otlp_feedback.errors import (
    BackpressureError,
    InvalidRequest,
    OtlpFeedbackError,
    PermanentError,
    PermissionDenied,
    RequestTooLarge,
    RetryableError,
    Unauthenticated,
    UnsupportedMediaType,
)

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailing metadata: a serialized google.rpc.Status (its details hold the RetryInfo)."""
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
"""Trailing metadata: a bare serialized google.rpc.RetryInfo (what the OTel Python SDK reads)."""

_DEFAULT_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class RpcStatus(grpc.Status):
    """What ``abort`` ends the RPC with (``grpc.Status`` is an attribute-only ABC)."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row of the table: an error class and what each transport answers for it."""

    error: type[OtlpFeedbackError]
    grpc_code: grpc.StatusCode
    http_status: int
    retryable: bool  # attach RetryInfo (and, over HTTP, Retry-After)


STATUS_TABLE: tuple[StatusRow, ...] = (
    # First match wins: a class before its bases.
    StatusRow(BackpressureError, grpc.StatusCode.RESOURCE_EXHAUSTED, 429, True),
    StatusRow(RetryableError, grpc.StatusCode.UNAVAILABLE, 503, True),
    StatusRow(RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, 413, False),
    StatusRow(UnsupportedMediaType, grpc.StatusCode.INVALID_ARGUMENT, 415, False),
    StatusRow(InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT, 400, False),
    StatusRow(Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401, False),
    StatusRow(PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, 403, False),
    StatusRow(PermanentError, grpc.StatusCode.INTERNAL, 500, False),
    StatusRow(OtlpFeedbackError, grpc.StatusCode.INTERNAL, 500, False),
)
"""The ONE error -> status table: the gRPC code and the HTTP status of every error, side by
side. OTLP/HTTP clients retry 429 and 503 (honouring ``Retry-After``), as OTLP/gRPC clients
retry RESOURCE_EXHAUSTED-with-RetryInfo and UNAVAILABLE; 413 is final, like a size refusal's
RESOURCE_EXHAUSTED without RetryInfo."""


def row_for(exc: OtlpFeedbackError) -> StatusRow:
    """The table's row for ``exc`` (the last row catches every ``OtlpFeedbackError``)."""
    for row in STATUS_TABLE:
        if isinstance(exc, row.error):
            return row
    raise AssertionError("unreachable: the last row matches every OtlpFeedbackError")


def retry_after_for(exc: OtlpFeedbackError) -> float | None:
    """The RetryInfo delay to attach to ``exc``'s status (None: no RetryInfo)."""
    if not row_for(exc).retryable:
        return None
    retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
    return retry_after or _DEFAULT_RETRY_AFTER_S


def status_for(exc: OtlpFeedbackError) -> tuple[grpc.StatusCode, float | None]:
    """The gRPC code for ``exc`` and the RetryInfo delay to attach (None: no RetryInfo)."""
    return row_for(exc).grpc_code, retry_after_for(exc)


def google_rpc_status(exc: OtlpFeedbackError) -> status_pb2.Status:
    """``exc`` as a ``google.rpc.Status``: the gRPC code's number, the message and, when
    retryable, a RetryInfo detail. The gRPC trailer and the OTLP/HTTP error body."""
    code, retry_after = status_for(exc)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=_message(exc))
    if retry_after is not None:
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=_duration(retry_after)))
    return status


@dataclass(frozen=True, slots=True)
class HttpStatus:
    """What an OTLP/HTTP response carries for an error: the status, its ``Retry-After``
    (whole seconds, rounded up; None: no header) and the ``google.rpc.Status`` body."""

    status: int
    retry_after_s: int | None
    body: status_pb2.Status
    grpc_code: grpc.StatusCode  # the same row's gRPC column (one metrics vocabulary)


def http_status_for(exc: OtlpFeedbackError) -> HttpStatus:
    """The OTLP/HTTP answer for ``exc``, from the same table row as its gRPC status."""
    row = row_for(exc)
    retry_after = retry_after_for(exc)
    header = None if retry_after is None else max(1, math.ceil(retry_after))
    return HttpStatus(row.http_status, header, google_rpc_status(exc), row.grpc_code)


def rpc_status_for(exc: OtlpFeedbackError) -> RpcStatus:
    """The full status for ``exc``: code, message and, when retryable, both RetryInfo trailers."""
    code, retry_after = status_for(exc)
    message = _message(exc)
    if retry_after is None:
        return RpcStatus(code, message, ())
    info = error_details_pb2.RetryInfo(retry_delay=_duration(retry_after))
    status = google_rpc_status(exc)
    trailers = (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_INFO_KEY, info.SerializeToString()),
    )
    return RpcStatus(code, message, trailers)


def abort(context: grpc.ServicerContext, exc: OtlpFeedbackError) -> NoReturn:
    """End the RPC with the status for ``exc``. Never returns."""
    context.abort_with_status(rpc_status_for(exc))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _message(exc: OtlpFeedbackError) -> str:
    return str(exc) or type(exc).__name__


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
