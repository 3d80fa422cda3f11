"""The SMTP session client against real aiosmtpd servers: TLS (STARTTLS and implicit), certificate
checks, AUTH, dot-stuffing, and session reuse. The client blocks: each call runs in a thread."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import random
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.mail.client import SmtpClient, _data
from gateway.mail.smtp import Composer, is_permanent
from gateway.settings.models import Smtp
from idp_connectors.base import MailMessage
from tests.support.smtp_server import start_smtp_server

FROM = "Contoso <no-reply@contoso.example>"
TO = "guest@fabrikam.example"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def envelope(text: str = "Your code is 12345678\n") -> Any:
    return Composer(FROM).compose(MailMessage(to=TO, subject="S", text=text))


def accept(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"gw", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    with start_smtp_server(
        tls_context=server_tls(certificate), require_starttls=True, authenticator=accept
    ) as server:
        yield server


async def test_starttls_then_auth_plain_delivers(
    starttls_server: Any, certificate: tuple[Path, Path]
) -> None:
    smtp = Smtp(
        host=starttls_server.host, port=starttls_server.port, starttls=True, username="gw", password="s3cret"
    )
    client = SmtpClient(smtp, tls_context=trusting(certificate))
    try:
        await asyncio.to_thread(client.send, envelope())
        await asyncio.to_thread(client.send, envelope())
    finally:
        await asyncio.to_thread(client.close)
    assert starttls_server.data_commands == 2
    assert all(r.authenticated for r in starttls_server.received)
    assert client.connections == 1


async def test_starttls_to_an_untrusted_certificate_fails_permanently(starttls_server: Any) -> None:
    smtp = Smtp(host=starttls_server.host, port=starttls_server.port, starttls=True)
    client = SmtpClient(smtp)  # the system's CA bundle does not know the test certificate
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await asyncio.to_thread(client.send, envelope())
    assert is_permanent(caught.value)
    assert starttls_server.data_commands == 0
    assert not client.connected


async def test_starttls_required_but_not_offered_fails_permanently() -> None:
    with start_smtp_server() as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port, starttls=True))
        with pytest.raises(smtplib.SMTPNotSupportedError) as caught:
            await asyncio.to_thread(client.send, envelope())
        assert is_permanent(caught.value)
        assert server.data_commands == 0


async def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    with start_smtp_server(ssl_context=server_tls(certificate)) as server:
        client = SmtpClient(
            Smtp(host=server.host, port=server.port, ssl=True), tls_context=trusting(certificate)
        )
        try:
            await asyncio.to_thread(client.send, envelope())
        finally:
            await asyncio.to_thread(client.close)
        assert server.data_commands == 1


async def test_auth_login_when_only_login_is_offered() -> None:
    with start_smtp_server(
        authenticator=accept, auth_require_tls=False, auth_exclude_mechanism=["PLAIN"]
    ) as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port, username="gw", password="s3cret"))
        try:
            await asyncio.to_thread(client.send, envelope())
        finally:
            await asyncio.to_thread(client.close)
        assert server.received[0].authenticated


async def test_auth_configured_but_not_offered_fails_permanently() -> None:
    with start_smtp_server() as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port, username="gw", password="s3cret"))
        with pytest.raises(smtplib.SMTPNotSupportedError) as caught:
            await asyncio.to_thread(client.send, envelope())
        assert is_permanent(caught.value)


async def test_lines_starting_with_a_dot_arrive_intact() -> None:
    text = ".hidden\n..two dots\nend.\n.\n"
    with start_smtp_server() as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port))
        try:
            await asyncio.to_thread(client.send, envelope(text))
        finally:
            await asyncio.to_thread(client.close)
        body = server.messages[0].get_body(preferencelist=("plain",))
        assert body is not None
        assert str(body.get_content()).replace("\r\n", "\n") == text


@pytest.mark.parametrize(
    "data",
    [
        *(b"", b".", b"..", b"a", b".a\r\n", b"a\r\n.b\r\n.\r\n"),
        *(b"a\n.b", b"a\r.b", b"x\r\n", b"x\n", b"\r\n.", b"\n\n..\n"),
    ],
)
def test_data_sends_what_smtplib_data_sends(data: bytes) -> None:
    """``_data`` puts the same bytes on the wire as ``smtplib.SMTP.data`` (its dot-stuffing included)."""

    class Recorder(smtplib.SMTP):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[bytes] = []

        def send(self, s: Any) -> None:
            self.sent.append(s if isinstance(s, bytes) else s.encode())

        def getreply(self) -> tuple[int, bytes]:
            return (354, b"go ahead") if len(self.sent) == 1 else (250, b"ok")

    ours, theirs = Recorder(), Recorder()
    assert _data(ours, data) == theirs.data(data) == (250, b"ok")
    assert ours.sent == theirs.sent


def test_data_stuffs_random_messages_as_smtplib_does() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        data = bytes(rng.choice(b".\r\nab") for _ in range(rng.randrange(0, 24)))
        stuffed = data.replace(b"\n.", b"\n..")
        stuffed = b"." + stuffed if stuffed[:1] == b"." else stuffed
        assert stuffed == smtplib._quote_periods(data)


async def test_close_says_quit_and_a_later_send_opens_a_new_session() -> None:
    with start_smtp_server() as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port))
        await asyncio.to_thread(client.send, envelope())
        await asyncio.to_thread(client.close)
        assert not client.connected
        await asyncio.to_thread(client.send, envelope())
        await asyncio.to_thread(client.close)
        assert client.connections == 2
        assert server.data_commands == 2
