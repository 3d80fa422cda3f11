"""The startup self-test passes on a sound installation and raises when verification is sabotaged."""

from __future__ import annotations

from typing import Any

import pytest
import xmlsec

from idp_connectors.xmlsecurity import selftest
from idp_connectors.xmlsecurity.gate import XmlRejected
from idp_connectors.xmlsecurity.selftest import self_test


def test_self_test_passes() -> None:
    self_test()


def test_a_verifier_that_accepts_everything_makes_it_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "verify_enveloped", lambda element, certificates: element)
    with pytest.raises(RuntimeError, match="tampered assertion verified"):
        self_test()


def test_a_verifier_that_refuses_everything_makes_it_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(element: Any, certificates: Any) -> Any:
        raise XmlRejected("signature_invalid")

    monkeypatch.setattr(selftest, "verify_enveloped", refuse)
    with pytest.raises(RuntimeError, match="correctly signed assertion did not verify"):
        self_test()


def test_xmlsec_ignoring_the_digest_makes_it_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sabotage below our code: the xmlsec context verifies nothing at all."""

    class Blind:
        key: Any = None

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    monkeypatch.setattr(xmlsec, "SignatureContext", Blind)
    with pytest.raises(RuntimeError, match="tampered assertion verified"):
        self_test()


def test_a_broken_binding_makes_it_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ImportError("lxml and xmlsec were built against different libxml2")

    monkeypatch.setattr(selftest, "sign_enveloped", broken)
    with pytest.raises(RuntimeError, match="could not run"):
        self_test()
