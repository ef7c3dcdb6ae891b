"""The OTLP/gRPC server's lifecycle: bind, serve both Export RPCs and grpc.health.v1, stop.

Contract (as in the OTel Collector): ``start`` returns once the port is bound; ``shutdown`` is
idempotent and safe before ``start``: health goes NOT_SERVING, new RPCs are refused, in-flight
RPCs get ``grace`` seconds to finish, then the pipeline is flushed and shut down.

The health service follows readiness: NOT_SERVING from ``start`` until the pipeline has bound
its schemas (``Pipeline.when_ready``; the registry may be down at start), SERVING from then on,
NOT_SERVING again once ``shutdown`` begins. A probe thus routes no traffic to a receiver that
would only answer UNAVAILABLE (as ``/readyz``; liveness is ``/healthz``).

With ``tls`` the port speaks TLS only (mutual TLS with a client CA); rotated certificate files
are picked up by new connections (``tls.py``). ``set_guard`` swaps the authentication and
rate-limit rules live (``FeedbackApp.reload`` on SIGHUP: API key rotation, the same new guard
for both ports); everything else needs a restart.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from otlp_feedback.config import ReceiverConfig, TlsConfig
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.guard import RequestGuard
from otlp_feedback.receiver.service import LOGS_SERVICE, TRACE_SERVICE, ExportService
from otlp_feedback.receiver.tls import CertificateReloader, server_credentials

log = logging.getLogger(__name__)

# What the health service reports on: each OTLP service, then the whole server (""), set in
# this order: a probe that sees the server SERVING finds each service SERVING too.
_HEALTH_NAMES = (LOGS_SERVICE, TRACE_SERVICE, "")


class GrpcReceiver:
    """The receiver. ``port`` is the bound port (useful with an endpoint ending in ``:0``)."""

    def __init__(
        self,
        config: ReceiverConfig,
        pipeline: Pipeline,
        max_rejection_messages: int = 5,
        telemetry: Telemetry | None = None,
        *,
        tls: TlsConfig | None = None,
        guard: RequestGuard | None = None,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        self._telemetry = telemetry or Telemetry()
        self._tls = tls or TlsConfig()
        self._service = ExportService(pipeline, max_rejection_messages, self._telemetry, guard)
        self.certificates: CertificateReloader | None = None
        self._health = health.HealthServicer()
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.port: int | None = None

    def start(self) -> None:
        """Bind and serve. Raises ``OSError`` if the endpoint cannot be bound, ``ConfigError``
        if the TLS files cannot be used."""
        cfg = self._config
        credentials = None
        if self._tls.enabled:
            credentials, self.certificates = server_credentials(self._tls)
        options = [
            ("grpc.max_receive_message_length", cfg.max_recv_msg_bytes),
            ("grpc.so_reuseport", 1 if cfg.reuse_port else 0),
        ]
        server = grpc.server(
            ThreadPoolExecutor(max_workers=cfg.max_workers, thread_name_prefix="otlp"),
            handlers=self._service.handlers(),
            options=options,
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)  # until schemas are bound
        try:
            if credentials is not None:
                port = server.add_secure_port(cfg.endpoint, credentials)
            else:
                port = server.add_insecure_port(cfg.endpoint)
        except RuntimeError as exc:  # recent grpcio raises instead of returning port 0
            raise OSError(f"cannot bind OTLP/gRPC receiver to {cfg.endpoint}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot bind OTLP/gRPC receiver to {cfg.endpoint}")
        server.start()
        # Now if the pipeline is bound, else from its binding thread; after shutdown began
        # the servicer ignores it (``enter_graceful_shutdown``), so the two cannot race.
        self._pipeline.when_ready(lambda: self._set_health(health_pb2.HealthCheckResponse.SERVING))
        self._server = server
        self.port = port
        log.info(
            "OTLP/gRPC receiver listening on %s (port %d, %s)",
            cfg.endpoint,
            port,
            _describe_tls(self._tls),
        )
        self._warn_if_open()

    def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in _HEALTH_NAMES:
            self._health.set(name, status)

    def _warn_if_open(self) -> None:
        auth = self._service.guard.authenticator
        if not auth.enabled:
            log.warning(
                "AUTHENTICATION IS OFF (auth.mode: none): anyone who can reach %s can write "
                "feedback. Set auth.mode (api_key, jwt or any) outside local development.",
                self._config.endpoint,
            )
        elif not self._tls.enabled:
            log.warning(
                "TLS IS OFF (tls.enabled: false): bearer credentials cross the network in "
                "clear text. Enable tls unless a TLS proxy or sidecar terminates it."
            )

    @property
    def guard(self) -> RequestGuard:
        """The guard in force (``FeedbackApp`` gives both ports the same one)."""
        return self._service.guard

    def set_guard(self, guard: RequestGuard) -> None:
        """Use ``guard`` (new ``auth``/``rate_limit`` settings; its buckets start full) for the
        requests that start from now on; requests in flight keep the one they started with."""
        self._service.guard = guard
        self._warn_if_open()

    @property
    def serving(self) -> bool:
        """True between ``start`` and ``shutdown`` (what /readyz and /healthz report)."""
        return self._server is not None and not self._stopped

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight RPCs finish within ``grace``, then flush the pipeline."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1.0)
        self._pipeline.shutdown(grace)
        log.info("OTLP/gRPC receiver stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has terminated (True) or ``timeout`` passed (False)."""
        if self._server is None:
            return True
        return bool(self._server.wait_for_termination(timeout))

    def __enter__(self) -> GrpcReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _describe_tls(tls: TlsConfig) -> str:
    if not tls.enabled:
        return "plaintext"
    return "mutual TLS" if tls.client_ca_file is not None else "TLS"
