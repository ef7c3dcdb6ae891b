"""``otlp-feedback serve`` with its dependencies down (issue 14 item 9): the ports open at once;
with the registry not yet running the gRPC health service says NOT_SERVING and the OTel SDK's
export is refused UNAVAILABLE with a retry delay and retried until the registry starts, then
its event lands in Kafka and health turns SERVING; SIGTERM during a
broker outage exits 0 promptly. Each step awaits an event (a log line, an open port), never a
sleep; the bounds are generous, the times measured are printed (``-s``) for the record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from harness import (
    KafkaReader,
    ServeProcess,
    message_starts,
    port_open,
    sdk_log_records,
    serve_config,
    wait_until,
)
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs.export import (
    LogRecordExportResult,
)

from otlp_feedback.config import Settings
from otlp_feedback.embedded.tansu import TansuBroker, free_port
from otlp_feedback.registry.runner import RegistryServer
from otlp_feedback.testing import logs_request, make_log_record
from otlp_feedback.testing.receiver import await_health

pytestmark = pytest.mark.integration

BOUND_S = 60.0  # generous: what is measured below takes about a second


def test_registry_down_at_start_the_sdk_is_retried_until_it_runs_then_the_event_lands(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    registry_port = free_port()
    registry = RegistryServer(host="127.0.0.1", port=registry_port, db_path=tmp_path / "r.db")
    settings = make_settings(registry={"url": f"http://127.0.0.1:{registry_port}"})
    config, _, port = serve_config(tmp_path, settings, 1)
    started = time.monotonic()
    serve = ServeProcess(config)
    try:
        wait_until(lambda: port_open(port), BOUND_S, "the gRPC port")
        print(f"\ngRPC port open {time.monotonic() - started:.2f}s after launch")
        # "metrics and health on http://127.0.0.1:PORT (/metrics /healthz /readyz)"
        health = serve.wait_for_log(message_starts("metrics and health on")).split()[4]
        ready = httpx.get(f"{health}/readyz", timeout=BOUND_S)
        assert ready.status_code == 503
        assert any("registry unavailable" in p for p in ready.json()["problems"])
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        status = HealthStub(channel).Check(HealthCheckRequest(), timeout=BOUND_S).status
        assert status == HealthCheckResponse.NOT_SERVING

        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=BOUND_S)
        results: list[LogRecordExportResult] = []
        sending = threading.Thread(
            target=lambda: results.append(exporter.export(sdk_log_records("sess-late-registry")))
        )
        sending.start()
        serve.wait_for_log(message_starts("export failed: not serving yet"))  # refused once
        registry.start()
        sending.join(BOUND_S)
        exporter.shutdown()
        assert results == [LogRecordExportResult.SUCCESS]
        assert await_health(channel, HealthCheckResponse.SERVING, BOUND_S)
        channel.close()

        (record,) = KafkaReader(settings).read(1)
        assert record["value"]["session_id"] == "sess-late-registry"
        assert httpx.get(f"{health}/readyz", timeout=BOUND_S).status_code == 200
        assert serve.stop() == 0
    finally:
        serve.stop()
        registry.shutdown()


def test_sigterm_during_a_broker_outage_exits_zero_promptly(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    broker = TansuBroker("127.0.0.1", free_port(), log_file=tmp_path / "tansu.log")
    broker.start()
    try:
        settings = make_settings(kafka={"bootstrap_servers": broker.bootstrap_servers})
        config, _, port = serve_config(tmp_path, settings, 1, delivery={"attempt_timeout_s": 1.0})
        serve = ServeProcess(config)
        try:
            serve.wait_for_log(message_starts("serving; SIGTERM or SIGINT stops"))
            broker.kill()
            record = make_log_record(
                "feedback.user_feedback", {"session.id": "s-outage", "feedback.rating": 4}
            )
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                LogsServiceStub(channel).Export(logs_request([record]), timeout=BOUND_S)
            # Accepted into the spool; the replayer now retries against the dead broker.
            serve.wait_for_log(message_starts("spool replay failed"))
            stopping = time.monotonic()
            assert serve.stop() == 0
            print(f"\nSIGTERM during the outage: exit 0 in {time.monotonic() - stopping:.2f}s")
        finally:
            serve.stop()
    finally:
        broker.stop()
