"""The ONE place where our errors become gRPC status codes (with RetryInfo when retryable).

OTLP clients retry UNAVAILABLE and RESOURCE_EXHAUSTED-with-RetryInfo and honour the RetryInfo
delay; INVALID_ARGUMENT and the rest are final. A size refusal is RESOURCE_EXHAUSTED *without*
RetryInfo, because resending the same request cannot succeed. UNAUTHENTICATED and
PERMISSION_DENIED are final too: the SDK exporters do not retry them.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

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

_DEFAULT_RETRY_AFTER_S = 1.0


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


def abort(context: grpc.ServicerContext, exc: OtlpFeedbackError) -> NoReturn:
    """End the RPC with the status for ``exc``. Never returns."""
    code, retry_after = status_for(exc)
    message = str(exc) or type(exc).__name__
    if retry_after is None:
        context.abort(code, message)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    info = error_details_pb2.RetryInfo(retry_delay=_duration(retry_after))
    status.details.add().Pack(info)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
