"""The two OTLP Export handlers: decode, hand to the pipeline, answer with partial_success.

Requests arrive as raw bytes (no deserializer registered with gRPC) so that an undecodable
request is answered INVALID_ARGUMENT by us, not INTERNAL by the framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otlp_feedback.errors import InternalError, InvalidRequest, OtlpFeedbackError
from otlp_feedback.pipeline import ExportOutcome, Pipeline
from otlp_feedback.receiver import status

log = logging.getLogger(__name__)

LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

M = TypeVar("M", bound=Message)


class ExportService:
    """Holds the pipeline; one instance serves both RPCs on all worker threads."""

    def __init__(self, pipeline: Pipeline, max_rejection_messages: int) -> None:
        self._pipeline = pipeline
        self._max_messages = max_rejection_messages

    def export_logs(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        request = _decode(ExportLogsServiceRequest, payload, context)
        outcome = self._run(self._pipeline.export_logs, request, context)
        response = ExportLogsServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_log_records = outcome.rejected
            response.partial_success.error_message = outcome.message(self._max_messages)
        return response.SerializeToString()

    def export_traces(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        request = _decode(ExportTraceServiceRequest, payload, context)
        outcome = self._run(self._pipeline.export_traces, request, context)
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            # OTLP counts spans; we count the rejected feedback carriers (span events or spans).
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message(self._max_messages)
        return response.SerializeToString()

    @staticmethod
    def _run(
        fn: Callable[[M], ExportOutcome], request: M, context: grpc.ServicerContext
    ) -> ExportOutcome:
        try:
            return fn(request)
        except OtlpFeedbackError as exc:
            log.warning("export failed: %s", exc)
            status.abort(context, exc)
        except Exception as exc:
            # A bug, not bad input: keep serving, tell the client it was us (and it may retry).
            log.exception("unexpected error in export")
            status.abort(context, InternalError(f"internal error: {type(exc).__name__}: {exc}"))

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        def unary(fn: Callable[[bytes, grpc.ServicerContext], bytes]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(fn)

        return (
            grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": unary(self.export_logs)}),
            grpc.method_handlers_generic_handler(
                TRACE_SERVICE, {"Export": unary(self.export_traces)}
            ),
        )


def _decode(cls: type[M], payload: bytes, context: grpc.ServicerContext) -> M:
    try:
        return cls.FromString(payload)
    except DecodeError as exc:
        status.abort(
            context, InvalidRequest(f"cannot decode {cls.__name__}: {exc or 'malformed protobuf'}")
        )
