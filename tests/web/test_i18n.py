"""The admin UI's catalogues: every message translated, Russian plurals right, nothing stale."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.support import Translations

from provisioning.i18n import LOCALES, catalogue_path, translations
from provisioning.web import STATIC_DIR

CALL_VENDOR = Path(__file__).resolve().parents[2] / "widgets" / "call" / "static" / "vendor"
DOCUMENTS_VENDOR = CALL_VENDOR.parents[2] / "documents" / "static" / "vendor"

ROOT = Path(__file__).resolve().parents[2]
METHODS = [
    ("provisioning/**.py", "python"),
    ("provisioning/web/templates/**.html", "jinja2"),
]
OPTIONS = {
    "provisioning/web/templates/**.html": {
        "extensions": "jinja2.ext.i18n",
        "trim_blocks": "true",
        "lstrip_blocks": "true",
    }
}


def source_messages() -> set[str | tuple[str, ...]]:
    found: set[str | tuple[str, ...]] = set()
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT), METHODS, OPTIONS, keywords=keywords, strip_comment_tags=True
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_of_the_sources_is_translated(locale: str) -> None:
    with catalogue_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale)
    translated = {
        (m.id if isinstance(m.id, str) else tuple(m.id)): m.string
        for m in catalog
        if m.id and "fuzzy" not in m.flags
    }
    wanted = source_messages()
    assert len(wanted) > 100
    missing = sorted(str(m) for m in wanted if not translated.get(m))
    assert not missing, f"untranslated in {locale} (run scripts/i18n.sh, then translate): {missing}"
    stale = sorted(str(m) for m in translated if m not in wanted)
    assert not stale, f"messages no source uses any more (run scripts/i18n.sh): {stale}"
    plural_forms = 3 if locale == "ru" else 2
    for message in catalog:
        if message.id and not isinstance(message.id, str):
            assert len(message.string) == plural_forms and all(message.string), message.id


def test_russian_plurals_follow_the_numbers() -> None:
    ru: Translations = translations("ru")
    forms = {n: ru.ngettext("%(count)s pupil", "%(count)s pupils", n) % {"count": n} for n in
             (1, 2, 5, 11, 21, 22, 25, 101, 111)}  # fmt: skip
    assert forms == {
        1: "1 ученик", 2: "2 ученика", 5: "5 учеников", 11: "11 учеников", 21: "21 ученик",
        22: "22 ученика", 25: "25 учеников", 101: "101 ученик", 111: "111 учеников",
    }  # fmt: skip
    assert (
        translations("en").ngettext("%(count)s pupil", "%(count)s pupils", 1) == "%(count)s pupil"
    )


def test_placeholders_survive_translation() -> None:
    """A translation that drops or renames a %(name)s placeholder would crash a page."""
    import re

    with catalogue_path("ru").open("rb") as po:
        catalog = read_po(po, locale="ru")
    placeholder = re.compile(r"%\((\w+)\)s")
    for message in catalog:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        wanted = set(placeholder.findall(ids[-1]))
        for text in strings:
            assert set(placeholder.findall(text)) == wanted, (message.id, text)


@pytest.mark.parametrize(
    "vendor",
    [STATIC_DIR / "vendor", CALL_VENDOR, DOCUMENTS_VENDOR],
    ids=["admin", "call", "documents"],
)
def test_vendored_scripts_are_the_pinned_builds(vendor: Path) -> None:
    """Pages load scripts only from this site; each file is the one scripts/vendor-js.sh pinned."""
    lines = (vendor / "VENDORED.txt").read_text().splitlines()
    assert lines
    for line in lines:
        package, digest, name = line.split()
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, package
