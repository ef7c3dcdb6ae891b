"""Stage 1 of the pipeline: the OTLP/gRPC server (LogsService and TraceService Export) and the
OTLP/HTTP server (``http.HttpReceiver``: POST /v1/logs, /v1/traces)."""

from otlp_feedback.receiver.server import GrpcReceiver

__all__ = ["GrpcReceiver"]
