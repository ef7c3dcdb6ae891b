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

import logging
import time
from collections.abc import Callable

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
from otlp_feedback.pipeline import ExportOutcome, Pipeline, Signal
from otlp_feedback.receiver import status
from otlp_feedback.receiver.guard import Caller, RequestGuard

log = logging.getLogger(__name__)

LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_METHOD = f"/{LOGS_SERVICE}/Export"
TRACE_METHOD = f"/{TRACE_SERVICE}/Export"

Handler = Callable[[bytes, grpc.ServicerContext], bytes]


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
        response = ExportLogsServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_log_records = outcome.rejected
            response.partial_success.error_message = outcome.message(self._max_messages)
        return response.SerializeToString()

    def export_traces(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        outcome = self._export("traces", TRACE_METHOD, payload, context)
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            # OTLP counts spans; we count the rejected feedback carriers (span events or spans).
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message(self._max_messages)
        return response.SerializeToString()

    def _export(
        self, signal: Signal, method: str, payload: bytes, context: grpc.ServicerContext
    ) -> ExportOutcome:
        """Authenticate, then run the pipeline as the caller: what both RPCs share."""
        caller = self._authenticate(context, method)
        try:
            outcome = self._pipeline.export(signal, payload, caller.client_id, caller)
        except OtlpFeedbackError as exc:
            # Rate limits are audited by the guard; both may come in floods from one client.
            if not isinstance(exc, RateLimited | InvalidRequest):
                log.warning("export failed: %s", exc)
            status.abort(context, exc)
        except Exception as exc:
            # A bug, not bad input: keep serving, tell the client it was us (and it may retry).
            log.exception("unexpected error in export")
            status.abort(context, InternalError(f"internal error: {type(exc).__name__}: {exc}"))
        self._telemetry.feedback_per_request.observe(outcome.accepted + outcome.rejected)
        return outcome

    def _authenticate(self, context: grpc.ServicerContext, method: str) -> Caller:
        try:
            return self.guard.check(context, method)
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
        latency = self._telemetry.export_seconds.labels(signal)
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
                responses.labels(signal, code).inc()

        return handler
