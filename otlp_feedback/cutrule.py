"""The cut rule, the one way text is shortened before it leaves the process (``cut_text``).

A base module: the mapping quotes what a sender sent with it (the events API's problems), the
validation, redaction and dead-letter stages with a scrubber. Cutting a value in the middle of
an item (an e-mail address, a phone number) would leave a fragment no detector recognises;
the rule drops the token a cut splits, and scrubs a window past the cut first when given a
scrubber, so no fragment of an item survives at the edge.
"""

from __future__ import annotations

from collections.abc import Callable

# The cut rule's window reaches this far past the cut: further than any item a detector can
# match reaches (an e-mail address is at most 254 characters, a phone or card number < 40).
CUT_MARGIN = 256


def drop_partial_token(head: str, rest: str) -> str:
    """``head`` (text cut before ``rest``) without the token the cut split, if any.

    A token is a run of non-whitespace characters. One longer than ``CUT_MARGIN`` (counting
    both sides of the cut) is kept as cut: no item a detector matches is that long, and a cut
    into a long base64, JSON or URL value should not empty it.
    """
    if not head or not rest or head[-1].isspace() or rest[0].isspace():
        return head
    end = len(head)
    stop = max(end - CUT_MARGIN, 0)
    while end > stop and not head[end - 1].isspace():
        end -= 1
    after = 0
    while after < len(rest) and after <= CUT_MARGIN and not rest[after].isspace():
        after += 1
    if len(head) - end + after > CUT_MARGIN:
        return head
    return head[:end]


def cut_text(text: str, limit: int, scrub: Callable[[str], str] | None = None) -> str:
    """The cut rule, the one way text is shortened before it leaves the process.

    ``text`` at most ``limit`` characters long: a window of ``limit + CUT_MARGIN`` characters is
    cut first (so the cost is bounded by the limit, never by what was sent), scrubbed by
    ``scrub`` when given, cut at ``limit``, and the token the cut split is dropped. Scrubbing
    the window rather than the cut text means an item the cut splits ("4111 1111 11") is
    recognised whole and replaced, and dropping the split token removes what is left of a
    placeholder or of an item longer than the margin.
    """
    if len(text) <= limit:
        return scrub(text) if scrub is not None else text
    window = text[: limit + CUT_MARGIN]
    if scrub is not None:
        window = scrub(window)
    return drop_partial_token(window[:limit], window[limit:])
