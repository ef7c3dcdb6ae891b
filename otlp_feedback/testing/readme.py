"""The README's code blocks, for the docs tests: which run, and what they say they print.

Every fenced block names its language. ``python`` and ``sh`` blocks are runnable: the docs
test runs each, in README order, as written, against the embedded default (``otlp-feedback
dev`` on its default ports). A block preceded by ``<!-- docs-test: not run (why) -->`` is
not. Other languages (``text`` for sample sessions and diagrams, ``yaml`` fragments, ``js``,
which ``tests/integration/test_js_sdk.py`` runs) are never run. In a ``sh`` block, the ``# ``
comment lines right after a command are what it prints (``expected``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNNABLE = ("python", "sh")
LANGUAGES = (*RUNNABLE, "text", "yaml", "js")
NOT_RUN = "<!-- docs-test: not run"
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    runnable: bool

    @property
    def expected(self) -> list[str]:
        """What a ``sh`` block says it prints: its ``# `` lines after the first command."""
        if self.language != "sh":
            return []
        lines = self.code.splitlines()
        first = next((i for i, text in enumerate(lines) if not text.startswith("#")), len(lines))
        return [text[2:] for text in lines[first:] if text.startswith("# ")]


def blocks(readme: Path) -> list[Block]:
    """The fenced blocks of ``readme``, in order."""
    lines = readme.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        language = fence.group(1)
        marked = i > 0 and lines[i - 1].startswith(NOT_RUN)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(i + 1, language, code, language in RUNNABLE and not marked))
        i = end + 1
    return found
