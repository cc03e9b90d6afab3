"""The limits of what people type about people, one set for every edge: CSV = API = UI.

A value refused here is refused with the same sentence by the roster import, the REST
API's schemas and the admin UI's forms, so no edge lets in what another would refuse.
Issue 18: a 70,000-character name the API would have refused came in by CSV, and every
later sync failed on Synapse's 64 KiB event limit (`M_TOO_LARGE`).

Each check takes the text as typed and returns it cleaned, or raises `FieldRefused` with
a message template (marked with `N_`) and its values, translated where it is shown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Final

import phonenumbers
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from provisioning.i18n import N_

NAME_MIN_CHARS: Final = 2
NAME_MAX_CHARS: Final = 120  # a full name with patronymic is some 40; Synapse's own limit is 256
SUBJECT_MAX_CHARS: Final = 60
EMAIL_MAX_CHARS: Final = 254  # RFC 5321's longest forward path, less the brackets
PHONE_MAX_CHARS: Final = 32
# Numbers written without a country code ("8 900 …", "900 …") are read as Russian ones,
# the country the admin UI's default language and the registration form are written for.
PHONE_REGION: Final = "RU"
ROSTER_ID_MAX_CHARS: Final = 64  # as people.roster_id
SHOWN_CHARS: Final = 40  # how much of a refused value a message repeats

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Right-to-left overrides and isolates turn a name around on screen ("spoofing").
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class FieldRefused(ValueError):
    """A value is refused; `template` % `params` says why (English; translate `template`)."""

    def __init__(self, template: str, **params: object) -> None:
        self.template = template
        self.params = params
        super().__init__(template % params if params else template)


def shown(text: str) -> str:
    """The start of a refused value, for a message that must not repeat 70,000 characters."""
    printable = "".join(c if c.isprintable() else "\ufffd" for c in text[: SHOWN_CHARS + 1])
    return printable if len(text) <= SHOWN_CHARS else printable[:SHOWN_CHARS] + "…"


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI_CONTROLS for c in text)


_NAME_MESSAGES: Final = (
    N_("the name contains a control character (such as NUL or a line break)"),
    N_("the name has %(length)s characters; at most %(limit)s are allowed"),
    N_("the name is empty or too short: write a first and a last name"),
)
_SUBJECT_MESSAGES: Final = (
    N_("the subject contains a control character (such as NUL or a line break)"),
    N_("the subject has %(length)s characters; at most %(limit)s are allowed"),
    N_("the subject is empty"),
)


def _checked_text(text: str, messages: tuple[str, str, str], *, least: int, most: int) -> str:
    control, too_long, too_short = messages
    stripped = text.strip()
    if _has_control_character(stripped):
        raise FieldRefused(control)
    cleaned = " ".join(stripped.split())
    if len(cleaned) > most:
        raise FieldRefused(too_long, length=len(cleaned), limit=most)
    if len(cleaned) < least:
        raise FieldRefused(too_short)
    return cleaned


def person_name(text: str) -> str:
    """A person's full name: 2 to 120 characters, spaces collapsed, no control characters."""
    return _checked_text(text, _NAME_MESSAGES, least=NAME_MIN_CHARS, most=NAME_MAX_CHARS)


def subject_name(text: str) -> str:
    """A subject taught ("Математика"): 1 to 60 characters, no control characters."""
    return _checked_text(text, _SUBJECT_MESSAGES, least=1, most=SUBJECT_MAX_CHARS)


def phone_number(text: str) -> str:
    """A phone number as the registration form takes it: one `phonenumbers` calls valid.

    Returned as typed (stripped): people recognise their own way of writing it.
    """
    stripped = text.strip()
    if len(stripped) > PHONE_MAX_CHARS or _has_control_character(stripped):
        raise FieldRefused(N_("«%(text)s» is not a phone number"), text=shown(stripped))
    try:
        number = phonenumbers.parse(stripped, PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise FieldRefused(N_("«%(text)s» is not a phone number"), text=shown(stripped)) from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldRefused(N_("«%(text)s» is not a phone number"), text=shown(stripped))
    return stripped


_MOBILE_TYPES: Final = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


def mobile_number(text: str) -> str:
    """A mobile number a code can be sent to, in E.164 ("8 (900) 123-45-67" → "+79001234567").

    Russian ways of writing it are read as Russian numbers (+7, 8, or the ten digits
    alone); a refusal says what a number looks like, since most refusals are a digit
    too many or too few.
    """
    stripped = text.strip()
    if not stripped:
        raise FieldRefused(N_("Enter your mobile number, such as +7 900 123-45-67."))
    if len(stripped) > PHONE_MAX_CHARS or _has_control_character(stripped):
        raise FieldRefused(N_("«%(text)s» is not a phone number"), text=shown(stripped))
    try:
        number = phonenumbers.parse(stripped, PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise FieldRefused(_MISTYPED, text=shown(stripped)) from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldRefused(_MISTYPED, text=shown(stripped))
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise FieldRefused(
            N_("«%(text)s» is not a mobile number: codes come by SMS, so give a mobile one."),
            text=shown(stripped),
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_MISTYPED: Final = N_(
    "«%(text)s» does not look like a phone number: check the digits. A Russian mobile "
    "number has 11 digits, such as +7 900 123-45-67 or 8 900 123-45-67."
)


def looks_like_phone(text: str) -> bool:
    """Whether a sign-in name is a phone number rather than a user name ("+7 900…", "8900…")."""
    stripped = text.strip()
    return (
        bool(re.fullmatch(r"\+?[\d\s()\-]{10,24}", stripped))
        and sum(c.isdigit() for c in stripped) >= 10
    )


def email_address(text: str) -> str:
    """An e-mail address: something@somewhere.tld, at most 254 characters."""
    stripped = text.strip()
    if (
        len(stripped) > EMAIL_MAX_CHARS
        or _has_control_character(stripped)
        or not _EMAIL.match(stripped)
    ):
        raise FieldRefused(N_("«%(text)s» is not an e-mail address"), text=shown(stripped))
    return stripped


_ROSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")


def roster_id(text: str) -> str:
    """The region roster's ID of a person ("RU-77-000123", a UUID): letters of the Latin
    alphabet, digits and `.`, `_`, `:`, `-`, at most 64 characters. Providers send it back
    verbatim as a claim, so it is kept exactly (stripped) and compared exactly."""
    stripped = text.strip()
    if len(stripped) > ROSTER_ID_MAX_CHARS or not _ROSTER_ID.match(stripped):
        raise FieldRefused(
            N_(
                "«%(text)s» is not a roster ID: at most %(limit)s Latin letters, digits, "
                "dots, colons, hyphens or underscores"
            ),
            text=shown(stripped),
            limit=ROSTER_ID_MAX_CHARS,
        )
    return stripped


def _for_pydantic(check: Callable[[str], str]) -> AfterValidator:
    """The check as a pydantic validator whose message is the check's own sentence."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except FieldRefused as exc:
            raise PydanticCustomError("parta_field_refused", str(exc)) from exc

    return AfterValidator(validate)


def _blank_is_none(value: object) -> object:
    """An optional field left blank is absent, as an empty CSV cell or form field is."""
    return None if isinstance(value, str) and not value.strip() else value


PersonName = Annotated[str, _for_pydantic(person_name)]
SubjectName = Annotated[str, _for_pydantic(subject_name)]
PhoneNumber = Annotated[str, _for_pydantic(phone_number)]
EmailAddress = Annotated[str, _for_pydantic(email_address)]
RosterId = Annotated[str, _for_pydantic(roster_id)]
# Optional fields: blank (or only spaces) is no value at all.
OptionalSubjectName = Annotated[SubjectName | None, BeforeValidator(_blank_is_none)]
OptionalPhoneNumber = Annotated[PhoneNumber | None, BeforeValidator(_blank_is_none)]
OptionalEmailAddress = Annotated[EmailAddress | None, BeforeValidator(_blank_is_none)]
OptionalRosterId = Annotated[RosterId | None, BeforeValidator(_blank_is_none)]
