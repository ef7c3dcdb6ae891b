"""A wheel built from this repository carries the Avro schemas and finds them once installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_bundles_every_schema_and_the_installed_package_loads_them(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("otlp_feedback-*.whl")
    expected = {
        f"otlp_feedback/_schemas/avro/{p.relative_to(REPO / 'schemas' / 'avro').as_posix()}"
        for p in (REPO / "schemas" / "avro").rglob("*.avsc")
    }
    with zipfile.ZipFile(wheel) as archive:
        bundled = {name for name in archive.namelist() if name.endswith(".avsc")}
        archive.extractall(tmp_path / "site")
    assert expected and bundled == expected

    # Imported from the unpacked wheel (no source checkout around it), it must use its copy.
    probe = (
        "from otlp_feedback.encoding.schemas import default_schemas_dir, load_schemas;"
        "print(default_schemas_dir());"
        "print(sum(len(v) for v in load_schemas().versions.values()))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,  # not the checkout: "-c" puts the working directory first on sys.path
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == [
        str(tmp_path / "site" / "otlp_feedback" / "_schemas" / "avro"),
        str(len(expected)),
    ]
