"""Which email addresses may be invited (b2b-concepts §2.1), shared by the admin API and the YAML.

The user name (before ``@``) is plain ASCII and refuses ``~ ! # $ % ^ & * ( ) + = [ ] { } \\ / | ; : " < > ?
,``, spaces and control characters; ``.`` and ``-`` may appear anywhere except first or last, ``_``
anywhere. Two dots in a row are refused as well: such an address cannot be delivered (RFC 5321 dot-atom).
At most 64 characters before the ``@`` and 254 in all. The domain is a DNS name of at least two labels;
it is compared and stored lower-cased, the user name is kept as typed.

``ADDRESS_PATTERN`` is the same rule as an ECMA-262 regular expression (for the OpenAPI document).
"""

from __future__ import annotations

import re

MAX_ADDRESS = 254
MAX_USER_NAME = 64
REFUSED = frozenset('~!#$%^&*()+=[]{}\\/|;:"<>?,')

_EDGE = r"[A-Za-z0-9_'`]"
_MIDDLE = r"[A-Za-z0-9_'`-]"
_USER_NAME = rf"{_EDGE}(?:{_MIDDLE}*(?:\.{_MIDDLE}+)*\.?{_EDGE})?"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
ADDRESS_PATTERN = rf"^{_USER_NAME}@{_DOMAIN}$"
_USER_NAME_RE = re.compile(_USER_NAME)
_DOMAIN_RE = re.compile(_DOMAIN)


def _user_name_problem(user_name: str) -> str:
    if not user_name:
        return "the address has no user name before the @"
    if len(user_name) > MAX_USER_NAME:
        return f"the user name is longer than {MAX_USER_NAME} characters"
    for char in user_name:
        if char in REFUSED:
            return f"the user name may not contain {char!r}"
        if not char.isascii() or not char.isprintable() or char.isspace():
            return "the user name may contain only printable ASCII characters"
    if user_name[0] in ".-" or user_name[-1] in ".-":
        return "the user name may not start or end with '.' or '-'"
    if ".." in user_name:
        return "the user name may not contain two dots in a row"
    return "the user name is not valid"


def check_address(address: str) -> str:
    """The address with its domain lower-cased; ValueError saying what is wrong otherwise."""
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"an email address has at most {MAX_ADDRESS} characters")
    if address.count("@") != 1:
        raise ValueError("an email address has exactly one @")
    user_name, _, domain = address.partition("@")
    if len(user_name) > MAX_USER_NAME or _USER_NAME_RE.fullmatch(user_name) is None:
        raise ValueError(_user_name_problem(user_name))
    if _DOMAIN_RE.fullmatch(domain) is None:
        raise ValueError("the part after the @ is not a valid domain name")
    return f"{user_name}@{domain.lower()}"


def domain_of(address: str) -> str:
    """The lower-cased domain of an address that passed ``check_address``."""
    return address.rpartition("@")[2].lower()
