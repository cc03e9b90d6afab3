"""Names on the Matrix side that several parts must agree on.

Managed rooms carry aliases built only from stable keys (a school's slug, a class's
graduation year and letter), so a promotion renames rooms without changing their alias
and every managed room maps back to its row.
"""

from __future__ import annotations

import re

# Every room alias Parta manages starts with one of these; the appservice registration
# reserves them (exclusive namespace), and the reconciler maps such aliases back to rows.
# `docs-` rooms (a person's "Мои документы") are made by the documents service, on first use.
# `appt-` rooms (an appointment of a teacher and a parent) are made by provisioning at booking.
MANAGED_ALIAS_PREFIXES: tuple[str, ...] = ("region-", "school-", "family-", "docs-", "appt-")

# Russian to Latin, readable (close to the Russian passport's ICAO table, with й→y, ю→yu,
# я→ya as people write their names in Latin letters), lower case only.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
}  # fmt: skip
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def transliterate(text: str) -> str:
    """Lower-case Latin spelling of Russian text; other letters pass through lower-cased."""
    return "".join(_CYRILLIC.get(ch, ch) for ch in text.lower())


def slugify(text: str, *, max_length: int = 40) -> str:
    """ASCII slug for aliases: "Школа № 57" → "shkola-57". Empty input gives ""."""
    slug = _NOT_SLUG.sub("-", transliterate(text)).strip("-")
    return slug[:max_length].rstrip("-")
