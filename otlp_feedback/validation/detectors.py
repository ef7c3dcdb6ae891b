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
- ``DigitRun(min_digits, separators, min_separators=0)``: the text holds a run of ASCII digits
  and ``separators`` with at least ``min_digits`` digits and ``min_separators`` separators in
  it (an IPv4 address needs four digits and three dots: "2024" alone does not fire it).
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

from otlp_feedback.config import RedactionConfig
from otlp_feedback.validation import phones
from otlp_feedback.validation.phones import PhoneDetector


@dataclasses.dataclass(frozen=True, slots=True)
class AnyChar:
    """Fires when the text contains any of ``chars`` (ASCII characters)."""

    chars: str

    def fires(self, text: str) -> bool:
        return any(char in text for char in self.chars)


@dataclasses.dataclass(frozen=True, slots=True)
class DigitRun:
    """Fires when the text holds a run of ASCII digits and ``separators`` that contains at
    least ``min_digits`` digits and ``min_separators`` separators ("+44 (20) 7946-0958" is one
    run of 12 digits and 5 separators)."""

    min_digits: int
    separators: str
    min_separators: int = 0

    def fires(self, text: str) -> bool:
        if _digit_run(self.min_digits, self.separators)(text) is None:
            return False
        if self.min_separators <= 0:
            return True
        # Rare (the digits are there): count per maximal run.
        for run in _runs(self.separators)(text):
            separators = len(run.translate(_NO_DIGITS))
            if len(run) - separators >= self.min_digits and separators >= self.min_separators:
                return True
        return False


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


_NO_DIGITS = str.maketrans("", "", "0123456789")


@functools.cache
def _runs(separators: str) -> Callable[[str], list[str]]:
    """The maximal runs of ASCII digits and ``separators`` in a text."""
    return re.compile(f"[0-9{re.escape(separators)}]+").findall


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorRule:
    """One detector: tried on a text when ``trigger`` fires; ``scrub`` returns the text with
    every item it finds replaced by its placeholder (the text itself when it finds none)."""

    name: str
    trigger: Trigger
    scrub: Callable[[str], str]


# Matches start only at a token boundary, so a long run of word characters costs one attempt,
# not one per position (and dots delimit the domain labels, so backtracking stays linear).
# The local part is a dot-atom ("o'brien" and "+tags" included) or a quoted string
# ("john doe"); the domain a host name or an address literal ([192.0.2.10], [IPv6:...]), which
# ``_email`` validates with ``ipaddress``.
_EMAIL = re.compile(
    r"(?:(?<![\w.%+-])[\w.%+-][\w.%+'-]*|\"(?:[^\"\\\r\n]|\\.){1,64}\")@"
    r"(?:[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}|\[(?:IPv6:)?([0-9A-Fa-f:.]{2,45})\])"
)
# IPv6 candidates (``ipaddress`` decides); an embedded IPv4 tail is part of the address.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?!\w|\.\w)"
)
# Exactly four parts: "1.2.3.4.5" (a version) is not an address.
_IPV4 = re.compile(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\w|\.[0-9])")
# 13-19 digits in one run, or groups (the first of four digits, the others of two to six) each
# joined by one space, dash or dot ("4111 1111-1111 1111", "3056 9309 0259 04"). Not after a
# "+" (a phone number) nor inside an id.
_CARD = re.compile(
    r"(?<![\w+-])(?:[0-9]{13,19}|[0-9]{4}[ .-][0-9]{2,6}(?:[ .-][0-9]{2,6}){1,8})(?!\w)"
)
_CARD_SEPARATOR = re.compile(r"([ .-])")
# Issuer ranges (IIN prefixes) and the lengths each issues: (first prefix, last prefix,
# lengths). A Luhn-valid number outside them (a FedEx or USPS number, an epoch in ms) is not a
# card; as Presidio's credit-card pattern, only the networks in use are listed.
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
    ("5018", "5018", frozenset(range(13, 20))),  # Maestro
    ("5020", "5020", frozenset(range(13, 20))),
    ("5038", "5038", frozenset(range(13, 20))),
    ("5893", "5893", frozenset(range(13, 20))),
    ("6304", "6304", frozenset(range(13, 20))),
    ("6759", "6763", frozenset(range(13, 20))),
)


# US social security numbers: area (not 000, 666, 9xx), group (not 00), serial (not 0000).
def _ssn_parts(sep: str, sep2: str) -> str:
    return rf"(?!000|666|9)[0-9]{{3}}{sep}(?!00)[0-9]{{2}}{sep2}(?!0000)[0-9]{{4}}"


_SSN = re.compile(r"(?<![\w-])" + _ssn_parts("([ -])", r"\1") + r"(?![\w-])")
# Nine bare digits are an SSN only with a context word nearby (Presidio's context step): the
# same digits are as often an order id or a phone extension.
_SSN_BARE = re.compile(r"(?<![\w-])" + _ssn_parts("", "") + r"(?![\w-])")
_SSN_CONTEXT = re.compile(
    r"(?<![^\W\d_])(?:ssns?|ss ?#|social[ -]?security|soc\.? ?sec)(?![^\W\d_])", re.IGNORECASE
)
_SSN_CONTEXT_BEFORE = 40  # characters: about five words, as Presidio's context window
_SSN_CONTEXT_AFTER = 24


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes. ``digits`` is ASCII 0-9."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_issued(digits: str) -> bool:
    """Whether ``digits`` lies in a card network's issuer range with a length it issues."""
    return any(
        len(digits) in lengths and first <= digits[: len(first)] <= last
        for first, last, lengths in _ISSUERS
    )


def _card(match: re.Match[str]) -> str:
    parts = _CARD_SEPARATOR.split(match.group())
    groups, seps = parts[::2], [*parts[1::2], ""]
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
            number = "".join(groups[start:end])
            if card_issued(number) and luhn_valid(number):
                head = "".join(g + s for g, s in zip(groups[:start], seps, strict=False))
                tail = "".join(s + g for s, g in zip(seps[end - 1 :], groups[end:], strict=False))
                return f"{head}[CARD]{tail}"
    return match.group()


def _ssn(text: str) -> str:
    text = _SSN.sub("[SSN]", text)
    if not _SSN_CONTEXT.search(text):
        return text

    def bare(match: re.Match[str]) -> str:
        start = max(match.start() - _SSN_CONTEXT_BEFORE, 0)
        window = text[start : match.end() + _SSN_CONTEXT_AFTER]
        return "[SSN]" if _SSN_CONTEXT.search(window) else match.group()

    return _SSN_BARE.sub(bare, text)


def _ipv4_valid(text: str) -> bool:
    # Octets of up to three digits, each at most 255; leading zeros allowed (192.168.001.010
    # is how some tools print an address; ``ipaddress`` refuses it as ambiguous octal).
    return all(int(octet) <= 255 for octet in text.split("."))


def _ipv4(match: re.Match[str]) -> str:
    return "[IP]" if _ipv4_valid(match.group()) else match.group()


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


def _email(match: re.Match[str]) -> str:
    literal = match.group(1)
    if literal is not None:  # an address literal: an IPv4 or IPv6 address, or no e-mail
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            if not (literal.count(".") == 3 and literal.replace(".", "").isdigit()
                    and _ipv4_valid(literal)):  # fmt: skip
                return match.group()
    return "[EMAIL]"


def _sub(
    pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]
) -> Callable[[str], str]:
    return functools.partial(pattern.sub, replacement)


# The order matters: e-mail first (an address may hold digits, an IP literal), IPs before phone
# numbers ("10.20.30.40" is not a phone), cards before SSNs and phones (their groups look alike).
def builtin_detectors(config: RedactionConfig) -> tuple[DetectorRule, ...]:
    """The built-in detectors switched on in ``config``, in the order they must run."""
    phone = PhoneDetector(config.phone_regions)
    rules = (
        DetectorRule("email", AnyChar("@"), _sub(_EMAIL, _email)),
        DetectorRule("ip", AnyChar(":"), _sub(_IPV6, _ipv6)),
        DetectorRule("ip", DigitRun(4, ".", min_separators=3), _sub(_IPV4, _ipv4)),
        DetectorRule("card", DigitRun(13, " .-"), _sub(_CARD, _card)),
        DetectorRule("ssn", DigitRun(9, " -"), _ssn),
        DetectorRule("phone", DigitRun(phones.MIN_DIGITS, phones.SEPARATORS), phone.scrub),
    )
    on = set(config.detectors)
    return tuple(rule for rule in rules if rule.name in on)
