"""PII redaction: scrub e-mail addresses, phone numbers, card numbers, SSNs and IP addresses
out of free text before it reaches Kafka.

Called by the pipeline on every validated event (``redact_event``), by the validator to quote
values in rejection reasons (``quote``) and by the dead-letter encoder (``letter_scrubber``,
``redact_text`` for the reason). What is scrubbed: the event fields
named in ``redaction.fields`` (default ``comment``, ``explanation``) and the ``attributes``
values whose key matches a ``redaction.attribute_keys`` glob (case-insensitive).

Why on the validated event, not on the raw fields before validation: only events that will be
written pay for it; the values are already the exact strings that get encoded (attribute arrays
and maps stringified, control characters handled); the field names are the model's, which is
what ``redacted_fields`` reports; and the length limits judge what the sender sent.

Wherever text is shortened, the cut rule (``cut_text``) applies: scrub a bounded window past
the limit, cut, drop the token the cut split, so no fragment of an item survives at the edge.
An attribute value this redactor covers reaches ``redact_event`` as that window (the validator
keeps it) and is cut here, after scrubbing.

The detectors themselves (what they find, how a candidate is validated, the trigger each
declares) live in ``detectors``; a detector is tried on a text only when its trigger fires.
Configured ``extra_patterns`` run after them, on every text. Redacting twice changes nothing:
placeholders contain no digit, ``@`` or ``:``, and a text that changed is scanned again (items
glued together can hide one another until the first is replaced).

Thread-safety: safe to share; its configuration is fixed (the pipeline swaps whole instances
on reload) and its one cache is a dict of verdicts.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable
from typing import Any

from otlp_feedback.config import RedactionConfig
from otlp_feedback.cutrule import CUT_MARGIN, cut_text, drop_partial_token
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.mapping import convention as conv
from otlp_feedback.validation.detectors import Always, DetectorRule, builtin_detectors

REDACTED_FIELDS = "redacted_fields"
_MAX_PASSES = 4
_KEY_CACHE_SIZE = 4096


class Redactor:
    """Scrubs text per one ``RedactionConfig``. Disabled, every method returns its input."""

    def __init__(self, config: RedactionConfig, attribute_limit: int | None = None) -> None:
        """``attribute_limit``: ``validation.max_attribute_value_len``; the validator keeps a
        longer window of the values this redactor covers, which ``redact_event`` scrubs and
        then cuts to the limit (the cut rule). None: values are not cut here."""
        self.config = config
        self.attribute_limit = attribute_limit
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
        # a dead letter keeps the record's attributes as sent, so those are scrubbed too; and
        # the fields' own names, which the events API's JSON sends them under (comment, ...).
        self._source_keys = frozenset(
            key
            for table in conv.FIELD_KEYS.values()
            for field, keys in table.items()
            if field in self._fields
            for key in keys
        ) | frozenset(self._fields)

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

    def cut(self, text: str, limit: int) -> str:
        """``text`` scrubbed and cut to at most ``limit`` characters by the cut rule
        (``cut_text``): no fragment of an item survives at the edge."""
        return cut_text(text, limit, self.redact_text if self.enabled else None)

    def quote(self, value: object, limit: int) -> str:
        """``repr(value)`` as a message may show it: scrubbed, cut to ``limit`` characters by
        the cut rule (``...`` marks a cut). Every value a rejection reason quotes goes through
        here, covered by redaction or not: reasons reach partial_success, logs and headers."""
        if isinstance(value, str):  # bounded cost, whatever the length sent
            value = value[: limit + CUT_MARGIN]
        text = repr(value)  # repr escapes control characters
        shown = self.cut(text, limit)
        return shown + "..." if len(text) > limit else shown

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
        limit = self.attribute_limit
        for key, value in attributes.items():
            if not self.scrubs_attribute(key):
                continue
            clean = self.redact_text(value)
            if clean != value:
                redacted.append(f"attributes.{key}")
            if limit is not None and len(value) > limit:  # the validator kept a window
                clean = drop_partial_token(clean[:limit], clean[limit:])
            if clean != value:
                if scrubbed is None:
                    scrubbed = dict(attributes)
                scrubbed[key] = clean
        if not redacted and scrubbed is None:
            return event, []
        if scrubbed is not None:
            update["attributes"] = scrubbed
        if REDACTED_FIELDS in type(event).model_fields:
            update[REDACTED_FIELDS] = redacted
        # No re-validation: strings were replaced by strings. A placeholder may be a character
        # or two longer than what it replaced ("::1" -> "[IP]"); length limits judge what was sent.
        return event.model_copy(update=update), redacted

    def letter_scrubber(self, key: str | None) -> Callable[[str], str] | None:
        """How a dead letter scrubs the strings of attribute ``key`` (None: of the body):
        ``redact_text`` for the body, the attribute keys the scrubbed fields are read from, the
        scrubbed fields' own names (the events API's JSON keys) and keys matching
        ``attribute_keys``; None (kept as sent) for the rest."""
        if not self.enabled:
            return None
        if key is None or key in self._source_keys or self.scrubs_attribute(key):
            return self.redact_text
        return None
