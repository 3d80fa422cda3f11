"""A branded logo URL's origin becomes a CSP ``img-src`` source: ``branding.logo_url`` must name a plain
host (and port), so no configured value can add CSP sources or directives (``;``, spaces, userinfo)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.i18n.test_branding_settings import HEAD, problems


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize(
    "logo",
    [
        "https://x; script-src 'unsafe-inline' https:@evil.example/logo.png",
        "https://user:secret@cdn.example/logo.png",
        "https://*.example/logo.png",
    ],
)
def test_a_logo_url_that_would_change_the_csp_is_refused(workdir: Path, logo: str) -> None:
    quoted = logo.replace("'", "''")
    [problem] = problems(workdir, HEAD + f"branding:\n  logo_url: '{quoted}'\n")
    assert problem.startswith("gateway.yaml:12:13: branding.logo_url: ")
    assert "must be a plain host name or address with an optional port" in problem


@pytest.mark.parametrize(
    "logo",
    [
        "https://cdn.contoso.example/logo.svg",
        "https://cdn.contoso.example:8443/brand/logo.png?v=2",
        "http://127.0.0.1:8000/static/logo.svg",
        "http://[::1]:8000/logo.svg",
    ],
)
def test_plain_logo_urls_still_load(workdir: Path, logo: str) -> None:
    from gateway.i18n import translations_for
    from gateway.settings import load_settings

    path = workdir / "gateway.yaml"
    path.write_text(HEAD + f"branding:\n  logo_url: '{logo}'\n", encoding="utf-8")
    settings = load_settings(path)
    assert settings.branding.logo_url == logo
    source = translations_for(settings).branding.image_source
    assert source is None or (" " not in source and ";" not in source and "@" not in source)
