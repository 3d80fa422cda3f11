"""The one gate every inbound SAML / WS-Federation XML document passes before anything reads it.

``parse_inbound`` checks, in this order and before any cryptographic work: the size cap; no
DOCTYPE, entity declaration or external entity (an expat pass equivalent to defusedxml's
``forbid_dtd``/``forbid_entities``/``forbid_external``, which also enforces the depth cap); then
the one lxml parse whose tree is consumed (entities unresolved, no network, no DTD, comments and
processing instructions dropped); unique ID values; and the shape and algorithms of every
``ds:Signature`` anywhere in the document (saml-wsfed-security.md sections 1, 3, 4, 5).

Every refusal is an ``XmlRejected`` with one generic message and a stable ``detail`` code:
``xml_too_large``, ``xml_doctype``, ``xml_malformed``, ``xml_too_deep``, ``xml_duplicate_id``,
``xml_signature_shape``, ``xml_transform_not_allowed``, ``xml_algorithm_not_allowed``,
``xml_text_has_children`` (``text_of``); the verifier and decryptor add ``signature_*`` and
``decryption_failed``; callers use ``xml_assertion_count`` and ``xml_not_signed``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn
from xml.parsers import expat

from lxml import etree
from lxml.etree import _Element

from idp_connectors.base import ConnectorError

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML2P = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML1P = "urn:oasis:names:tc:SAML:1.0:protocol"
XML_NS = "http://www.w3.org/XML/1998/namespace"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

DS_SIGNATURE = f"{{{DS}}}Signature"
DS_SIGNED_INFO = f"{{{DS}}}SignedInfo"
DS_SIGNATURE_VALUE = f"{{{DS}}}SignatureValue"
DS_KEY_INFO = f"{{{DS}}}KeyInfo"
DS_OBJECT = f"{{{DS}}}Object"
DS_CANONICALIZATION_METHOD = f"{{{DS}}}CanonicalizationMethod"
DS_SIGNATURE_METHOD = f"{{{DS}}}SignatureMethod"
DS_REFERENCE = f"{{{DS}}}Reference"
DS_TRANSFORMS = f"{{{DS}}}Transforms"
DS_TRANSFORM = f"{{{DS}}}Transform"
DS_DIGEST_METHOD = f"{{{DS}}}DigestMethod"
DS_DIGEST_VALUE = f"{{{DS}}}DigestValue"
EC_INCLUSIVE_NAMESPACES = "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_WITH_COMMENTS = EXC_C14N + "WithComments"
INCLUSIVE_C14N = frozenset(
    {"http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "http://www.w3.org/2006/12/xml-c14n11"}
)
ENVELOPED = DS + "enveloped-signature"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
RSA_SHA1 = DS + "rsa-sha1"
ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
SHA1 = DS + "sha1"

SIGNATURE_METHODS = frozenset({RSA_SHA256, RSA_SHA384, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384, ECDSA_SHA512})
SHA1_SIGNATURE_METHODS = frozenset({RSA_SHA1, ECDSA_SHA1})
DIGEST_METHODS = frozenset({SHA256, SHA384, SHA512})

ID_ATTRIBUTES = ("ID", "AssertionID", "ResponseID", "RequestID", "Id", f"{{{XML_NS}}}id", f"{{{WSU}}}Id")
ASSERTION_TAGS = frozenset(
    {f"{{{SAML2}}}Assertion", f"{{{SAML2}}}EncryptedAssertion", f"{{{SAML1}}}Assertion"}
)
_SAML_NAMESPACES = frozenset({SAML2, SAML2P, SAML1, SAML1P})
_SAME_DOCUMENT_URI = re.compile(r"#[A-Za-z_][A-Za-z0-9_.\-]*")

GENERIC_MESSAGE = "The identity provider's response could not be accepted."


class XmlRejected(ConnectorError):
    """Inbound XML refused. ``str()`` is one generic message; ``detail`` is the stable reason code."""

    code = "xml_rejected"

    def __init__(self, detail: str) -> None:
        super().__init__(GENERIC_MESSAGE)
        self.detail = detail

    def __repr__(self) -> str:
        return f"XmlRejected({self.detail!r})"


@dataclass(frozen=True)
class GatePolicy:
    """Per-IdP limits and the documented per-IdP exceptions (all off by default)."""

    max_bytes: int = 256 * 1024
    """Of the XML (callers cap the base64 text before decoding too)."""
    max_depth: int = 64
    allow_sha1: bool = False
    """RSA-SHA1 / ECDSA-SHA1 and the SHA-1 digest: an explicit, logged exception for one IdP."""
    allow_inclusive_c14n: bool = False
    """Inclusive C14N 1.0 / 1.1 (never WithComments): a documented per-IdP exception."""
    allow_cbc: bool = False
    """AES-CBC data encryption in ``EncryptedAssertion`` (AES-GCM otherwise): per IdP."""


def _reject(detail: str) -> NoReturn:
    raise XmlRejected(detail)


# --- the pre-check: expat, nothing kept -------------------------------------------------------


class _Refused(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _precheck(data: bytes, max_depth: int) -> None:
    """DOCTYPE / entity / external reference refused, depth capped; the parse is thrown away."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth = [0]

    def doctype(*_: Any) -> None:
        raise _Refused("xml_doctype")

    def external(*_: Any) -> int:
        raise _Refused("xml_doctype")

    def start(*_: Any) -> None:
        depth[0] += 1
        if depth[0] > max_depth:
            raise _Refused("xml_too_deep")

    def end(*_: Any) -> None:
        depth[0] -= 1

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.UnparsedEntityDeclHandler = doctype
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.ordered_attributes = True
    try:
        parser.Parse(data, True)
    except _Refused as refused:
        _reject(refused.detail)
    except (expat.ExpatError, ValueError, LookupError):  # LookupError: an unknown encoding
        _reject("xml_malformed")


# --- the parse whose tree is consumed ---------------------------------------------------------

_parsers = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
            recover=False,
        )
        _parsers.parser = parser
    return parser


def parse_inbound(data: bytes, policy: GatePolicy = GatePolicy()) -> _Element:
    """Gate and parse one inbound document; returns its root ``lxml.etree._Element``.

    No cryptography happens here: callers verify afterwards (``signature.verify_enveloped``)
    and read identity only from the element the verifier returns.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse_inbound takes the XML as bytes")
    data = bytes(data)
    if len(data) > policy.max_bytes:
        _reject("xml_too_large")
    if not data.strip():
        _reject("xml_malformed")
    _precheck(data, policy.max_depth)
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError, LookupError):
        _reject("xml_malformed")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        _reject("xml_doctype")
    check_tree(root, policy)
    return root


def check_tree(root: _Element, policy: GatePolicy) -> None:
    """The rules on a parsed tree: unique IDs and every signature's shape and algorithms."""
    ids = _collect_ids(root)
    for signature in signatures_in(root):
        check_signature_shape(signature, policy, ids)


_ID_XPATH = etree.XPath(
    "|".join(
        f"//@{name}" for name in ("ID", "AssertionID", "ResponseID", "RequestID", "Id", "xml:id", "wsu:Id")
    ),
    namespaces={"wsu": WSU},
)


def signatures_in(root: _Element) -> list[_Element]:
    """Every ``ds:Signature`` at or under ``root``, matched by name (also in trees xmlsec built,
    whose names lxml's ``find``/``iter(tag)`` may miss because they are not in the parser dictionary)."""
    return [element for element in root.iter(etree.Element) if element.tag == DS_SIGNATURE]


def _collect_ids(root: _Element) -> dict[str, _Element]:
    """Every ID value in the document (any ID attribute name) to its element; duplicates refused."""
    ids: dict[str, _Element] = {}
    for value in _ID_XPATH(root):
        key = str(value)
        if key in ids:
            _reject("xml_duplicate_id")
        ids[key] = value.getparent()
    return ids


def elements_with_id(root: _Element, value: str) -> list[_Element]:
    """The elements of ``root``'s document that carry ``value`` under any ID attribute name."""
    return [found.getparent() for found in _ID_XPATH(root) if found == value]


def id_of(element: _Element) -> str | None:
    """The element's ID value under any of the ID attribute names, if it has one."""
    for name in ID_ATTRIBUTES:
        value = element.get(name)
        if value is not None:
            return str(value)
    return None


def _children(element: _Element) -> list[_Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _only(parent: _Element, tag: str) -> _Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        _reject("xml_signature_shape")
    return found[0]


def _c14n_allowed(algorithm: str | None, policy: GatePolicy) -> bool:
    return algorithm == EXC_C14N or (policy.allow_inclusive_c14n and algorithm in INCLUSIVE_C14N)


def check_signature_shape(
    signature: _Element, policy: GatePolicy, ids: dict[str, _Element] | None = None
) -> str:
    """One ``ds:Signature`` against sections 1 and 5; returns its Reference URI (``#id``).

    Enveloped (the Reference names the ID of the Signature's parent), exactly one Reference,
    no ``ds:Object``, nothing SAML inside the Signature, exc-c14n, transforms within the
    allow-list and algorithms within ``policy``.
    """
    for inner in signature.iter(etree.Element):
        tag = inner.tag
        if tag == DS_OBJECT or tag[1 : tag.find("}")] in _SAML_NAMESPACES:
            _reject("xml_signature_shape")
    allowed = {DS_SIGNED_INFO, DS_SIGNATURE_VALUE, DS_KEY_INFO}
    if any(child.tag not in allowed for child in _children(signature)):
        _reject("xml_signature_shape")
    _only(signature, DS_SIGNATURE_VALUE)
    signed_info = _only(signature, DS_SIGNED_INFO)
    if [child.tag for child in _children(signed_info)] != [
        DS_CANONICALIZATION_METHOD,
        DS_SIGNATURE_METHOD,
        DS_REFERENCE,
    ]:
        _reject("xml_signature_shape")
    c14n, method, reference = _children(signed_info)
    if not _c14n_allowed(c14n.get("Algorithm"), policy):
        _reject("xml_transform_not_allowed")
    if any(child.tag != EC_INCLUSIVE_NAMESPACES for child in _children(c14n)):
        _reject("xml_transform_not_allowed")
    signature_methods = SIGNATURE_METHODS | (SHA1_SIGNATURE_METHODS if policy.allow_sha1 else frozenset())
    if method.get("Algorithm") not in signature_methods or _children(method):
        _reject("xml_algorithm_not_allowed")
    uri = _check_reference(reference, policy)
    parent = signature.getparent()
    if parent is None or id_of(parent) != uri[1:]:
        _reject("xml_signature_shape")
    if ids is not None and ids.get(uri[1:]) is not parent:
        _reject("xml_signature_shape")
    return uri


def _check_reference(reference: _Element, policy: GatePolicy) -> str:
    uri = reference.get("URI")
    if uri is None or not _SAME_DOCUMENT_URI.fullmatch(uri):
        _reject("xml_signature_shape")
    if [child.tag for child in _children(reference)] != [DS_TRANSFORMS, DS_DIGEST_METHOD, DS_DIGEST_VALUE]:
        _reject("xml_signature_shape")
    transforms, digest, _ = _children(reference)
    algorithms = []
    for transform in _children(transforms):
        if transform.tag != DS_TRANSFORM:
            _reject("xml_signature_shape")
        algorithm = transform.get("Algorithm")
        if algorithm != ENVELOPED and not _c14n_allowed(algorithm, policy):
            _reject("xml_transform_not_allowed")
        if any(child.tag != EC_INCLUSIVE_NAMESPACES for child in _children(transform)):
            _reject("xml_transform_not_allowed")
        algorithms.append(algorithm)
    if (
        not 1 <= len(algorithms) <= 2
        or ENVELOPED not in algorithms
        or len(set(algorithms)) != len(algorithms)
    ):
        _reject("xml_transform_not_allowed")
    digests = DIGEST_METHODS | ({SHA1} if policy.allow_sha1 else frozenset())
    if digest.get("Algorithm") not in digests or _children(digest):
        _reject("xml_algorithm_not_allowed")
    return str(uri)


# --- reading ----------------------------------------------------------------------------------


def assertions_of(root: _Element) -> list[_Element]:
    """SAML 2.0 ``Assertion``/``EncryptedAssertion`` and SAML 1.1 ``Assertion`` elements, anywhere.

    Includes ``root`` itself when it is one; callers apply "exactly one, a direct child".
    """
    return [element for element in _iter_elements(root) if element.tag in ASSERTION_TAGS]


def _iter_elements(root: _Element) -> Iterator[_Element]:
    yield from root.iter(etree.Element)


def text_of(element: _Element) -> str:
    """The whole text of a leaf (NameID, AttributeValue, NameIdentifier).

    Refuses an element with any child node (element, comment or processing instruction), so a
    split text can never be read as a shorter identity.
    """
    if len(element) != 0:
        _reject("xml_text_has_children")
    return str(element.text or "")
