"""Fill catalogue entries from a Python dict of translations: scripts/translate.py ru FILE.py

FILE.py defines RU (or EN) = {msgid or (singular, plural): text or tuple of plural forms}.
Entries already translated are kept unless the dict gives a new text. English entries
are filled with their own message IDs (`scripts/translate.py en`).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    locale = sys.argv[1]
    path = ROOT / "provisioning/web/locale" / locale / "LC_MESSAGES/messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    given = runpy.run_path(sys.argv[2])[locale.upper()] if len(sys.argv) > 2 else {}
    missing = []
    for message in catalog:
        if not message.id:
            continue
        if message.id in given:
            message.string = given[message.id]
        elif locale == "en" and not any(
            message.string if isinstance(message.string, tuple) else [message.string]
        ):
            message.string = message.id
        message.flags.discard("fuzzy")
        text = message.string
        if not (all(text) if isinstance(text, tuple) else text):
            missing.append(message.id)
    with path.open("wb") as po:
        write_po(po, catalog, width=100, omit_header=False, no_location=True, sort_output=True)
    print(f"{path}: {len(missing)} untranslated", *missing[:20], sep="\n  ")


if __name__ == "__main__":
    main()
