"""The ONE place where our errors become gRPC status codes (with RetryInfo when retryable).

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
"""

from __future__ import annotations

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


def status_for(exc: OtlpFeedbackError) -> tuple[grpc.StatusCode, float | None]:
    """The gRPC code for ``exc`` and the RetryInfo delay to attach (None: no RetryInfo)."""
    if isinstance(exc, BackpressureError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, exc.retry_after or _DEFAULT_RETRY_AFTER_S
    if isinstance(exc, RetryableError):
        return grpc.StatusCode.UNAVAILABLE, exc.retry_after or _DEFAULT_RETRY_AFTER_S
    if isinstance(exc, RequestTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, None
    if isinstance(exc, InvalidRequest):
        return grpc.StatusCode.INVALID_ARGUMENT, None
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, None
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, None
    if isinstance(exc, PermanentError):
        return grpc.StatusCode.INTERNAL, None
    return grpc.StatusCode.INTERNAL, None


def rpc_status_for(exc: OtlpFeedbackError) -> RpcStatus:
    """The full status for ``exc``: code, message and, when retryable, both RetryInfo trailers."""
    code, retry_after = status_for(exc)
    message = str(exc) or type(exc).__name__
    if retry_after is None:
        return RpcStatus(code, message, ())
    info = error_details_pb2.RetryInfo(retry_delay=_duration(retry_after))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(info)
    trailers = (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_INFO_KEY, info.SerializeToString()),
    )
    return RpcStatus(code, message, trailers)


def abort(context: grpc.ServicerContext, exc: OtlpFeedbackError) -> NoReturn:
    """End the RPC with the status for ``exc``. Never returns."""
    context.abort_with_status(rpc_status_for(exc))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
