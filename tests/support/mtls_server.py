"""Mutual-TLS test servers on loopback: a throwaway CA, certificates it signs, uvicorn requiring a client one.

``TestCA.new("Test CA")`` makes a self-signed P-256 CA valid for a day. ``ca.issue_server(host)`` signs
a server certificate for an IP address or DNS name, ``ca.issue_client(cn)`` a client certificate with
that common name; an ``Issued`` writes itself as PEM files (the key optionally encrypted) or as a PKCS #12
file. ``serve_mtls(app, server=issued, client_ca=ca)`` binds a free port on 127.0.0.1, runs uvicorn in a
daemon thread with ``ssl_cert_reqs=CERT_REQUIRED`` and ``ssl_ca_certs=`` the client CA, and yields an
``MtlsServer`` until the block ends.

uvicorn puts no TLS information in the ASGI scope, so the server uses a small ``H11Protocol`` subclass
that adds, per connection, ``scope["state"]["tls_client_cn"]``: the verified client certificate's CN.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from tests.support.https_loopback import loopback_listener, run_on

HOST = "127.0.0.1"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    """A key and its certificate, signed by ``issuer`` (the CA's certificate)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    issuer: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def write_pem(self, directory: Path, name: str, *, password: str | None = None) -> tuple[Path, Path]:
        """``name.crt`` (the certificate, then its CA's) and ``name.key``; returns both paths."""
        certificate, key = directory / f"{name}.crt", directory / f"{name}.key"
        certificate.write_bytes(self.certificate_pem + self.issuer.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(self.key_pem(password))
        return certificate, key

    def write_pkcs12(self, path: Path, password: str) -> Path:
        data = pkcs12.serialize_key_and_certificates(
            b"client",
            self.key,
            self.certificate,
            [self.issuer],
            serialization.BestAvailableEncryption(password.encode()),
        )
        path.write_bytes(data)
        return path


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a pytest test class

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls, name: str) -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem)
        return path

    def issue_server(self, host: str = HOST) -> Issued:
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        return self._issue(host, ExtendedKeyUsageOID.SERVER_AUTH, [name])

    def issue_client(
        self,
        common_name: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        not_before: dt.datetime | None = None,
        days: float = 1,
    ) -> Issued:
        """A client certificate; ``key`` reuses a key (renewal), ``not_before``/``days`` set its validity."""
        return self._issue(
            common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [], key=key, not_before=not_before, days=days
        )

    def _issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        names: list[x509.GeneralName],
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        not_before: dt.datetime | None = None,
        days: float = 1,
    ) -> Issued:
        key = key or ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Issued(key, builder.sign(self.key, hashes.SHA256()), self.certificate)


class _PeerCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, adding the verified client certificate's CN to every request's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        peer: Any = tls.getpeercert() if tls is not None else None
        common_name = None
        for rdn in (peer or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    common_name = value
        self.app_state = {**self.app_state, "tls_client_cn": common_name}


@dataclass(frozen=True)
class MtlsServer:
    host: str
    port: int

    def url(self, path: str = "/") -> str:
        return f"https://{self.host}:{self.port}{path}"


@contextmanager
def serve_mtls(app: ASGIApp, *, server: Issued, client_ca: TestCA, host: str = HOST) -> Iterator[MtlsServer]:
    """Serve ``app`` over TLS as ``server``, requiring a client certificate from ``client_ca``."""
    with tempfile.TemporaryDirectory(prefix="mtls-server-") as directory:
        certificate_file, key_file = server.write_pem(Path(directory), "server")
        ca_file = client_ca.write(Path(directory) / "client-ca.pem")
        with loopback_listener(host) as (listener, port):
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="critical",
                lifespan="off",
                http=_PeerCertificateProtocol,
                ssl_keyfile=str(key_file),
                ssl_certfile=str(certificate_file),
                ssl_cert_reqs=ssl.CERT_REQUIRED,
                ssl_ca_certs=str(ca_file),
            )
            with run_on(config, listener, f"the mutual-TLS server on {host}:{port}"):
                yield MtlsServer(host, port)
