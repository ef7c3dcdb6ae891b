"""The README's runnable blocks run as written against the embedded default, and print what
the README shows (``otlp_feedback.testing.readme`` says which blocks run).

They name the default ports (``localhost:4317``, ``:4318``; ``dev`` on 9092/8081), so the run
happens in a network namespace of its own (``unshare -n``), where those ports are free whatever
else runs on the machine: a driver there starts ``otlp-feedback dev``, runs each block in README
order, stops ``dev``, and reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]

DRIVER = textwrap.dedent(
    """
    import json, queue, signal, subprocess, sys, threading
    from pathlib import Path
    from otlp_feedback.testing.readme import blocks

    dev = subprocess.Popen(
        [sys.executable, "-m", "otlp_feedback.cli", "dev"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = queue.Queue()
    log = []
    def pump():
        for line in dev.stdout:
            log.append(line)
            lines.put(line)
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        if line is None:
            print(json.dumps({"dev": "".join(log)}))
            sys.exit(1)
        if "otlp-feedback dev is running" in line:
            break
    results = []
    for block in blocks(Path(sys.argv[1])):
        if not block.runnable:
            continue
        command = (
            [sys.executable, "-c", block.code]
            if block.language == "python"
            else ["bash", "-e", "-c", block.code]
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        results.append({
            "line": block.line, "language": block.language, "rc": done.returncode,
            "stdout": done.stdout, "stderr": done.stderr, "expected": block.expected,
        })
    dev.send_signal(signal.SIGTERM)
    dev.wait(timeout=60)
    print(json.dumps({"results": results, "dev": "".join(log), "dev_rc": dev.returncode}))
    """
)


def test_every_runnable_readme_block_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("curl") is None:
        pytest.skip("needs unshare (a network namespace) and curl")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no permission for a network namespace")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [
            "unshare",
            "-n",
            "bash",
            "-c",
            f'ip link set lo up && exec "{sys.executable}" "{driver}" "{ROOT / "README.md"}"',
        ],
        cwd=tmp_path,  # dev's data (.otlp-feedback/) lands here
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    results = report["results"]
    assert len(results) >= 5
    failed = [
        f"README line {r['line']} ({r['language']}), exit {r['rc']}:\n{r['stdout']}{r['stderr']}"
        + (f"expected:\n{chr(10).join(r['expected'])}" if r["expected"] else "")
        for r in results
        if r["rc"] != 0 or (r["expected"] and r["stdout"].strip().splitlines() != r["expected"])
    ]
    assert not failed, "\n\n".join(failed)
    # The consumer example prints the events the SDK example sent.
    consumer = next(
        r for r in results if "FeedbackConsumer" in r["stdout"] or "s-42" in r["stdout"]
    )
    assert "s-42: up 5.0" in consumer["stdout"]
    assert "gpt-4o: 812.5 ms" in consumer["stdout"]
    assert report["dev_rc"] == 0, report["dev"]
