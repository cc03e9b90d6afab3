"""Languages of the admin UI: Russian by default, English on request.

Catalogues are Babel `.po` files under `provisioning/web/locale/`; they are compiled in
memory when first used, so no compiled `.mo` file is kept in the repository. Message IDs
are English. `N_` marks a message for extraction where it is translated later (errors
raised by services, which do not know the reader's language).
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES: Final = ("ru", "en")
DEFAULT_LOCALE: Final = "ru"
LOCALE_DIR: Final = Path(__file__).resolve().parent / "web" / "locale"
LANGUAGE_NAMES: Final = {"ru": "Русский", "en": "English"}


def N_(message: str) -> str:
    """Mark a message for translation without translating it here."""
    return message


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


@cache
def translations(locale: str) -> Translations:
    """The compiled catalogue of a supported locale (cached for the process's life)."""
    if locale not in LOCALES:
        raise ValueError(f"unsupported locale {locale!r}; use one of {', '.join(LOCALES)}")
    with catalogue_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain="messages")


def pick_locale(requested: str | None) -> str:
    return requested if requested in LOCALES else DEFAULT_LOCALE
