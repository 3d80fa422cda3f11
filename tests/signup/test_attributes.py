"""The attribute page's values without I/O: form parsing, connector replies, connector requests, the user."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.settings.signup import FlowAttribute, UserFlow
from gateway.signup.attributes import (
    FieldError,
    InvalidConnectorValue,
    connector_request,
    from_connector,
    from_identity,
    missing_required,
    parse_form,
    user_properties,
)

APP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FLOW = UserFlow(
    id="partners",
    identity_providers=["email"],
    attributes=[
        FlowAttribute(name="displayName", required=True),
        FlowAttribute(name="jobTitle"),
        FlowAttribute(name="loyaltyNumber", type="Int", required=True),
        FlowAttribute(name="newsletter", type="Boolean"),
        FlowAttribute(name="agreed", type="Boolean", required=True),
        FlowAttribute(name="company", type="String", max_length=10),
    ],
)
GOOD = {
    "attr-displayName": "  Ada Lovelace ",
    "attr-loyaltyNumber": "42",
    "attr-agreed": "true",
}


def form(**changes: str | None) -> dict[str, str]:
    data = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            data.pop(f"attr-{key}", None)
        else:
            data[f"attr-{key}"] = value
    return data


def test_a_valid_form_gives_typed_trimmed_values() -> None:
    values, errors = parse_form(FLOW, form(newsletter="true", company="Fabrikam"))
    assert errors == []
    assert values == {
        "displayName": "Ada Lovelace",
        "loyaltyNumber": 42,
        "newsletter": True,
        "agreed": True,
        "company": "Fabrikam",
    }


def test_an_unticked_optional_box_is_false_and_empty_optional_text_is_left_out() -> None:
    values, errors = parse_form(FLOW, form(jobTitle="   "))
    assert errors == [] and values["newsletter"] is False and "jobTitle" not in values


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"displayName": ""}, FieldError("displayName", "required")),
        ({"displayName": None}, FieldError("displayName", "required")),
        ({"displayName": "  "}, FieldError("displayName", "required")),
        ({"loyaltyNumber": "abc"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": "4.2"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": "1e3"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": "2147483648"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": "-2147483649"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": "٤٢"}, FieldError("loyaltyNumber", "integer")),
        ({"loyaltyNumber": ""}, FieldError("loyaltyNumber", "required")),
        ({"agreed": None}, FieldError("agreed", "required")),
        ({"agreed": "yes"}, FieldError("agreed", "boolean")),
        ({"newsletter": "on"}, FieldError("newsletter", "boolean")),
        ({"company": "x" * 11}, FieldError("company", "too_long", 10)),
        ({"displayName": "x" * 257}, FieldError("displayName", "too_long", 256)),
        ({"displayName": "Ada\x00"}, FieldError("displayName", "characters")),
        ({"jobTitle": "a\x1bb"}, FieldError("jobTitle", "characters")),
    ],
)
def test_bad_values_are_refused_field_by_field(changes: dict[str, str | None], expected: FieldError) -> None:
    values, errors = parse_form(FLOW, form(**changes))
    assert errors == [expected]
    assert expected.name not in values


def test_integers_accept_signs_and_the_32_bit_bounds() -> None:
    for text, number in (("-2147483648", -(2**31)), ("+2147483647", 2**31 - 1), ("007", 7)):
        values, errors = parse_form(FLOW, form(loyaltyNumber=text))
        assert errors == [] and values["loyaltyNumber"] == number


def test_errors_come_in_page_order() -> None:
    _, errors = parse_form(FLOW, {})
    assert [e.name for e in errors] == ["displayName", "loyaltyNumber", "agreed"]


def test_fields_the_flow_does_not_collect_are_ignored() -> None:
    values, errors = parse_form(FLOW, form(city="Paris", **{"extension_x_admin": "true"}))
    assert errors == [] and "city" not in values


def test_identity_names_prefill_only_the_attributes_the_flow_collects() -> None:
    prefill = from_identity(FLOW, {"displayName": "Ada\x07 L.", "givenName": "Ada", "surname": None})
    assert prefill == {"displayName": "Ada L."}


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"displayName": "Grace"}, {"displayName": "Grace"}),
        ({f"extension_{APP}_loyaltyNumber": 7}, {"loyaltyNumber": 7}),
        ({"extension_loyaltyNumber": 7}, {"loyaltyNumber": 7}),  # the app id part may be left out
        ({"extension_newsletter": True}, {"newsletter": True}),
        ({"email": "other@example.com", "city": "Paris", "identities": []}, {}),
        ({"displayName": None}, {}),
        ({"extension_otherapp_loyaltyNumber": 7}, {}),
    ],
)
def test_a_continue_sets_only_the_flows_attributes(claims: dict[str, Any], expected: dict[str, Any]) -> None:
    assert from_connector(FLOW, claims, APP) == expected


@pytest.mark.parametrize(
    "claims",
    [
        {"extension_loyaltyNumber": "7"},
        {"extension_loyaltyNumber": True},
        {"extension_loyaltyNumber": 2**31},
        {"extension_loyaltyNumber": 7.0},
        {"extension_newsletter": "true"},
        {"extension_newsletter": 1},
        {"displayName": 42},
        {"displayName": "x" * 257},
        {"extension_company": "x" * 11},
        {"displayName": "bad\x00"},
    ],
)
def test_a_continue_with_a_wrongly_typed_value_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidConnectorValue):
        from_connector(FLOW, claims, APP)


def test_missing_required_sees_blank_and_false_values() -> None:
    assert missing_required(FLOW, {"displayName": "", "loyaltyNumber": 0, "agreed": False}) == [
        "displayName",
        "agreed",
    ]
    assert missing_required(FLOW, {"displayName": "A", "loyaltyNumber": 0, "agreed": True}) == []


def test_the_connector_request_carries_claims_with_values_and_extension_names() -> None:
    body = connector_request(
        FLOW,
        {"displayName": "Ada", "jobTitle": "", "loyaltyNumber": 0, "newsletter": False},
        email="ada@fabrikam.example",
        identities=[
            {"signInType": "federated", "issuer": "mail", "issuerAssignedId": "ada@fabrikam.example"}
        ],
        ui_locales="fr-FR",
        extensions_app_id=APP,
    )
    assert body == {
        "email": "ada@fabrikam.example",
        "identities": [
            {"signInType": "federated", "issuer": "mail", "issuerAssignedId": "ada@fabrikam.example"}
        ],
        "displayName": "Ada",
        f"extension_{APP}_loyaltyNumber": 0,
        f"extension_{APP}_newsletter": False,
        "ui_locales": "fr-FR",
    }


def test_the_connector_request_leaves_out_identities_and_locales_it_does_not_have() -> None:
    body = connector_request(
        FLOW, {}, email="a@b.example", identities=[], ui_locales="", extensions_app_id=APP
    )
    assert body == {"email": "a@b.example"}


def test_user_properties_use_graph_and_extension_names() -> None:
    props = user_properties(
        FLOW, {"displayName": "Ada", "loyaltyNumber": 42, "agreed": True, "jobTitle": ""}, APP
    )
    assert props == {
        "displayName": "Ada",
        f"extension_{APP}_loyaltyNumber": 42,
        f"extension_{APP}_agreed": True,
    }
