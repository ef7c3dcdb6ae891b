"""Stage 1 of the pipeline: the OTLP/gRPC server (LogsService and TraceService Export)."""

from otlp_feedback.receiver.server import GrpcReceiver

__all__ = ["GrpcReceiver"]
