"""The TLS context of one API connector, built once at startup (b2b-concepts §7, "Auth is required").

``client_ssl_context(config)`` returns an ``ssl.SSLContext`` that always verifies the target's
certificate and host name: against ``ca_certificates`` (a PEM bundle that *replaces* the system trust
store) or, without it, the system trust store. With client-certificate authentication it also carries
the certificate chain for mutual TLS, from PEM files (certificate chain + key, the key possibly
encrypted with ``password``) or a PKCS #12 (.pfx) file.

Among several certificates the leaf is the one whose public key matches the private key; when more
than one matches (a renewed certificate next to the old one) the newest that is valid now is used,
as the reference does; the others that match the key are dropped, the rest follow as the chain.
Python's ``ssl`` loads a client certificate only from a file: the chain and the key are written to a
0600 file in a fresh private directory, the key re-encrypted under a one-time random password so it
never reaches the disk in clear, loaded, and deleted at once.

Any problem (a file missing or unreadable, not PEM / PKCS #12, a wrong password, no certificate for
the key, none valid now) raises ``ValueError`` naming the connector id and the file.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.settings.signup import ApiConnector, ClientCertificate

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def client_ssl_context(config: ApiConnector) -> ssl.SSLContext:
    """A verifying TLS client context for ``config``: its trust anchors and, if any, client certificate."""
    if config.ca_certificates is not None:
        bundle = _read(config.id, config.ca_certificates)
        try:
            anchors = x509.load_pem_x509_certificates(bundle)
        except ValueError:
            raise _problem(config.id, config.ca_certificates, "holds no PEM certificate") from None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cadata="".join(a.public_bytes(serialization.Encoding.PEM).decode("ascii") for a in anchors),
        )
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    client = config.authentication.client_certificate
    if client is not None:
        key, chain, source = _client_material(config.id, client)
        _load_chain(context, config.id, source, key, chain)
    return context


def _client_material(
    connector_id: str, client: ClientCertificate
) -> tuple[PrivateKeyTypes, list[x509.Certificate], Path]:
    """The private key and the chain (leaf first) from the configured files, and the file to name."""
    password = client.password.encode("utf-8") if client.password is not None else None
    if client.pkcs12 is not None:
        data = _read(connector_id, client.pkcs12)
        try:
            bundle = pkcs12.load_pkcs12(data, password)
        except ValueError:
            raise _problem(
                connector_id, client.pkcs12, "is not a PKCS #12 file, or the password is wrong"
            ) from None
        except TypeError as exc:  # cryptography's wording for a missing or a needless password
            raise _problem(connector_id, client.pkcs12, f"cannot be opened: {exc}") from None
        if bundle.key is None:
            raise _problem(connector_id, client.pkcs12, "holds no private key")
        certificates = [
            c.certificate for c in ([bundle.cert] if bundle.cert else []) + bundle.additional_certs
        ]
        return bundle.key, _leaf_first(connector_id, client.pkcs12, bundle.key, certificates), client.pkcs12
    assert client.certificate is not None and client.key is not None  # the model's one-form rule
    key_data = _read(connector_id, client.key)
    try:
        key = serialization.load_pem_private_key(key_data, password)
    except ValueError:
        raise _problem(
            connector_id, client.key, "is not a PEM private key, or the password is wrong"
        ) from None
    except TypeError as exc:
        raise _problem(connector_id, client.key, f"cannot be opened: {exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(_read(connector_id, client.certificate))
    except ValueError:
        raise _problem(connector_id, client.certificate, "holds no PEM certificate") from None
    return key, _leaf_first(connector_id, client.certificate, key, certificates), client.certificate


def _leaf_first(
    connector_id: str, source: Path, key: PrivateKeyTypes, certificates: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    wanted = key.public_key().public_bytes(*_SPKI)
    matching = [c for c in certificates if c.public_key().public_bytes(*_SPKI) == wanted]
    if not matching:
        raise _problem(connector_id, source, "holds no certificate for the private key")
    now = dt.datetime.now(dt.UTC)
    valid = [c for c in matching if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    if not valid:
        ends = max(c.not_valid_after_utc for c in matching)
        raise _problem(
            connector_id,
            source,
            f"holds no certificate for the key that is valid now (the latest ends {ends:%Y-%m-%d %H:%M} UTC "
            "or is not valid yet)",
        )
    leaf = max(valid, key=lambda c: c.not_valid_before_utc)
    return [leaf, *(c for c in certificates if c not in matching)]


def _load_chain(
    context: ssl.SSLContext,
    connector_id: str,
    source: Path,
    key: PrivateKeyTypes,
    chain: Sequence[x509.Certificate],
) -> None:
    one_time = secrets.token_urlsafe(32)
    try:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(one_time.encode("ascii")),
        )
    except ValueError as exc:
        raise _problem(connector_id, source, f"holds a key TLS cannot use: {exc}") from None
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) + key_pem
    directory = tempfile.mkdtemp(prefix="api-connector-")  # mode 0700
    path = os.path.join(directory, "client.pem")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        context.load_cert_chain(path, password=one_time)
    except ssl.SSLError as exc:
        raise _problem(connector_id, source, f"cannot be used for TLS: {exc.reason or exc}") from None
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def _read(connector_id: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _problem(connector_id, path, f"cannot be read: {exc.strerror or exc}") from None


def _problem(connector_id: str, path: Path, message: str) -> ValueError:
    return ValueError(f"API connector {connector_id!r}: {path} {message}")
