"""Password rules a school can live with: long enough, not a well-known one, not your name.

One set of rules for registration, a personal link and "forgot password", explained on
each form (`RULES`). Length beats complexity rules (NIST SP 800-63B): no demands for
digits and symbols, but the passwords every attacker tries first are refused.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from provisioning.i18n import N_

MIN_LENGTH: Final = 8
MAX_LENGTH: Final = 256
COMMON_PASSWORDS_FILE: Final = Path(__file__).with_name("common_passwords.txt")
RULES: Final = N_(
    "At least 8 characters; not a well-known password such as 12345678 or qwerty123; "
    "not your name or phone number. A few words in a row are easy to remember."
)
FormProblem = tuple[str, dict[str, object]]


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().casefold() for line in lines if line.strip() and not line.startswith("#")
    )


def _squashed(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def password_problem(password: str, *, personal: tuple[str, ...] = ()) -> FormProblem | None:
    """Why `password` is refused (a message marked with N_, and its values), or None.

    Args:
        personal: what the password must not be: the user name, the person's name, the
            phone number (compared without case, spaces or punctuation).
    """
    if len(password) < MIN_LENGTH:
        return N_("The password needs at least %(count)s characters."), {"count": MIN_LENGTH}
    if len(password) > MAX_LENGTH:
        return N_("The password may have at most %(count)s characters."), {"count": MAX_LENGTH}
    if password.strip().casefold() in common_passwords() or len(set(password)) <= 2:
        return N_("This password is one of the first an attacker tries. Choose another."), {}
    squashed = _squashed(password)
    for value in personal:
        if value.startswith("@"):  # a user ID: its localpart is the name people type
            value = value[1:].split(":", 1)[0]
        own = _squashed(value)
        if own.isdigit() and len(own) > 10:  # a phone: "8 900…" and "+7 900…" are one number
            own = own[-10:]
        if len(own) >= 4 and (own in squashed or squashed in own):
            return (
                N_("The password must not be your name, user name or phone number."),
                {},
            )
    return None
