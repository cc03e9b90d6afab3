#!/usr/bin/env bash
# Extract the admin UI's messages and merge them into the Russian and English catalogues.
# Then translate the new entries in provisioning/web/locale/ru/LC_MESSAGES/messages.po
# (English message IDs are their own translation). The tests fail while any is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
LOCALE_DIR=provisioning/web/locale
"$PYBABEL" extract -F babel.cfg -k N_ --no-location --sort-output \
  --project Parta --copyright-holder "Parta developers" -o "$LOCALE_DIR/messages.pot" .
for locale in ru en; do
  po="$LOCALE_DIR/$locale/LC_MESSAGES/messages.po"
  if [ -f "$po" ]; then
    "$PYBABEL" update --no-fuzzy-matching --ignore-obsolete -i "$LOCALE_DIR/messages.pot" -d "$LOCALE_DIR" -l "$locale"
  else
    "$PYBABEL" init -i "$LOCALE_DIR/messages.pot" -d "$LOCALE_DIR" -l "$locale"
  fi
done
