"""Names on the Matrix side that several parts must agree on."""

from __future__ import annotations

# Every room alias Parta manages starts with one of these; the appservice registration
# reserves them (exclusive namespace), and the reconciler maps such aliases back to rows.
MANAGED_ALIAS_PREFIXES: tuple[str, ...] = ("region-", "school-")
