"""API connectors with mutual TLS against a real HTTPS server on loopback that requires a client certificate:
PEM and PKCS #12 client certificates, the trust anchors in ``ca_certificates``, and the start-up errors."""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from gateway.settings.signup import ApiConnector
from gateway.signup.api_connector import ApiConnectorClient, Continue, Failure, Reply
from tests.support.mtls_server import MtlsServer, TestCA, serve_mtls

PAYLOAD = {"email": "ana@fabrikam.example", "ui_locales": "en"}


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Continue, echoing the verified client certificate's CN and the request body."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    reply = {
        "version": "1.0.0",
        "action": "Continue",
        "clientCN": scope["state"]["tls_client_cn"],
        "received": json.loads(body),
    }
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": json.dumps(reply).encode()})


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.new("Fabrikam Test CA")


@pytest.fixture(scope="module")
def server(ca: TestCA) -> Iterator[MtlsServer]:
    with serve_mtls(echo, server=ca.issue_server(), client_ca=ca) as running:
        yield running


def connector(
    server: MtlsServer, ca_file: Path, authentication: dict[str, Any], **extra: Any
) -> ApiConnector:
    return ApiConnector.model_validate(
        {
            "id": "approvals",
            "target_url": server.url("/signup"),
            "authentication": authentication,
            "ca_certificates": str(ca_file),
            "timeout_seconds": 5,
            **extra,
        }
    )


async def call(config: ApiConnector) -> Reply:
    client = ApiConnectorClient.open(config)
    try:
        return await client.call("post_attribute_collection", PAYLOAD)
    finally:
        await client.aclose()


async def test_pem_client_certificate_with_encrypted_key(
    tmp_path: Path, ca: TestCA, server: MtlsServer
) -> None:
    certificate, key = ca.issue_client("gateway-pem").write_pem(tmp_path, "client", password="key-pw")
    config = connector(
        server,
        ca.write(tmp_path / "ca.pem"),
        {"client_certificate": {"certificate": str(certificate), "key": str(key), "password": "key-pw"}},
    )
    assert await call(config) == Continue({"clientCN": "gateway-pem", "received": PAYLOAD})


async def test_pkcs12_client_certificate(tmp_path: Path, ca: TestCA, server: MtlsServer) -> None:
    pfx = ca.issue_client("gateway-pfx").write_pkcs12(tmp_path / "client.pfx", "pfx-pw")
    config = connector(
        server,
        ca.write(tmp_path / "ca.pem"),
        {"client_certificate": {"pkcs12": str(pfx), "password": "pfx-pw"}},
    )
    client = ApiConnectorClient.open(config)
    pfx.unlink()  # the files are read at open, once
    try:
        assert await client.call("post_federation_signup", PAYLOAD) == Continue(
            {"clientCN": "gateway-pfx", "received": PAYLOAD}
        )
    finally:
        await client.aclose()


async def test_the_leaf_is_the_newest_valid_certificate_for_the_key(
    tmp_path: Path, ca: TestCA, server: MtlsServer
) -> None:
    old = ca.issue_client("gateway-old", not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30), days=2)
    renewed = ca.issue_client("gateway-renewed", key=old.key)
    other = ca.issue_client("someone-else")
    certificate = tmp_path / "chain.pem"  # CA first, then an unrelated leaf, the expired and the renewed one
    certificate.write_bytes(ca.pem + other.certificate_pem + old.certificate_pem + renewed.certificate_pem)
    key = tmp_path / "client.key"
    key.write_bytes(old.key_pem())
    config = connector(
        server,
        ca.write(tmp_path / "ca.pem"),
        {"client_certificate": {"certificate": str(certificate), "key": str(key)}},
    )
    result = await call(config)
    assert isinstance(result, Continue) and result.claims["clientCN"] == "gateway-renewed"


async def test_no_client_certificate_is_a_failure(tmp_path: Path, ca: TestCA, server: MtlsServer) -> None:
    config = connector(
        server,
        ca.write(tmp_path / "ca.pem"),
        {"basic": {"username": "gateway", "password": "s3cret"}},
        retries=0,
    )
    result = await call(config)
    assert isinstance(result, Failure)
    assert result.reason in ("api_connector_tls_failed", "api_connector_unreachable"), result


async def test_a_client_certificate_from_another_ca_is_a_failure(
    tmp_path: Path, ca: TestCA, server: MtlsServer
) -> None:
    stranger = TestCA.new("Other CA").issue_client("gateway-stranger")
    certificate, key = stranger.write_pem(tmp_path, "client")
    config = connector(
        server,
        ca.write(tmp_path / "ca.pem"),
        {"client_certificate": {"certificate": str(certificate), "key": str(key)}},
        retries=0,
    )
    result = await call(config)
    assert isinstance(result, Failure)
    assert result.reason in ("api_connector_tls_failed", "api_connector_unreachable"), result


async def test_a_server_certificate_outside_ca_certificates_is_a_failure(
    tmp_path: Path, ca: TestCA, server: MtlsServer
) -> None:
    certificate, key = ca.issue_client("gateway-pem").write_pem(tmp_path, "client")
    other_ca = TestCA.new("Not the server's CA").write(tmp_path / "other-ca.pem")
    config = connector(
        server, other_ca, {"client_certificate": {"certificate": str(certificate), "key": str(key)}}
    )
    result = await call(config)
    assert isinstance(result, Failure) and result.reason == "api_connector_tls_failed", result
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail


async def test_without_ca_certificates_the_system_store_does_not_trust_a_test_ca(
    tmp_path: Path, ca: TestCA, server: MtlsServer
) -> None:
    certificate, key = ca.issue_client("gateway-pem").write_pem(tmp_path, "client")
    config = ApiConnector.model_validate(
        {
            "id": "approvals",
            "target_url": server.url("/signup"),
            "authentication": {"client_certificate": {"certificate": str(certificate), "key": str(key)}},
        }
    )
    result = await call(config)
    assert isinstance(result, Failure) and result.reason == "api_connector_tls_failed", result


# --- start-up errors: ValueError naming the connector and the file, nothing left on disk ---------------


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tempfile`` puts the PEM files it writes while loading a client certificate."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def client_config(tmp_path: Path, certificate: dict[str, Any], ca_file: Path | None = None) -> ApiConnector:
    return ApiConnector.model_validate(
        {
            "id": "approvals",
            "target_url": "https://api.fabrikam.test/signup",
            "authentication": {"client_certificate": certificate},
            **({"ca_certificates": str(ca_file)} if ca_file else {}),
        }
    )


def test_a_wrong_pfx_password_fails_at_open(tmp_path: Path, ca: TestCA, private_tmp: Path) -> None:
    pfx = ca.issue_client("gateway-pfx").write_pkcs12(tmp_path / "client.pfx", "right")
    config = client_config(tmp_path, {"pkcs12": str(pfx), "password": "wrong"})
    with pytest.raises(
        ValueError,
        match=rf"API connector 'approvals': {re.escape(str(pfx))} is not a PKCS #12 file, or the password",
    ):
        ApiConnectorClient.open(config)
    assert list(private_tmp.iterdir()) == []


def test_loading_leaves_no_file_behind(tmp_path: Path, ca: TestCA, private_tmp: Path) -> None:
    pfx = ca.issue_client("gateway-pfx").write_pkcs12(tmp_path / "client.pfx", "pw")
    ApiConnectorClient.open(client_config(tmp_path, {"pkcs12": str(pfx), "password": "pw"}))
    assert list(private_tmp.iterdir()) == []


def pem_files(tmp_path: Path, ca: TestCA, case: str) -> tuple[dict[str, Any], Path, str]:
    """A client_certificate block broken in the way ``case`` names, the file to blame and the message."""
    issued = ca.issue_client("gateway")
    certificate, key = issued.write_pem(tmp_path, "client", password="pw")
    block: dict[str, Any] = {"certificate": str(certificate), "key": str(key), "password": "pw"}
    if case == "missing key file":
        key.unlink()
        return block, key, "cannot be read: No such file or directory"
    if case == "wrong key password":
        return {**block, "password": "nope"}, key, "is not a PEM private key, or the password is wrong"
    if case == "no key password":
        return {**block, "password": None}, key, "cannot be opened: Password was not given"
    if case == "certificate not PEM":
        certificate.write_text("hello")
        return block, certificate, "holds no PEM certificate"
    if case == "certificate for another key":
        certificate.write_bytes(ca.issue_client("other").certificate_pem)
        return block, certificate, "holds no certificate for the private key"
    if case == "expired certificate":
        expired = ca.issue_client(
            "old", key=issued.key, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=9)
        )
        certificate.write_bytes(expired.certificate_pem)
        return block, certificate, "holds no certificate for the key that is valid now"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing key file",
        "wrong key password",
        "no key password",
        "certificate not PEM",
        "certificate for another key",
        "expired certificate",
    ],
)
def test_bad_pem_client_certificates_fail_at_open(
    tmp_path: Path, ca: TestCA, private_tmp: Path, case: str
) -> None:
    block, blamed, message = pem_files(tmp_path, ca, case)
    with pytest.raises(
        ValueError, match="^" + rf"API connector 'approvals': {re.escape(str(blamed))} {message}"
    ):
        ApiConnectorClient.open(client_config(tmp_path, block))
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot be read"), (b"not a certificate", "holds no PEM")]
)
def test_bad_ca_certificates_fail_at_open(
    tmp_path: Path, ca: TestCA, content: bytes | None, message: str
) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    pfx = ca.issue_client("gateway").write_pkcs12(tmp_path / "client.pfx", "pw")
    with pytest.raises(ValueError, match=rf"API connector 'approvals': {re.escape(str(bundle))} {message}"):
        ApiConnectorClient.open(client_config(tmp_path, {"pkcs12": str(pfx), "password": "pw"}, bundle))


def test_a_pfx_without_its_password_fails_at_open(tmp_path: Path, ca: TestCA) -> None:
    pfx = ca.issue_client("gateway").write_pkcs12(tmp_path / "client.pfx", "pw")
    with pytest.raises(ValueError, match=rf"API connector 'approvals': {re.escape(str(pfx))} "):
        ApiConnectorClient.open(client_config(tmp_path, {"pkcs12": str(pfx)}))
