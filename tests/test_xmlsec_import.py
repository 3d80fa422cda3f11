"""CI guard: lxml and xmlsec each bundle libxml2 and must be built against the same version.

xmlsec refuses to import (or misbehaves) when they differ, so a dependency bump that breaks the
pair fails here, loudly, instead of at the first SAML sign-in.
"""

from __future__ import annotations

import subprocess
import sys


def test_lxml_and_xmlsec_import_together_in_either_order() -> None:
    for first, second in (("lxml.etree", "xmlsec"), ("xmlsec", "lxml.etree")):
        code = f"import {first}, {second}; import xmlsec; xmlsec.init()"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def test_libxml2_versions_match() -> None:
    import xmlsec
    from lxml import etree

    assert etree.LIBXML_VERSION == etree.LIBXML_COMPILED_VERSION
    assert xmlsec.get_libxml_version() == xmlsec.get_libxml_compiled_version()
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION, (
        f"xmlsec runs libxml2 {xmlsec.get_libxml_version()}, lxml {etree.LIBXML_VERSION}: pin a matching pair"
    )


def test_the_pinned_pair_is_what_runs() -> None:
    """pyproject.toml pins both exactly; the environment must run those pins."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pins = dict(
        dependency.split("==", 1)
        for dependency in project["project"]["dependencies"]
        if dependency.split("==")[0] in ("lxml", "xmlsec")
    )
    assert set(pins) == {"lxml", "xmlsec"}, "lxml and xmlsec must both be pinned with =="
    assert {name: version(name) for name in pins} == pins
