"""The schema id cache (``pipeline/schema_cache.py``): used only when it matches this start
exactly, and then the pipeline serves at once while the registry is down; the registry's ids
replace the cached ones once it answers."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from otlp_builders import MINIMAL, log_record, logs_request

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import load_config
from otlp_feedback.encoding import load_schemas
from otlp_feedback.errors import RegistryUnavailable
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.pipeline import Pipeline, schema_cache
from otlp_feedback.pipeline.startup import bind_schemas, cached_binding, subject_for
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.registry import DownRegistry
from otlp_feedback.testing.waiting import wait_until

SCHEMAS = load_schemas()
SETTINGS = load_config(validation={"max_age_days": 36500})
URL = SETTINGS.registry.url
SUBJECTS = {t: subject_for(SETTINGS.kafka.topic_for(t)) for t in EVENT_TYPES}
LATEST = {t: SCHEMAS.latest(t) for t in EVENT_TYPES}
IDS = {t: 100 + i for i, t in enumerate(EVENT_TYPES)}


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "schema-ids.json"
    schema_cache.write(path, URL, SUBJECTS, LATEST, IDS)
    return path


def test_a_cache_written_is_read_back(tmp_path: Path) -> None:
    assert schema_cache.read(_written(tmp_path), URL, SUBJECTS, LATEST) == (IDS, "matches")


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(registry_url="http://other:8081"), "another registry"),
        (lambda d: d.update(format=99), "not in format 1"),
        (lambda d: d["types"].pop("user_feedback"), "no id for .*user_feedback-value"),
        (lambda d: d["types"]["user_feedback"].update(subject="x-value"), "no id for"),
        (lambda d: d["types"]["model_response"].update(schema_sha256="0" * 64),
         "model_response's newest local schema changed"),
        (lambda d: d["types"]["user_feedback"].update(id="7"), "bad id"),
        (lambda d: d["types"]["user_feedback"].update(id=True), "bad id"),
        (lambda d: d.update(types=[]), "has no types"),
    ],
)  # fmt: skip
def test_a_cache_that_does_not_match_this_start_is_not_used(
    tmp_path: Path, change: Any, why: str
) -> None:
    path = _written(tmp_path)
    _edit(path, change)
    ids, reason = schema_cache.read(path, URL, SUBJECTS, LATEST)
    assert ids is None
    assert re.search(why, reason), reason


def test_a_missing_or_garbled_cache_says_so(tmp_path: Path) -> None:
    assert schema_cache.read(tmp_path / "none.json", URL, SUBJECTS, LATEST)[1].startswith("no ")
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    assert "unreadable" in schema_cache.read(garbled, URL, SUBJECTS, LATEST)[1]


def test_an_unwritable_cache_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    schema_cache.write(blocker / "schema-ids.json", URL, SUBJECTS, LATEST, IDS)
    assert "could not write the schema id cache" in caplog.text


def test_binding_writes_the_cache_without_the_registrys_credentials(tmp_path: Path) -> None:
    settings = load_config(
        registry={"url": "http://user:secret@registry:8081", "id_cache_file": tmp_path / "c"}
    )
    cache = settings.schema_id_cache_file()
    assert cache == tmp_path / "c"
    binding = bind_schemas(settings, InMemoryRegistry(), cache)
    assert "secret" not in cache.read_text()
    cached, why = cached_binding(settings, cache)
    assert cached is not None, why
    assert cached.encoder.schema_ids() == binding.encoder.schema_ids()


def test_the_default_cache_lives_beside_the_spool_and_can_be_switched_off(tmp_path: Path) -> None:
    spool = tmp_path / "state" / "spool"
    assert load_config(spool={"directory": spool}).schema_id_cache_file() == (
        tmp_path / "state" / "schema-ids.json"
    )
    assert load_config(registry={"id_cache": False}).schema_id_cache_file() is None


def _request() -> Any:
    return logs_request(log_record("feedback.user_feedback", MINIMAL["user_feedback"]))


def test_registry_down_with_a_matching_cache_serves_at_once_then_takes_the_registrys_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "schema-ids.json"
    # The last good start: a registry that gave other ids than the one coming back will.
    earlier = InMemoryRegistry()
    for subject in ("a-value", "b-value", "c-value"):  # shift its ids
        earlier.register(subject, LATEST["user_feedback"].text)
    bind_schemas(SETTINGS, earlier, cache)
    cached_ids = json.loads(cache.read_text())["types"]

    registry, sink = DownRegistry(), InMemorySink()
    pipeline = Pipeline(SETTINGS, registry, sink, id_cache=cache)
    caplog.set_level(logging.WARNING)
    pipeline.start()
    try:
        assert pipeline.started and pipeline.not_ready is None
        assert pipeline.export_logs(_request()).accepted == 1
        header = sink.records[-1].value[1:5]
        assert int.from_bytes(header, "big") == cached_ids["user_feedback"]["id"]
        assert "serving with the schema ids of the last good start" in caplog.text

        registry.bring_up()  # the background binding confirms, and here replaces, them
        wait_until(
            lambda: (
                pipeline.encoder is not None
                and pipeline.encoder.schema_ids()["user_feedback"]
                != cached_ids["user_feedback"]["id"]
            ),
            "the registry's binding",
        )
        assert pipeline.export_logs(_request()).accepted == 1
        header = sink.records[-1].value[1:5]
        assert int.from_bytes(header, "big") != cached_ids["user_feedback"]["id"]
        assert "differ from the cached ones" in caplog.text
        # ... and the cache now holds the registry's.
        assert json.loads(cache.read_text())["types"] != cached_ids
    finally:
        pipeline.shutdown(1.0)


def test_registry_down_with_a_stale_cache_waits_for_the_registry(tmp_path: Path) -> None:
    cache = tmp_path / "schema-ids.json"
    bind_schemas(SETTINGS, InMemoryRegistry(), cache)
    _edit(cache, lambda d: d["types"]["user_feedback"].update(schema_sha256="0" * 64))
    pipeline = Pipeline(SETTINGS, DownRegistry(), InMemorySink(), id_cache=cache)
    pipeline.start()
    try:
        assert not pipeline.started
        with pytest.raises(RegistryUnavailable):
            pipeline.export_logs(_request())
    finally:
        pipeline.shutdown(1.0)


def test_the_app_keeps_a_cache_only_for_the_registry_it_built_from_the_url(
    tmp_path: Path,
) -> None:
    settings = load_config(spool={"directory": tmp_path / "spool"})
    built = FeedbackApp(settings, sink=InMemorySink())
    assert built.pipeline.id_cache == tmp_path / "schema-ids.json"
    # A registry handed in (a test's double) is not the one ``registry.url`` names.
    assert FeedbackApp(settings, InMemoryRegistry(), InMemorySink()).pipeline.id_cache is None
