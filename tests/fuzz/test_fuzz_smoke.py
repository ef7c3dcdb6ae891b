"""A short coverage-guided fuzz run of decode -> map -> validate -> encode, as part of the suite.

Runs ``fuzz_decode_map_validate.py`` under libFuzzer (atheris) from the seed corpus for a bounded
time and number of inputs; any exception or broken invariant in the harness is a crash, and fails
the test with libFuzzer's report (the crashing input is saved under pytest's tmp_path). Skipped
when atheris is not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).parent
HARNESS = HERE / "fuzz_decode_map_validate.py"
SEEDS = HERE / "corpus"
DICTIONARY = HERE / "convention.dict"
MAX_SECONDS = 20
MAX_RUNS = 500_000


def test_fuzzing_decode_map_validate_finds_no_crash(tmp_path: Path) -> None:
    found = tmp_path / "found"  # libFuzzer adds new inputs to the first corpus directory
    found.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTLP_FEEDBACK_")}
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(found),
            str(SEEDS),
            f"-dict={DICTIONARY}",
            f"-max_total_time={MAX_SECONDS}",
            f"-runs={MAX_RUNS}",
            "-max_len=8192",
            "-timeout=10",  # seconds per input: a hang is a finding too
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=MAX_SECONDS + 60,
        check=False,
    )
    # The harness's traceback if it raised, else the end of libFuzzer's output.
    start = result.stderr.find("=== Uncaught Python exception")
    report = result.stderr[start : start + 6000] if start >= 0 else result.stderr[-6000:]
    crashes = sorted(path.name for path in tmp_path.glob("*-*") if path.is_file())
    assert result.returncode == 0, report
    assert not crashes, report
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done is not None, report
    assert int(done.group(1)) >= len(list(SEEDS.iterdir())), report  # it really ran
