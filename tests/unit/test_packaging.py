"""A wheel built from this repository carries the Avro schemas and finds them once installed, and
the native extension is built wherever it can be."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from otlp_feedback import native

REPO = Path(__file__).resolve().parents[2]


def c_compiler() -> str | None:
    """The compiler setup.py's ``build_ext`` calls (``$CC``, else the ``CC`` Python was built
    with, as setuptools' ``customize_compiler`` picks it), if it is installed."""
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "")
    return shutil.which(command[0]) if command else None


def test_the_native_extension_is_built_wherever_a_c_compiler_is() -> None:
    # setup.py lets a failed compile fall back to the pure-Python path without failing the
    # install; this is where a broken build surfaces instead. Not under the skipif of
    # test_native_primitives.py, which would skip it exactly when it should fail.
    compiler = c_compiler()
    python_h = Path(sysconfig.get_path("include")) / "Python.h"
    if compiler is None or not python_h.is_file():
        pytest.skip(
            f"cannot build C extensions here (compiler: {compiler}, {python_h} exists: "
            f"{python_h.is_file()}): the pure-Python path alone is expected"
        )
    assert native.AVAILABLE, (
        f"{compiler} and {python_h} are here but otlp_feedback._native did not import: the "
        "build failed (see the pip install log) and the pure-Python path is silently in charge"
    )


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


def test_the_license_is_a_pep_639_spdx_string_and_setuptools_is_new_enough_for_it() -> None:
    # The table form ({text = ...}) made setuptools warn three times per build; a string is
    # refused by setuptools before 77, so the build floor moves with it.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    (setuptools,) = (
        Requirement(r)
        for r in pyproject["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    )
    assert not setuptools.specifier.contains("76.1.0"), setuptools
    assert setuptools.specifier.contains("77.0.0"), setuptools
