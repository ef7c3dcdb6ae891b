"""The README's test command collects every folder in one session (rootdir-relative imports,
no packages), so two test files with one basename break collection for the whole suite: a
folder's own run does not show it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py") if "node_modules" not in p.parts)
    assert not [name for name, n in names.items() if n > 1]
