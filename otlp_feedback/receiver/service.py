"""The two OTLP Export handlers: authenticate, hand the bytes to the pipeline's one entry point
(``Pipeline.export``), answer with partial_success.

Requests arrive as raw bytes (no deserializer registered with gRPC) so that an undecodable
request is answered INVALID_ARGUMENT by us, not INTERNAL by the framework, and so that the
pipeline's native fast path reads the logs request straight from the bytes. Credentials are
checked (``guard``) before anything is decoded; the authenticated ``Caller`` is the request's
``Admission``, which the pipeline asks once it has counted the request's feedback records (the
rate limit).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from otlp_feedback.errors import (
    InternalError,
    InvalidRequest,
    OtlpFeedbackError,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.observability.tracing import RequestOrigin
from otlp_feedback.pipeline import ExportOutcome, Pipeline, Signal
from otlp_feedback.receiver import status
from otlp_feedback.receiver.guard import Caller, RequestGuard

log = logging.getLogger(__name__)

LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_METHOD = f"/{LOGS_SERVICE}/Export"
TRACE_METHOD = f"/{TRACE_SERVICE}/Export"

Handler = Callable[[bytes, grpc.ServicerContext], bytes]
T = TypeVar("T")


def export_response(
    signal: Signal, outcome: ExportOutcome, max_messages: int
) -> ExportLogsServiceResponse | ExportTraceServiceResponse:
    """The Export*ServiceResponse for ``outcome``, whichever transport carries it: empty when
    everything was taken, else partial_success with the count and the first problems."""
    response: ExportLogsServiceResponse | ExportTraceServiceResponse
    if signal == "logs":
        response = ExportLogsServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_log_records = outcome.rejected
    else:
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            # OTLP counts spans; we count the rejected feedback carriers (span events or spans).
            response.partial_success.rejected_spans = outcome.rejected
    if outcome.rejected:
        response.partial_success.error_message = outcome.message(max_messages)
    return response


def run_export(fn: Callable[[bytes], T], payload: bytes) -> T:
    """Run one export, whichever transport: our errors pass through (logged unless expected);
    anything else is a bug, logged and raised as ``InternalError`` (the server keeps serving,
    the client is told it was us and may retry)."""
    try:
        return fn(payload)
    except OtlpFeedbackError as exc:
        # Rate limits are audited by the guard; both may come in floods from one client.
        if not isinstance(exc, RateLimited | InvalidRequest):
            log.warning("export failed: %s", exc)
        raise
    except Exception as exc:
        log.exception("unexpected error in export")
        # The class only: a bug's message may quote a record's value, and this answer leaves
        # the process (the log above keeps the whole error for the operator).
        raise InternalError(
            f"internal error: {type(exc).__name__} (the receiver logged it)"
        ) from exc


class ExportService:
    """Holds the pipeline; one instance serves both RPCs on all worker threads."""

    def __init__(
        self,
        pipeline: Pipeline,
        max_rejection_messages: int,
        telemetry: Telemetry | None = None,
        guard: RequestGuard | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._max_messages = max_rejection_messages
        self._telemetry = telemetry or Telemetry()
        # Replaced whole on a config reload; each request reads it once.
        self.guard = guard or RequestGuard.open(self._telemetry)

    def export_logs(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        outcome = self._export("logs", LOGS_METHOD, payload, context)
        return export_response("logs", outcome, self._max_messages).SerializeToString()

    def export_traces(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        outcome = self._export("traces", TRACE_METHOD, payload, context)
        return export_response("traces", outcome, self._max_messages).SerializeToString()

    def _export(
        self, signal: Signal, method: str, payload: bytes, context: grpc.ServicerContext
    ) -> ExportOutcome:
        """Authenticate, then run the pipeline as the caller: what both RPCs share."""
        caller = self._authenticate(context, method)
        origin = (
            RequestOrigin.of("grpc", context.invocation_metadata())
            if self._pipeline.tracing
            else None
        )
        try:
            as_caller = functools.partial(
                self._pipeline.export,
                signal,
                client_id=caller.client_id,
                admission=caller,
                origin=origin,
            )
            outcome = run_export(as_caller, payload)
        except OtlpFeedbackError as exc:
            status.abort(context, exc)
        self._telemetry.feedback_per_request.observe(outcome.accepted + outcome.rejected)
        return outcome

    def _authenticate(self, context: grpc.ServicerContext, method: str) -> Caller:
        try:
            return self.guard.check(context.invocation_metadata(), context.peer(), method)
        except (Unauthenticated, PermissionDenied) as exc:
            status.abort(context, exc)  # audited by the guard; the app log stays quiet

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        def unary(signal: str, fn: Handler) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(self._measured(signal, fn))

        return (
            grpc.method_handlers_generic_handler(
                LOGS_SERVICE, {"Export": unary("logs", self.export_logs)}
            ),
            grpc.method_handlers_generic_handler(
                TRACE_SERVICE, {"Export": unary("traces", self.export_traces)}
            ),
        )

    def _measured(self, signal: str, fn: Handler) -> Handler:
        """Time the RPC and count its status code (ingestion latency and error rate)."""
        latency = self._telemetry.export_seconds.labels(signal, "grpc")
        responses = self._telemetry.export_responses

        def handler(payload: bytes, context: grpc.ServicerContext) -> bytes:
            started = time.perf_counter()
            code = "OK"
            try:
                return fn(payload, context)
            except BaseException:
                set_code = context.code()  # set by abort(); None for an unmapped exception
                code = set_code.name if isinstance(set_code, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                latency.observe(time.perf_counter() - started)
                responses.labels(signal, code, "grpc").inc()

        return handler
