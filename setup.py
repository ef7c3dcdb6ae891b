"""Build hooks: bundle the repository's Avro schemas into the package, and compile the native
fast path.

``schemas/avro`` at the top of the repository is the source of truth (the registry tooling and
the README point there). A wheel carries a copy as ``otlp_feedback/_schemas/avro``, where
``encoding.schemas.default_schemas_dir`` looks when the package is not run from a checkout
(``pip install .``, container images).

``otlp_feedback/_native.c`` is the logs hot path in C (``otlp_feedback.native``). It is
optional: where no C compiler is available the build warns and the package runs the pure-Python
path, which gives the same results, slower. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "avro"


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        if SCHEMAS.is_dir():
            target = Path(self.build_lib) / "otlp_feedback" / "_schemas" / "avro"
            shutil.copytree(SCHEMAS, target, dirs_exist_ok=True)


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python path in charge instead of failing the install.

    The extension hashes with OpenSSL's libcrypto where its headers are installed (Debian:
    libssl-dev), else with its own portable SHA-1.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        with_openssl = Extension(
            ext.name,
            ext.sources,
            extra_compile_args=ext.extra_compile_args,
            define_macros=[("OFB_HAVE_OPENSSL", "1")],
            libraries=["crypto"],
        )
        for candidate in (with_openssl, ext):
            try:
                super().build_extension(candidate)
                return
            except Exception as exc:  # noqa: BLE001
                failure = exc
        self._skip(failure)

    @staticmethod
    def _skip(exc: Exception) -> None:
        print(
            f"WARNING: the native fast path was not built ({exc}); "
            "otlp-feedback will use the pure-Python path",
            file=sys.stderr,
        )


setup(
    cmdclass={"build_py": BuildWithSchemas, "build_ext": OptionalBuildExt},
    ext_modules=[
        Extension(
            "otlp_feedback._native",
            ["otlp_feedback/_native.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
