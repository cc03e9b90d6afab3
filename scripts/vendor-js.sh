#!/usr/bin/env bash
# Copy the browser builds of the npm packages Parta's pages use into the tree, so that no
# page ever loads a script from a CDN. Versions are pinned here; the SHA-256 of each file
# is written beside it (VENDORED.txt) and checked by the tests.
# Usage: scripts/vendor-js.sh        (needs npm and the npm registry)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# package  version  file inside the package  destination folder
PACKAGES=(
  "htmx.org 2.0.11 dist/htmx.min.js provisioning/web/static/vendor"
  "matrix-widget-api 1.19.0 dist/api.min.js widgets/call/static/vendor"
  "pdfjs-dist 6.5.438 build/pdf.min.mjs widgets/documents/static/vendor"
  "pdfjs-dist 6.5.438 build/pdf.worker.min.mjs widgets/documents/static/vendor"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r package version file dest <<<"$entry"
  mkdir -p "$work/$package" "$ROOT/$dest"
  (cd "$work/$package" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$work/$package"/*.tgz -C "$work/$package" "package/$file"
  cp "$work/$package/package/$file" "$ROOT/$dest/"
  name="$(basename "$file")"
  manifest="$ROOT/$dest/VENDORED.txt"
  touch "$manifest"
  grep -v " $name\$" "$manifest" >"$work/manifest" || true
  digest="$(sha256sum "$ROOT/$dest/$name" | cut -d' ' -f1)"
  echo "$package@$version $digest $name" >>"$work/manifest"
  sort "$work/manifest" >"$manifest"
  echo "vendored $package@$version → $dest/$name"
done
