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

Each detector errs toward keeping text that merely looks like PII, because over-redaction
destroys feedback: card numbers must pass the Luhn check, SSNs the area/group/serial rules,
IPs ``ipaddress``; US phone numbers need separators (a bare 10-digit run is as likely an epoch
timestamp or an order id). Text with no digit, ``@`` or ``:`` skips the built-in detectors, and
text without a run of seven digits and separators skips the digit-based ones. Redacting twice
changes nothing: placeholders contain no digit, ``@`` or ``:``, and a text that changed is
scanned again (items glued together can hide one another until the first is replaced).
Worst case, text built to trigger every detector costs a few milliseconds per 4 KiB.

Thread-safety: safe to share; its configuration is fixed (the pipeline swaps whole instances
on reload) and its one cache is a dict of verdicts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from otlp_feedback.config import Detector, RedactionConfig
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.mapping import convention as conv
from otlp_feedback.mapping.records import SourceRecord

REDACTED_FIELDS = "redacted_fields"
_MAX_PASSES = 4
_KEY_CACHE_SIZE = 4096

_TRIGGER = re.compile(r"[0-9@:]")
# Every digit-based item (IPv4, card, SSN, phone) holds a span of at least seven digits and
# separators, starting and ending with a digit; "order 12345" or "5 stars" has none.
_DIGITS_SPAN = re.compile(r"[0-9][0-9 ().+-]{5,}[0-9]")

# Matches start only at a token boundary, so a long run of word characters costs one attempt,
# not one per position (and dots delimit the domain labels, so backtracking stays linear).
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# IPv6 candidates (``ipaddress`` decides); an embedded IPv4 tail is part of the address.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?!\w|\.\w)"
)
# Exactly four parts: "1.2.3.4.5" (a version) is not an address.
_IPV4 = re.compile(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\w|\.[0-9])")
# 13-19 digits in one run, or groups (first of four digits) joined by one repeated separator.
_CARD = re.compile(
    r"(?<![\w-])(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{3,6}(?:\1[0-9]{3,6}){1,8})(?!\w)"
)
_SSN = re.compile(r"(?<![\w-])(?!000|666|9)[0-9]{3}([ -])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}(?![\w-])")
# International: "+", country code, then digit groups; the digit count (8-15, E.164) decides.
# Each group is atomic so that a long digit run cannot be split in exponentially many ways.
# A digit may precede the "+" (numbers glued together), a letter may not ("id+4420...").
_PHONE_INTL = re.compile(
    r"(?<![^\W\d])(?<!\+)\+[1-9][0-9]{0,2}(?>[ .-]?\([0-9]{1,4}\)|[ .-]?[0-9]+)+"
)
# US/NANP: area code and exchange start 2-9, separators (or parentheses) required.
_PHONE_US = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])"
    r"[2-9][0-9]{2}[ .-][0-9]{4}(?![\w-]|\.[0-9])"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes. ``digits`` is ASCII 0-9."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    text, sep = match.group(), match.group(1)
    groups = text.split(sep) if sep else [text]
    # The leftmost, then longest, run of whole groups that is a card: "2024 4111 1111 1111
    # 1111" is a year and a card, and only the card goes.
    for start in range(len(groups)):
        ends, digits = [], 0
        for end in range(start, len(groups)):
            digits += len(groups[end])
            if digits > 19:
                break
            if digits >= 13:
                ends.append(end + 1)
        for end in reversed(ends):
            if luhn_valid("".join(groups[start:end])):
                return (sep or "").join([*groups[:start], "[CARD]", *groups[end:]])
    return text


def _ipv4(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv4Address(match.group())
    except ValueError:  # 999.1.1.1, leading zeros
        return match.group()
    return "[IP]"


def _ipv6(match: re.Match[str]) -> str:
    text = match.group()
    for candidate in (text, text.rstrip(":")):  # "fe80::1:" ends a clause, not an address
        if any(c.isalnum() for c in candidate):  # a lone "::" is punctuation here
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            return "[IP]" + text[len(candidate) :]
    return text


def _phone_intl(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group())
    return "[PHONE]" if 8 <= digits <= 15 else match.group()


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    needs: str  # what the text must contain for the rule to be tried: "@", ":" or "digits"


# The order matters: e-mail first (an address may hold digits), IPs before phone numbers
# ("10.20.30.40" is not a phone), cards before SSNs and phones (their groups look alike).
_DETECTORS: dict[Detector, tuple[_Rule, ...]] = {
    "email": (_Rule(_EMAIL, "[EMAIL]", "@"),),
    "ip": (_Rule(_IPV6, _ipv6, ":"), _Rule(_IPV4, _ipv4, "digits")),
    "card": (_Rule(_CARD, _card, "digits"),),
    "ssn": (_Rule(_SSN, "[SSN]", "digits"),),
    "phone": (_Rule(_PHONE_INTL, _phone_intl, "digits"), _Rule(_PHONE_US, "[PHONE]", "digits")),
}


class Redactor:
    """Scrubs text per one ``RedactionConfig``. Disabled, every method returns its input."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self._fields = tuple(config.fields)
        on = set(config.detectors)
        self._builtin = tuple(
            rule for name, rules in _DETECTORS.items() if name in on for rule in rules
        )
        # Replacements are literal text: backslashes escaped so that re.sub expands nothing.
        self._extra = tuple(
            (re.compile(p.regex), p.replacement.replace("\\", "\\\\"))
            for p in config.extra_patterns
        )
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
        if self._builtin and _TRIGGER.search(text) is not None:
            digits = _DIGITS_SPAN.search(text) is not None
            for rule in self._builtin:
                if digits if rule.needs == "digits" else rule.needs in text:
                    text = rule.pattern.sub(rule.replacement, text)
        for pattern, replacement in self._extra:
            text = pattern.sub(replacement, text)
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
