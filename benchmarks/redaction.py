"""Redaction cost per record (us): ``Redactor.redact_text`` on one free-text value.

Three sets: (a) the load generator's comments (``loadgen.COMMENTS``, as it sends them:
``"<comment> #<n>"``), (b) the PII strings of ``tests/data/pii/corpus.jsonl``, (c) its
look-alikes. Each worker process imports ``otlp_feedback`` from ``--code`` (a checkout), so two
trees can be compared; ``--compare OLD NEW`` runs them interleaved, ``--rounds`` times each,
and prints the median per set.

Run (before/after, on one machine)::

    git worktree add /tmp/old 271a6fa
    .venv/bin/python benchmarks/redaction.py --compare /tmp/old . --rounds 7

One tree only: ``.venv/bin/python benchmarks/redaction.py --code .``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "tests" / "data" / "pii" / "corpus.jsonl"
SETS = ("comments", "pii", "lookalikes")


def texts() -> dict[str, list[str]]:
    sys.path.insert(0, str(HERE))
    from loadgen import COMMENTS

    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return {
        "comments": [f"{comment} #{n}" for n in range(200) for comment in COMMENTS],
        "pii": [row["text"] for row in rows if row["kind"] == "pii"],
        "lookalikes": [row["text"] for row in rows if row["kind"] == "lookalike"],
    }


def measure(code: Path, min_seconds: float = 0.3) -> dict[str, float]:
    """us per text for each set, with ``otlp_feedback`` imported from ``code``."""
    sys.path.insert(0, str(code.resolve()))
    from otlp_feedback.config import RedactionConfig
    from otlp_feedback.validation.redaction import Redactor

    redactor = Redactor(RedactionConfig())
    result = {}
    for name, items in texts().items():
        for text in items:  # warm up (compiled patterns, metadata loaded on first use)
            redactor.redact_text(text)
        loops, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds:
            for text in items:
                redactor.redact_text(text)
            loops += 1
        result[name] = elapsed / (loops * len(items)) * 1e6
    return result


def compare(old: Path, new: Path, rounds: int) -> None:
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(rounds):
        for label, code in (("old", old), ("new", new)):
            out = subprocess.run(
                [sys.executable, __file__, "--code", str(code)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            runs[label].append(json.loads(out))
    sizes = {name: len(items) for name, items in texts().items()}
    print(f"median of {rounds} interleaved rounds, us per record")
    print("| set | texts | before | after |")
    print("|---|---|---|---|")
    for name in SETS:
        before = statistics.median(run[name] for run in runs["old"])
        after = statistics.median(run[name] for run in runs["new"])
        print(f"| {name} | {sizes[name]} | {before:.1f} | {after:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, help="a checkout to import otlp_feedback from")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare, args.rounds)
    else:
        print(json.dumps(measure(args.code or HERE.parent)))


if __name__ == "__main__":
    main()
