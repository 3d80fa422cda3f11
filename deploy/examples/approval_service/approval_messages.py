"""What the signing-up user reads on the gateway's block page, in English or French.

The gateway forwards the user's ``ui_locales`` (OpenID Connect: space-separated language tags, most
preferred first). French is chosen when the first tag's primary language is ``fr``; English otherwise.
"""

from __future__ import annotations

from typing import Literal

MessageKey = Literal["pending", "denied", "provider"]
Language = Literal["en", "fr"]

MESSAGES: dict[MessageKey, dict[Language, str]] = {
    "pending": {
        "en": "Your access request is waiting for approval. You can sign in once an administrator has "
        "approved it.",
        "fr": "Votre demande d'accès est en attente d'approbation. Vous pourrez vous connecter dès qu'un "
        "administrateur l'aura approuvée.",
    },
    "denied": {
        "en": "Your access request was declined.",
        "fr": "Votre demande d'accès a été refusée.",
    },
    "provider": {
        "en": "Access requests cannot be processed for this identity provider. Please sign up with an "
        "email one-time passcode, Google or Facebook.",
        "fr": "Les demandes d'accès ne peuvent pas être traitées pour ce fournisseur d'identité. "
        "Inscrivez-vous avec un code à usage unique envoyé par e-mail, Google ou Facebook.",
    },
}


def language(ui_locales: str | None) -> Language:
    """``fr`` when the most preferred tag is French (``fr``, ``fr-CA``, ...), else ``en``."""
    tags = (ui_locales or "").split()
    return "fr" if tags and tags[0].split("-")[0].lower() == "fr" else "en"


def message(key: MessageKey, ui_locales: str | None) -> str:
    return MESSAGES[key][language(ui_locales)]
