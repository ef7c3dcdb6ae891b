"""The PII corpus end to end: the real OTel SDK sends every corpus string in every carrier that
redaction covers, through the native and the Python path, into the real broker; no PII string
and no fragment of one reaches a Kafka byte (event and dead-letter values, keys, headers) or the
receiver's log, and every look-alike arrives unchanged.

Carriers per PII string: the comment attribute, the string body (-> comment), an evaluator's
explanation, a covered attribute (``app.user_message``), a covered attribute cut at
``validation.max_attribute_value_len`` with the item straddling the cut, and two comments over
1,000 characters (rejected, dead-lettered, the reason quoting the comment) with the item at the
start and straddling the 60-character quote.

(Each long variant embeds the entry's whole text, so an item that needs context words, a bare
SSN, has them.) A **fragment** of an item is any 6-character window of it (as written, compared
ignoring case) that holds at least three digits, an ``@`` or a ``:``: what is left of a card,
phone, SSN, IP or e-mail address when a cut or a partial match leaves part of it ("4111 1",
"SMITH@", "db8::7").
Each record is scanned for its own item's fragments (it carries its corpus index), after
masking what the receiver and the SDK write there in hex or decimal (UUIDs: event ids and the
SDK's random ``service.instance.id``; digests; ``time_unix_nano``), which could otherwise
contain a digit window by chance ("...6255-3..." in a UUID); the log is scanned
after masking the receiver's own loopback endpoints (``127.0.0.1:<port>``), which it logs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import read_raw
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.events import EVENT_TYPES

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parents[1] / "data" / "pii" / "corpus.jsonl"
FILLER = "word " * 2000
INDEX_KEY = "test.corpus_index"
CARRIER_KEY = "test.carrier"
_MASKS = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40,}"
    rb'|"time_unix_nano":[0-9]+|"length":[0-9]+'
)


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def fragments(item: str) -> set[str]:
    item = item.lower()
    windows = {item[i : i + 6] for i in range(max(len(item) - 5, 1))}
    return {w for w in windows if sum(c.isdigit() for c in w) >= 3 or "@" in w or ":" in w} | {item}


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_capture() -> Iterator[LogCapture]:
    capture = LogCapture()
    loggers = [logging.getLogger(), logging.getLogger("otlp_feedback.audit")]
    for logger in loggers:
        logger.addHandler(capture)
    yield capture
    for logger in loggers:
        logger.removeHandler(capture)


def lead(length: int) -> str:
    """Filler text of ``length`` characters ending in a space ("" for 0 or less)."""
    return FILLER[: length - 1] + " " if length > 0 else ""


def emit_corpus(port: int, entries: list[dict[str, Any]], limit: int) -> int:
    """Every entry in every carrier; returns how many records were sent."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "corpus"}))
    exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=60)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=100_000, max_export_batch_size=256)
    )
    logger = provider.get_logger("corpus")
    sent = 0

    def feedback(index: int, carrier: str, attributes: dict[str, Any], **kw: Any) -> None:
        nonlocal sent
        tags = {INDEX_KEY: str(index), CARRIER_KEY: carrier, "session.id": f"s-{index}"}
        logger.emit(
            event_name=kw.pop("event_name", "feedback.user_feedback"),
            attributes={**tags, **attributes},
            **kw,
        )
        sent += 1

    for index, entry in enumerate(entries):
        text, item = entry["text"], entry["pii"]
        feedback(index, "comment", {"feedback.comment": text})
        feedback(index, "body", {"feedback.rating": 3}, body=text)
        feedback(
            index,
            "explanation",
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.5,
                "gen_ai.evaluation.explanation": text,
            },
            event_name="gen_ai.evaluation.result",
        )
        feedback(index, "attribute", {"feedback.rating": 3, "app.user_message": text})
        if entry["kind"] != "pii":
            continue
        # The entry's text (the item with its context words) placed so that the item straddles
        # the cut, after filler ending in a space.
        middle = text.index(item) + len(item) // 2
        straddle = lead(limit - middle) + text + " " + FILLER
        feedback(index, "cut attribute", {"feedback.rating": 3, "app.user_message": straddle})
        for offset in (0, 57 - middle):
            long_comment = lead(offset) + text + " " + FILLER[:1000]
            feedback(index, "over-long comment", {"feedback.comment": long_comment})
    assert provider.force_flush(120_000)
    provider.shutdown()
    return sent


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_no_corpus_pii_reaches_kafka_or_the_log_and_look_alikes_arrive_unchanged(
    native: bool,
    make_settings: Callable[..., Settings],
    registry_url: str,
    log_capture: LogCapture,
) -> None:
    settings = make_settings(
        receiver={"endpoint": "127.0.0.1:0", "native_fast_path": native},
        rate_limit={"enabled": False},
    )
    entries = corpus()
    limit = settings.validation.max_attribute_value_len
    with FeedbackApp(settings) as app:
        sent = emit_corpus(app.port, entries, limit)
        stats = app.pipeline.stats
        assert stats.rejected + stats.accepted == sent
        if native:
            assert stats.native_events > 0  # the look-alikes without a trigger went natively
        assert settings.kafka.dlq_topic is not None
        topics = [*(settings.kafka.topic_for(t) for t in EVENT_TYPES), settings.kafka.dlq_topic]
        messages = read_raw(settings, topics, sent, timeout=120)
        assert len(messages) == sent

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    leaks: list[tuple[str, str, str]] = []
    arrived: dict[tuple[int, str], str] = {}
    letters = 0
    for msg in messages:
        blob = b"\n".join([msg.value(), msg.key() or b"", *(v for _, v in msg.headers() or [])])
        blob = _MASKS.sub(b"#", blob).lower()
        if msg.topic() == settings.kafka.dlq_topic:
            letters += 1
            letter = json.loads(msg.value())
            index = int(letter["attributes"][INDEX_KEY])
            carrier = letter["attributes"][CARRIER_KEY]
            assert carrier == "over-long comment", letter["reason"]
        else:
            value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            index = int(value["attributes"][INDEX_KEY])
            carrier = value["attributes"][CARRIER_KEY]
            shown = value.get("explanation") or value.get("comment") or ""
            arrived[(index, carrier)] = (
                value["attributes"]["app.user_message"] if "attribute" in carrier else shown
            )
        entry = entries[index]
        if entry["kind"] == "pii":
            found = [f for f in fragments(entry["pii"]) if f.encode() in blob]
            leaks.extend((entry["pii"], carrier, f) for f in found)
    assert not leaks, leaks[:20]
    pii = [e for e in entries if e["kind"] == "pii"]
    assert letters == 2 * len(pii)

    changed = [
        (entry["text"], carrier, arrived[(index, carrier)])
        for index, entry in enumerate(entries)
        if entry["kind"] != "pii"
        for carrier in ("comment", "body", "explanation", "attribute")
        if arrived[(index, carrier)] != entry["text"]
    ]
    assert not changed, changed[:20]

    log = re.sub(r"127\.0\.0\.1:[0-9]+", "#", "\n".join(log_capture.lines)).lower()
    logged = [(e["pii"], f) for e in pii for f in fragments(e["pii"]) if f in log]
    assert not logged, logged[:20]
