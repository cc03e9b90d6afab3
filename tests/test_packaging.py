"""The package's metadata installs without setuptools' deprecation warnings: the licence
is an SPDX expression (PEP 639), which the build's setuptools must be new enough to read."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
FIRST_SETUPTOOLS_WITH_SPDX_LICENCES = Version("77")


def test_the_licence_is_an_spdx_expression_not_a_table() -> None:
    licence = PYPROJECT["project"]["license"]
    assert isinstance(licence, str), "a table makes setuptools warn three times per install"
    assert canonicalize_license_expression(licence) == licence == "AGPL-3.0-or-later"
    assert not any(re.match(r"License ::", c) for c in PYPROJECT["project"].get("classifiers", []))


def test_the_build_asks_for_a_setuptools_that_reads_it() -> None:
    [setuptools] = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                    if Requirement(r).name == "setuptools"]  # fmt: skip
    lowest = min(Version(s.version) for s in setuptools.specifier if s.operator == ">=")
    assert lowest >= FIRST_SETUPTOOLS_WITH_SPDX_LICENCES
