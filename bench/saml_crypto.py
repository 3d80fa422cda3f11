"""Sign and verify one SAML assertion: in process (gate included) vs pysaml2's xmlsec1 subprocess.

Run from the repository root: ``.venv/bin/python -m bench.saml_crypto [--rounds N] [--check]``.
Both sides work on the same RSA-2048 key and the same assertion (Issuer, Subject with a
SubjectConfirmation, Conditions, AuthnStatement, six attributes; exc-c14n, RSA-SHA256, SHA-256),
in the same run:

- baseline: pysaml2 7.5's default ``CryptoBackendXmlSec1`` (``sign_statement`` and
  ``validate_signature``: temporary files and one ``xmlsec1`` process per operation);
- in process: ``sign_enveloped`` (parse, sign, serialise) and ``parse_inbound`` +
  ``verify_enveloped`` (the whole inbound gate, then the signature);
- through pysaml2: ``InProcessCryptoBackend`` behind the same two pysaml2 calls.

Prints the median wall time per operation and the speed-up over the baseline; the target is
≥ 30x for sign and for verify. ``--check`` exits 1 when the in-process figures miss it.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2.sigver import CryptoBackendXmlSec1

from idp_connectors.xmlsecurity.gate import SAML2, parse_inbound
from idp_connectors.xmlsecurity.pysaml2_backend import InProcessCryptoBackend
from idp_connectors.xmlsecurity.signature import sign_enveloped, verify_enveloped

NODE_NAME = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
ASSERTION_ID = "_5f4dcc3b5aa765d61d8327deb882cf99a1b2c3d4"
TARGET = 30.0
ATTRIBUTES = {
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": "alice@fabrikam.example",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": "Alice",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": "Example",
    "http://schemas.microsoft.com/identity/claims/objectidentifier": "9f2c1e0a-3b4d-4c5e-8f70-112233445566",
    "http://schemas.microsoft.com/identity/claims/tenantid": "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00",
    "http://schemas.microsoft.com/claims/authnmethodsreferences": "http://schemas.microsoft.com/claims/multipleauthn",
}


def key_and_certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.fabrikam.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def assertion() -> Any:
    saml = f"{{{SAML2}}}"
    root = etree.Element(saml + "Assertion", nsmap={"saml": SAML2})
    root.set("ID", ASSERTION_ID)
    root.set("Version", "2.0")
    root.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(root, saml + "Issuer").text = "https://idp.fabrikam.example/saml"
    subject = etree.SubElement(root, saml + "Subject")
    name_id = etree.SubElement(subject, saml + "NameID")
    name_id.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    name_id.text = "ZGV2aWNlLWlkLWZvci1hbGljZQ"
    confirmation = etree.SubElement(subject, saml + "SubjectConfirmation")
    confirmation.set("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
    data = etree.SubElement(confirmation, saml + "SubjectConfirmationData")
    data.set("InResponseTo", "_a7c3e5d9b1f24680aceg")
    data.set("NotOnOrAfter", "2026-01-01T00:05:00Z")
    data.set("Recipient", "https://gateway.contoso.example/callback/fabrikam")
    conditions = etree.SubElement(root, saml + "Conditions")
    conditions.set("NotBefore", "2026-01-01T00:00:00Z")
    conditions.set("NotOnOrAfter", "2026-01-01T00:05:00Z")
    audience = etree.SubElement(etree.SubElement(conditions, saml + "AudienceRestriction"), saml + "Audience")
    audience.text = "https://gateway.contoso.example/callback/fabrikam/metadata"
    authn = etree.SubElement(root, saml + "AuthnStatement")
    authn.set("AuthnInstant", "2026-01-01T00:00:00Z")
    authn.set("SessionIndex", "_be9967abd904ddcae3c0eb4189adbe3f71e327cf93")
    context = etree.SubElement(etree.SubElement(authn, saml + "AuthnContext"), saml + "AuthnContextClassRef")
    context.text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    statement = etree.SubElement(root, saml + "AttributeStatement")
    for name, value in ATTRIBUTES.items():
        attribute = etree.SubElement(statement, saml + "Attribute", Name=name)
        etree.SubElement(attribute, saml + "AttributeValue").text = value
    return root


def with_template(element: Any, certificate: x509.Certificate) -> str:
    """The assertion with pysaml2's kind of signature template (what ``sign_statement`` fills in)."""
    constants = xmlsec.constants
    template = xmlsec.template.create(
        element, constants.TransformExclC14N, constants.TransformRsaSha256, ns="ds"
    )
    element.insert(1, template)
    reference = xmlsec.template.add_reference(template, constants.TransformSha256, uri="#" + ASSERTION_ID)
    xmlsec.template.add_transform(reference, constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, constants.TransformExclC14N)
    x509_data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(template))
    der = certificate.public_bytes(serialization.Encoding.DER)
    xmlsec.template.x509_data_add_certificate(x509_data).text = base64.b64encode(der).decode()
    return bytes(etree.tostring(element)).decode()


def median_ms(function: Callable[[], object], rounds: int) -> float:
    function()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=400, help="in-process rounds (xmlsec1: a tenth, ≥ 20)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET:.0f}x")
    args = parser.parse_args(argv)
    binary = shutil.which("xmlsec1")
    if binary is None:
        print("xmlsec1 not found: the baseline needs it (apt-get install xmlsec1)", file=sys.stderr)
        return 2

    key, certificate = key_and_certificate()
    workdir = Path(tempfile.mkdtemp(prefix="saml-bench-"))
    key_file, cert_file = workdir / "idp.key", workdir / "idp.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    unsigned = bytes(etree.tostring(assertion()))
    template = with_template(assertion(), certificate)

    baseline = CryptoBackendXmlSec1(binary)
    ours = InProcessCryptoBackend()

    def sign_baseline() -> str:
        return str(baseline.sign_statement(template, NODE_NAME, str(key_file), ASSERTION_ID))

    def sign_in_process() -> bytes:
        root = etree.fromstring(unsigned)
        sign_enveloped(root, key, certificate)
        return bytes(etree.tostring(root))

    def sign_backend() -> str:
        return ours.sign_statement(template, NODE_NAME, str(key_file), ASSERTION_ID)

    signed_by_baseline = sign_baseline()
    signed_in_process = sign_in_process()

    def verify_baseline() -> bool:
        return bool(
            baseline.validate_signature(signed_in_process, str(cert_file), "pem", NODE_NAME, ASSERTION_ID)
        )

    def verify_in_process() -> Any:
        return verify_enveloped(parse_inbound(signed_in_process), [certificate])

    def verify_backend() -> bool:
        return ours.validate_signature(signed_by_baseline, str(cert_file), "pem", NODE_NAME, ASSERTION_ID)

    # Each side must accept what the other signed, or the comparison means nothing.
    assert verify_baseline() and verify_backend()
    assert verify_enveloped(parse_inbound(signed_by_baseline.encode()), [certificate]) is not None

    slow_rounds = max(20, args.rounds // 10)
    figures = {
        "sign": (
            median_ms(sign_baseline, slow_rounds),
            median_ms(sign_in_process, args.rounds),
            median_ms(sign_backend, args.rounds),
        ),
        "verify": (
            median_ms(verify_baseline, slow_rounds),
            median_ms(verify_in_process, args.rounds),
            median_ms(verify_backend, args.rounds),
        ),
    }
    shutil.rmtree(workdir, ignore_errors=True)

    print(f"one SAML assertion ({len(signed_in_process)} bytes signed), RSA-2048, exc-c14n, RSA-SHA256")
    header = ("xmlsec1 subprocess", "in process", "speed-up", "via pysaml2", "speed-up")
    print(f"{'':8}{header[0]:>20}{header[1]:>14}{header[2]:>10}{header[3]:>14}{header[4]:>10}")
    missed = False
    for operation, (slow, fast, backend) in figures.items():
        ratio, backend_ratio = slow / fast, slow / backend
        missed = missed or ratio < TARGET
        verdict = "ok" if ratio >= TARGET else "MISSED"
        print(
            f"{operation:8}{slow:>17.2f} ms{fast:>11.3f} ms{ratio:>9.0f}x"
            f"{backend:>11.3f} ms{backend_ratio:>9.0f}x   target ≥ {TARGET:.0f}x: {verdict}"
        )
    print("medians; 'in process' verify includes the whole inbound gate (parse_inbound)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
