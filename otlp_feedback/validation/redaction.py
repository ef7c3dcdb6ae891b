"""PII redaction: scrub e-mail addresses, phone numbers, card numbers, SSNs and IP addresses
out of free text before it reaches Kafka.

Called by the pipeline on every validated event (``redact_event``) and on what a dead letter
carries (``redact_source``, ``redact_text`` for the reason). What is scrubbed: the event fields
named in ``redaction.fields`` (default ``comment``, ``explanation``) and the ``attributes``
values whose key matches a ``redaction.attribute_keys`` glob (case-insensitive).

Why on the validated event, not on the raw fields before validation: only events that will be
written pay for it; the values are already the exact strings that get encoded (attribute arrays
and maps stringified, control characters handled); the field names are the model's, which is
what ``redacted_fields`` reports; and the length limits judge what the sender sent. The cost:
an attribute value cut at ``validation.max_attribute_value_len`` may end in a fragment of a
token (``jane.doe@exa``) that no longer looks like one.

The detectors themselves (what they find, how a candidate is validated, the trigger each
declares) live in ``detectors``; a detector is tried on a text only when its trigger fires.
Configured ``extra_patterns`` run after them, on every text. Redacting twice changes nothing:
placeholders contain no digit, ``@`` or ``:``, and a text that changed is scanned again (items
glued together can hide one another until the first is replaced).

Thread-safety: safe to share; its configuration is fixed (the pipeline swaps whole instances
on reload) and its one cache is a dict of verdicts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Iterable
from typing import Any

from otlp_feedback.config import RedactionConfig
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.records import SourceRecord
from otlp_feedback.validation.detectors import Always, DetectorRule, builtin_detectors

REDACTED_FIELDS = "redacted_fields"
_MAX_PASSES = 4
_KEY_CACHE_SIZE = 4096

class Redactor:
    """Scrubs text per one ``RedactionConfig``. Disabled, every method returns its input."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self._fields = tuple(config.fields)
        # Replacements are literal text: backslashes escaped so that re.sub expands nothing.
        extra = tuple(
            DetectorRule(
                f"extra:{p.regex}",
                Always(),
                functools.partial(re.compile(p.regex).sub, p.replacement.replace("\\", "\\\\")),
            )
            for p in config.extra_patterns
        )
        self.detectors: tuple[DetectorRule, ...] = (*builtin_detectors(config), *extra)
        globs = [fnmatch.translate(glob) for glob in config.attribute_keys]
        self._keys = re.compile("|".join(globs), re.IGNORECASE) if globs else None
        # Apps send the same few keys on every event; remember the glob verdict per key.
        # (Dict reads and writes are atomic; a race at worst computes a verdict twice.)
        self._key_cache: dict[str, bool] = {}
        # The attribute keys the mapper reads the scrubbed fields from (feedback.comment, ...):
        # a dead letter keeps the record's attributes as sent, so those are scrubbed too.
        self._source_keys = frozenset(
            key
            for table in conv.FIELD_KEYS.values()
            for field, keys in table.items()
            if field in self._fields
            for key in keys
        )

    def redact_text(self, text: str) -> str:
        """``text`` with every detected item replaced by its placeholder (``[EMAIL]``, ...)."""
        if not self.enabled:
            return text
        # Detectors only match at token boundaries, and an item glued to the next one (no
        # space: "...0958+44 20...") hides the second until the first is a placeholder; so a
        # text that changed is scanned again, which makes redacting twice a no-op.
        for _ in range(_MAX_PASSES):
            clean = self._pass(text)
            if clean == text:
                break
            text = clean
        return text

    def _pass(self, text: str) -> str:
        for rule in self.detectors:
            if rule.trigger.fires(text):
                text = rule.scrub(text)
        return text

    def scrubs_attribute(self, key: str) -> bool:
        """Whether ``key`` matches a ``redaction.attribute_keys`` glob (case-insensitive)."""
        known = self._key_cache.get(key)
        if known is None:
            known = self._keys is not None and self._keys.match(key) is not None
            if len(self._key_cache) >= _KEY_CACHE_SIZE:  # keys are the senders': bound it
                self._key_cache.clear()
            self._key_cache[key] = known
        return known

    def redact_event(self, event: FeedbackEvent) -> tuple[FeedbackEvent, list[str]]:
        """The event with its free text scrubbed, and the fields that changed.

        Field names as in ``redacted_fields``: ``comment``, ``attributes.<key>``. The event is
        returned as is when nothing changed; else a copy with ``redacted_fields`` set when its
        model has that field.
        """
        if not self.enabled:
            return event, []
        values = event.__dict__
        update: dict[str, Any] = {}
        redacted: list[str] = []
        for name in self._fields:
            value = values.get(name)
            if isinstance(value, str) and (clean := self.redact_text(value)) != value:
                update[name] = clean
                redacted.append(name)
        attributes = event.attributes
        scrubbed: dict[str, str] | None = None
        for key, value in attributes.items():
            if self.scrubs_attribute(key) and (clean := self.redact_text(value)) != value:
                if scrubbed is None:
                    scrubbed = dict(attributes)
                scrubbed[key] = clean
                redacted.append(f"attributes.{key}")
        if not redacted:
            return event, []
        if scrubbed is not None:
            update["attributes"] = scrubbed
        if REDACTED_FIELDS in type(event).model_fields:
            update[REDACTED_FIELDS] = redacted
        # No re-validation: strings were replaced by strings. A placeholder may be a character
        # or two longer than what it replaced ("::1" -> "[IP]"); length limits judge what was sent.
        return event.model_copy(update=update), redacted

    def redact_source(self, source: SourceRecord) -> SourceRecord:
        """What a dead letter carries, scrubbed like an event: the string body and the values
        of matching attribute keys (strings, and strings inside arrays and maps)."""
        if not self.enabled:
            return source
        changes: dict[str, Any] = {}
        for name in ("record_attributes", "span_attributes", "resource_attributes"):
            attributes = getattr(source, name)
            clean = self._redact_attributes(attributes)
            if clean is not attributes:
                changes[name] = clean
        if source.body_text is not None:
            body = self.redact_text(source.body_text)
            if body != source.body_text:
                changes["body_text"] = body
        return dataclasses.replace(source, **changes) if changes else source

    def _redact_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for key, value in attributes.items():
            if key in self._source_keys or self.scrubs_attribute(key):
                clean = self._redact_value(value)
                if clean != value:
                    out = out if out is not None else dict(attributes)
                    out[key] = clean
        return out if out is not None else attributes

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, list):
            return [self._redact_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._redact_value(item) for key, item in value.items()}
        return value


def redacted_header(fields: Iterable[str], limit: int = 1024) -> bytes:
    """The ``redacted`` Kafka header: field names, comma-separated, clipped to ``limit`` bytes
    (attribute keys are the sender's and unbounded; the header must not push the record past
    ``kafka.message_max_bytes``)."""
    value = ",".join(fields).encode()
    return value if len(value) <= limit else value[: limit - 3] + b"..."
