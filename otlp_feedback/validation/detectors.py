"""PII detectors: what each one finds, how it validates a candidate, and the trigger it declares.

Used by ``redaction.Redactor`` (which runs them) and ``native.build_plan`` (which compiles their
triggers into the C fast path's gate). A detector is tried on a text only when its **trigger**
fires: a cheap, declared condition that every match needs (an ``@`` for an e-mail address, a run
of digits and separators for a phone number). The trigger is part of the detector's semantics,
not an optimisation hidden inside it: the Python path and the native gate evaluate the same
declaration, so the fast path can never encode a text that a detector would have changed.

Trigger kinds (``native`` knows exactly these; anything else makes it defer every redactable
text to Python, with a warning and the ``deferred`` metric):

- ``AnyChar(chars)``: the text contains one of ``chars`` (ASCII).
- ``DigitRun(min_digits, separators)``: the text holds a run of ASCII digits and ``separators``
  with at least ``min_digits`` digits in it.
- ``Always()``: every text (configured ``extra_patterns``: a regex may match anything).

Placeholders (``[EMAIL]``, ...) hold no digit, ``@`` or ``:``, so a replacement never makes a
trigger fire that did not fire on the text as sent.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Callable

from otlp_feedback.config import Detector


@dataclasses.dataclass(frozen=True, slots=True)
class AnyChar:
    """Fires when the text contains any of ``chars`` (ASCII characters)."""

    chars: str

    def fires(self, text: str) -> bool:
        return any(char in text for char in self.chars)


@dataclasses.dataclass(frozen=True, slots=True)
class DigitRun:
    """Fires when the text holds a run of ASCII digits and ``separators`` that contains at
    least ``min_digits`` digits ("+44 (20) 7946-0958" is one run of 12 digits)."""

    min_digits: int
    separators: str

    def fires(self, text: str) -> bool:
        return _digit_run(self.min_digits, self.separators)(text) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Always:
    """Fires on every text."""

    def fires(self, text: str) -> bool:
        return True


Trigger = AnyChar | DigitRun | Always


@functools.cache
def _digit_run(min_digits: int, separators: str) -> Callable[[str], re.Match[str] | None]:
    # Digits and separators are disjoint classes, so the search stays linear.
    seps = f"[{re.escape(separators)}]*" if separators else ""
    return re.compile(f"[0-9](?:{seps}[0-9]){{{max(min_digits - 1, 0)}}}").search


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorRule:
    """One detector: tried on a text when ``trigger`` fires; ``scrub`` returns the text with
    every item it finds replaced by its placeholder (the text itself when it finds none)."""

    name: str
    trigger: Trigger
    scrub: Callable[[str], str]


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


def _sub(
    pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]
) -> Callable[[str], str]:
    return functools.partial(pattern.sub, replacement)


# Every digit-based item holds a run of digits and separators; these are the runs each needs.
_PHONE_SEPARATORS = " ().+-/"
# The order matters: e-mail first (an address may hold digits), IPs before phone numbers
# ("10.20.30.40" is not a phone), cards before SSNs and phones (their groups look alike).
BUILTIN: tuple[DetectorRule, ...] = (
    DetectorRule("email", AnyChar("@"), _sub(_EMAIL, "[EMAIL]")),
    DetectorRule("ip", AnyChar(":"), _sub(_IPV6, _ipv6)),
    DetectorRule("ip", DigitRun(4, "."), _sub(_IPV4, _ipv4)),
    DetectorRule("card", DigitRun(13, " -"), _sub(_CARD, _card)),
    DetectorRule("ssn", DigitRun(9, " -"), _sub(_SSN, "[SSN]")),
    DetectorRule("phone", DigitRun(8, _PHONE_SEPARATORS), _sub(_PHONE_INTL, _phone_intl)),
    DetectorRule("phone", DigitRun(10, _PHONE_SEPARATORS), _sub(_PHONE_US, "[PHONE]")),
)


def builtin_detectors(enabled: list[Detector]) -> tuple[DetectorRule, ...]:
    """The built-in detectors switched on, in the order they must run."""
    on = set(enabled)
    return tuple(rule for rule in BUILTIN if rule.name in on)
