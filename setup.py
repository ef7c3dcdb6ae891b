"""Build hook: bundle the repository's Avro schemas into the package.

``schemas/avro`` at the top of the repository is the source of truth (the registry tooling and
the README point there). A wheel carries a copy as ``otlp_feedback/_schemas/avro``, where
``encoding.schemas.default_schemas_dir`` looks when the package is not run from a checkout
(``pip install .``, container images). Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "avro"


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        if SCHEMAS.is_dir():
            target = Path(self.build_lib) / "otlp_feedback" / "_schemas" / "avro"
            shutil.copytree(SCHEMAS, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithSchemas})
