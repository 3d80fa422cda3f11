"""An ASGI app served over https on loopback, with a throwaway self-signed certificate (browser tests).

``serve_https(app, names=["idp.fabrikam.test"])`` binds a free port on 127.0.0.1 itself (no
probe-then-bind race), runs uvicorn with TLS in a daemon thread until the block ends and yields
an ``HttpsServer`` (its host, port and certificate). The certificate is a fresh ECDSA P-256 one
for ``names`` (and the loopback address), valid for a day and trusted by nobody: a browser that
reaches the app by one of those names (Chromium: ``--host-resolver-rules``) has to be told to
ignore certificate errors. ``self_signed(names)`` makes such a key and certificate as PEM.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class HttpsServer:
    host: str
    port: int
    certificate_pem: bytes

    @property
    def address(self) -> str:
        """``HOST:PORT``, e.g. the target of a Chromium host-resolver rule."""
        return f"{self.host}:{self.port}"


def self_signed(names: Sequence[str], host: str = HOST) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed server certificate for ``names`` and ``host``, both as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else host)])
    now = dt.datetime.now(dt.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives.append(x509.IPAddress(ipaddress.ip_address(host)))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


@contextmanager
def loopback_listener(host: str = HOST) -> Iterator[tuple[socket.socket, int]]:
    """A socket bound to a free port of ``host`` (no probe-then-bind race), and that port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        yield listener, int(listener.getsockname()[1])
    finally:
        listener.close()


@contextmanager
def run_on(config: uvicorn.Config, listener: socket.socket, what: str) -> Iterator[None]:
    """Run uvicorn with ``config`` on ``listener`` in a daemon thread until the block ends; fails
    (naming ``what``) when it has not started within START_TIMEOUT_SECONDS."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=what, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_https(app: ASGIApp, *, names: Sequence[str] = (), host: str = HOST) -> Iterator[HttpsServer]:
    """Serve ``app`` at ``https://HOST:PORT`` (a free port) until the block ends."""
    key_pem, certificate_pem = self_signed(names, host)
    with tempfile.TemporaryDirectory(prefix="https-loopback-") as directory:
        key_file, certificate_file = Path(directory) / "key.pem", Path(directory) / "cert.pem"
        key_file.write_bytes(key_pem)
        certificate_file.write_bytes(certificate_pem)
        with loopback_listener(host) as (listener, port):
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                ssl_keyfile=str(key_file),
                ssl_certfile=str(certificate_file),
            )
            with run_on(config, listener, f"the https server on {host}:{port}"):
                yield HttpsServer(host, port, certificate_pem)
