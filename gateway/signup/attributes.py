"""The attribute page's fields and their values, without I/O (table-tested in tests/signup/).

Values are kept by attribute name (``loyaltyNumber``), typed: ``str`` for built-in and String
attributes, ``bool`` for Boolean, ``int`` for Int. On the user and in API connector requests a custom
attribute is named ``extension_<extensions app id>_<name>``; in a connector's Continue reply the
``_<extensions app id>_`` part may be left out (``extension_<name>``), as the reference allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.settings.signup import BUILT_IN_ATTRIBUTES, FlowAttribute, UserFlow

Value = str | bool | int
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # Graph directory extensions: Int is 32-bit
DEFAULT_STRING_LENGTH = 256
FORM_PREFIX = "attr-"
_INTEGER = re.compile(r"^[+-]?[0-9]{1,10}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

AUTOCOMPLETE = {
    "displayName": "name",
    "givenName": "given-name",
    "surname": "family-name",
    "jobTitle": "organization-title",
    "streetAddress": "street-address",
    "city": "address-level2",
    "postalCode": "postal-code",
    "state": "address-level1",
    "country": "country-name",
}
"""HTML autocomplete tokens for the built-in attributes (WHATWG autofill field names)."""

CONNECTOR_TYPES_SENDING_IDENTITIES = frozenset({"google", "facebook", "email_otp"})
"""The reference sends ``identities`` for Google, Facebook and email one-time passcode sign-ups."""


class InvalidConnectorValue(ValueError):
    """An API connector's Continue carried a value the flow's attribute cannot hold."""


@dataclass(frozen=True)
class FieldError:
    """A problem with one field: ``code`` is a catalogue key suffix (``signup.error.<code>``)."""

    name: str
    code: str
    limit: int | None = None


def max_length(attribute: FlowAttribute) -> int:
    if attribute.max_length is not None:
        return attribute.max_length
    return BUILT_IN_ATTRIBUTES.get(attribute.name, DEFAULT_STRING_LENGTH)


def kind(attribute: FlowAttribute) -> str:
    """``String``, ``Boolean`` or ``Int``; built-in attributes are strings."""
    return attribute.type or "String"


def stored_name(attribute: FlowAttribute, extensions_app_id: str) -> str:
    """The attribute's name on the user object and in connector requests."""
    return f"extension_{extensions_app_id}_{attribute.name}" if attribute.custom else attribute.name


def from_identity(flow: UserFlow, names: Mapping[str, str | None]) -> dict[str, Value]:
    """Pre-fill from the identity provider: its display, given and family names, where the flow asks."""
    values: dict[str, Value] = {}
    for attribute in flow.attributes:
        given = names.get(attribute.name)
        if not attribute.custom and given:
            values[attribute.name] = _clean(given)[: max_length(attribute)]
    return values


def parse_form(flow: UserFlow, form: Mapping[str, str]) -> tuple[dict[str, Value], list[FieldError]]:
    """What the user typed, typed and checked; errors per field, in page order."""
    values: dict[str, Value] = {}
    errors: list[FieldError] = []
    for attribute in flow.attributes:
        raw = form.get(FORM_PREFIX + attribute.name, "")
        if kind(attribute) == "Boolean":
            if raw not in ("", "true"):
                errors.append(FieldError(attribute.name, "boolean"))
            elif attribute.required and raw != "true":
                errors.append(FieldError(attribute.name, "required"))
            else:
                values[attribute.name] = raw == "true"
            continue
        text = raw.strip()
        if not text:
            if attribute.required:
                errors.append(FieldError(attribute.name, "required"))
            continue
        if kind(attribute) == "Int":
            if not _INTEGER.match(text) or not INT_MIN <= int(text) <= INT_MAX:
                errors.append(FieldError(attribute.name, "integer"))
                continue
            values[attribute.name] = int(text)
            continue
        if _CONTROL.search(text):
            errors.append(FieldError(attribute.name, "characters"))
        elif len(text) > max_length(attribute):
            errors.append(FieldError(attribute.name, "too_long", max_length(attribute)))
        else:
            values[attribute.name] = text
    return values, errors


def from_connector(flow: UserFlow, claims: Mapping[str, Any], extensions_app_id: str) -> dict[str, Value]:
    """The flow's attributes in a Continue reply, checked against their types. Claims the flow does not
    collect (``email``, ``identities``, anything else) are not taken; a wrong type raises."""
    taken: dict[str, Value] = {}
    for attribute in flow.attributes:
        names = (
            (f"extension_{extensions_app_id}_{attribute.name}", f"extension_{attribute.name}")
            if attribute.custom
            else (attribute.name,)
        )
        present = [n for n in names if n in claims and claims[n] is not None]
        if not present:
            continue
        value = claims[present[0]]
        taken[attribute.name] = _checked(attribute, value)
    return taken


def _checked(attribute: FlowAttribute, value: object) -> Value:
    expected = kind(attribute)
    if expected == "Boolean":
        if isinstance(value, bool):
            return value
        raise InvalidConnectorValue(f"{attribute.name} must be a JSON boolean")
    if expected == "Int":
        if isinstance(value, int) and not isinstance(value, bool) and INT_MIN <= value <= INT_MAX:
            return value
        raise InvalidConnectorValue(f"{attribute.name} must be a 32-bit JSON integer")
    if not isinstance(value, str) or _CONTROL.search(value) or len(value) > max_length(attribute):
        raise InvalidConnectorValue(
            f"{attribute.name} must be a string of at most {max_length(attribute)} characters"
        )
    return value.strip()


def missing_required(flow: UserFlow, values: Mapping[str, Value]) -> list[str]:
    """Required attributes still without a value (a connector may not blank a required field)."""
    return [
        a.name
        for a in flow.attributes
        if a.required and (a.name not in values or values[a.name] == "" or values[a.name] is False)
    ]


def connector_request(
    flow: UserFlow,
    values: Mapping[str, Value],
    *,
    email: str,
    identities: Sequence[Mapping[str, str]],
    ui_locales: str,
    extensions_app_id: str,
) -> dict[str, Any]:
    """The API connector's JSON body: claims with a value only, and only the flow's attributes."""
    body: dict[str, Any] = {"email": email}
    if identities:
        body["identities"] = [dict(i) for i in identities]
    for attribute in flow.attributes:
        value = values.get(attribute.name)
        if value is None or value == "":
            continue
        body[stored_name(attribute, extensions_app_id)] = value
    if ui_locales:
        body["ui_locales"] = ui_locales
    return body


def user_properties(flow: UserFlow, values: Mapping[str, Value], extensions_app_id: str) -> dict[str, Value]:
    """What the new guest object gets: built-in properties by name, custom ones as extension names."""
    return {
        stored_name(a, extensions_app_id): values[a.name]
        for a in flow.attributes
        if a.name in values and values[a.name] != ""
    }


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).strip()
