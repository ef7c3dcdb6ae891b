"""The schema id cache, with ``otlp-feedback serve``, the bundled registry and the real broker:
a receiver restarted while the registry is down serves at once with the ids of its last good
start, the stock SDK's export succeeds on its first try, and the record decodes through the
registry once it is back (the ids were the registry's)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import KafkaReader, ServeProcess, message_starts, sdk_log_records, serve_config
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult

from otlp_feedback.config import Settings
from otlp_feedback.embedded.tansu import free_port
from otlp_feedback.registry.runner import RegistryServer

pytestmark = pytest.mark.integration


def test_restarted_with_the_registry_down_it_serves_with_the_cached_ids(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    registry_port = free_port()
    db = tmp_path / "registry.db"
    settings = make_settings(registry={"url": f"http://127.0.0.1:{registry_port}"})
    config, _, port = serve_config(tmp_path, settings, 1, observability={"endpoint": "127.0.0.1:0"})
    cache = tmp_path / "schema-ids.json"  # beside the spool folder

    registry = RegistryServer(host="127.0.0.1", port=registry_port, db_path=db)
    registry.start()
    try:
        first = ServeProcess(config)
        first.wait_for_log(message_starts("pipeline started; schema ids"))
        assert first.stop() == 0
    finally:
        registry.shutdown()
    written = json.loads(cache.read_text())
    assert written["registry_url"] == settings.registry.url

    second = ServeProcess(config)  # the registry is down now
    try:
        health = second.wait_for_log(message_starts("metrics and health on")).split()[4]
        second.wait_for_log(lambda e: "serving with the schema ids of the last good" in e["msg"])
        assert httpx.get(f"{health}/readyz", timeout=30).status_code == 200
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=30)
        assert exporter.export(sdk_log_records("sess-cached")) == LogRecordExportResult.SUCCESS
        exporter.shutdown()
    finally:
        assert second.stop() == 0

    back = RegistryServer(host="127.0.0.1", port=registry_port, db_path=db)
    back.start()
    try:  # the record names a schema id the registry knows: a consumer decodes it
        (record,) = KafkaReader(settings).read(1)
        assert record["value"]["session_id"] == "sess-cached"
    finally:
        back.shutdown()
