"""The phone-number detector: candidate runs found by a regex, each judged by libphonenumber.

Used by ``detectors`` (which declares the trigger: a run of at least ``MIN_DIGITS`` digits and
``SEPARATORS``). Three steps, as in Presidio's recognizers (pattern -> validation):

1. **Candidate**: a maximal run of digits, single separators (`` .-/``) and parentheses, with
   an optional leading ``+``, at a token boundary (not glued to a word, a ``.``, ``+`` or
   ``-`` on the left, nor to a word character, ``:`` or ``@`` on the right), holding
   ``MIN_DIGITS``..``MAX_DIGITS`` digits. A bare run of digits is never a phone number (an
   epoch, an order id, a tracking number): it needs a ``+`` or a separator.
2. **Validation**: ``phonenumbers.PhoneNumberMatcher`` at ``Leniency.EXACT_GROUPING`` must find
   a number spanning the whole candidate: valid per libphonenumber's metadata, written with
   the national (trunk) prefix where that country's format needs it, and grouped as that
   country groups it (``020 7946 0321``, not ``2024-01-15 10``). A ``+`` number is judged
   once (its country code says which country); a national one for each region of
   ``redaction.phone_regions`` in turn, until one accepts it.
3. **Cost bound**: the matcher is pure Python (~150 us a call), so a national candidate is
   only handed to a region whose numbers it could be: its digits (or what remains after the
   region's national or international prefix) must match the pattern of a type of number
   (fixed line, mobile, toll free, ...) that the region's calling code issues. That is a
   necessary condition of the matcher's own validity check (``is_valid_number``), so the
   filter changes no verdict, only the number of calls. A text may spend at most
   ``MATCHER_CALLS_PER_TEXT`` calls; past that, what the pre-filter passes counts as a phone
   number (fail closed: more is redacted, nothing leaks), and a candidate repeated in one text
   is judged once.

Thread-safety: the detector holds compiled data only; ``PhoneNumberMatcher`` is created per
call (it is not thread-safe, the metadata it reads is immutable).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

PLACEHOLDER = "[PHONE]"
MIN_DIGITS = 8  # shorter national numbers exist, but 7 digits are too often something else
MAX_DIGITS = 17  # E.164's 15, plus a national trunk prefix and an Italian-style leading 0
SEPARATORS = " ().+-/"  # what may sit between the digits of one candidate (for the trigger)
LENIENCY = Leniency.EXACT_GROUPING
# A text full of phone-like runs must not cost seconds (a 4 KiB attribute of "06 1234 5678, "
# repeated took 0.4 s): past this many matcher calls (~150 us each), a candidate that the
# region pre-filter passes is taken for a phone number. Over-redaction under abuse, never a leak.
MATCHER_CALLS_PER_TEXT = 48

# Each step consumes a digit, or a separator / parenthesis that a digit follows; the steps
# start with distinct characters, so the scan is linear.
_CANDIDATE = re.compile(
    r"(?<![\w.+/-])[+(]?[0-9](?:[0-9]|[ ./-]\(?(?=[0-9])|\)[ ./-]?(?=[0-9])|\((?=[0-9]))*"
)
_NON_DIGITS = re.compile(r"[^0-9]")
# The token before a candidate, when one separator joins them: if it mixes letters and digits
# ("1Z 0X5 W87 88 5751 8567", a UPS number), the digits are the rest of that code.
_CODE_BEFORE = re.compile(r"(?:[^\W\d_]+[0-9]|[0-9]+[^\W\d_])\w*[ ./-]$")
_LOOKBACK = 24


@dataclasses.dataclass(frozen=True, slots=True)
class _Region:
    """What the pre-filter needs of one region: its code and a test on a candidate's digits."""

    code: str
    may_hold: Callable[[str], bool]


_NUMBER_TYPES = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


def _valid_patterns(region: str) -> list[str]:
    """The national-number patterns of each type of number ``region`` issues: a number that
    ``is_valid_number`` accepts matches one of them."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return []
    descs = (getattr(metadata, name, None) for name in _NUMBER_TYPES)
    return [d.national_number_pattern for d in descs if d is not None and d.national_number_pattern]


def _region(code: str) -> _Region:
    metadata = PhoneMetadata.metadata_for_region(code)
    assert metadata is not None  # the config model validates the codes
    calling_code = phonenumbers.country_code_for_region(code)
    general = re.compile(
        "|".join(
            f"(?:{pattern})"
            for region in phonenumbers.region_codes_for_country_code(calling_code)
            for pattern in _valid_patterns(region)
        )
    )
    national = (
        re.compile(metadata.national_prefix_for_parsing)
        if metadata.national_prefix_for_parsing
        else None
    )
    transform = metadata.national_prefix_transform_rule
    international = (
        re.compile(metadata.international_prefix) if metadata.international_prefix else None
    )

    def may_hold(digits: str) -> bool:
        if general.fullmatch(digits):
            return True
        idd = international.match(digits) if international is not None else None
        if idd and digits[idd.end() : idd.end() + 1] not in ("", "0"):
            return True  # "0044 20 ...": dialled from this region (a country code follows)
        if national is not None and (prefix := national.match(digits)):
            rest = digits[prefix.end() :]
            if general.fullmatch(rest):
                return True
            if transform and prefix.lastindex:
                expanded = prefix.expand(re.sub(r"\$(\d)", r"\\\1", transform))
                return general.fullmatch(expanded + rest) is not None
        return False

    return _Region(code, may_hold)


class PhoneDetector:
    """``scrub(text)``: every phone number in ``text`` replaced with ``[PHONE]``."""

    def __init__(self, regions: Iterable[str]) -> None:
        self._regions = tuple(_region(code) for code in regions)

    def scrub(self, text: str) -> str:
        out: list[str] = []
        last = 0
        budget = [MATCHER_CALLS_PER_TEXT]
        verdicts: dict[str, bool] = {}  # a text that repeats a number pays for it once
        for match in _CANDIDATE.finditer(text):
            start, end = match.span()
            after = text[end : end + 1]
            if after and (after.isalnum() or after in "_:@"):
                continue  # glued to what follows: part of an id, a time, an address
            candidate = match.group()
            if candidate.startswith("(") and ")" not in candidate:
                candidate, start = candidate[1:], start + 1  # "(call 020 ...)": not its paren
            if _CODE_BEFORE.search(text, max(start - _LOOKBACK, 0), start):
                continue
            verdict = verdicts.get(candidate)
            if verdict is None:
                verdict = verdicts[candidate] = self._is_phone(candidate, budget)
            if verdict:
                out += (text[last:start], PLACEHOLDER)
                last = end
        return "".join(out) + text[last:] if out else text

    def is_phone(self, candidate: str) -> bool:
        """Whether ``candidate`` (one run, as found by the candidate pattern) is one number."""
        return self._is_phone(candidate, [MATCHER_CALLS_PER_TEXT])

    def _is_phone(self, candidate: str, budget: list[int]) -> bool:
        digits = _NON_DIGITS.sub("", candidate)
        if not MIN_DIGITS <= len(digits) <= MAX_DIGITS or digits == candidate:
            return False
        if candidate.startswith("+"):
            regions: Iterable[str] = ("ZZ",)  # the country code decides
        else:
            regions = (region.code for region in self._regions if region.may_hold(digits))
        for region in regions:
            if budget[0] <= 0:
                return True  # out of budget: fail closed (the pre-filter passed it)
            budget[0] -= 1
            for found in PhoneNumberMatcher(candidate, region, leniency=LENIENCY):
                if found.start == 0 and found.end == len(candidate):
                    return True
        return False
