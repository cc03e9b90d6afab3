"""Which account a person of the region's single sign-on is: by the phone, e-mail or
roster ID Parta holds.

The provider vouches for a claim (docs/operations.md, "The region's single sign-on");
Parta links the person only to an account it made for someone with that very phone number
or address. Two accounts sharing one (a parent's phone given for their child too) link
neither: guessing between them could hand one person another's chats.
"""

from __future__ import annotations

import logging
from typing import Literal

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.db.models import ROSTER_ID_MAX_CHARS, Person
from provisioning.services.limits import PHONE_REGION

log = logging.getLogger(__name__)

Claim = Literal["phone_number", "email", "roster_id"]
MAX_CLAIM_CHARS = 320


def e164(text: str) -> str | None:
    """The number in E.164 (+79123456789), however it was typed; None if it is not one."""
    try:
        number = phonenumbers.parse(text.strip()[:64], PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def account_for_claim(session: Session, claim: Claim, value: str) -> str | None:
    """The Matrix user ID of the one person whose phone, e-mail or roster ID is `value`,
    or None."""
    if claim == "roster_id":
        accounts = _accounts_by_roster_id(session, value)
    elif claim == "email":
        accounts = _accounts_by_email(session, value)
    else:
        accounts = _accounts_by_phone(session, value)
    if len(accounts) > 1:
        log.warning(
            "a sign-on claim matches several accounts; none is linked",
            extra={"claim": claim, "accounts": len(accounts)},
        )
        return None
    return next(iter(accounts), None)


def _accounts_by_roster_id(session: Session, value: str) -> set[str]:
    """Exactly as the roster gave it: roster IDs are unique, so at most one account."""
    wanted = value.strip()
    if not wanted or len(wanted) > ROSTER_ID_MAX_CHARS:
        return set()
    rows = session.scalars(
        select(Person.matrix_user_id).where(
            Person.roster_id == wanted, Person.matrix_user_id.is_not(None)
        )
    )
    return {row for row in rows if row}


def _accounts_by_email(session: Session, value: str) -> set[str]:
    address = value.strip().lower()
    if not address or len(address) > MAX_CLAIM_CHARS:
        return set()
    rows = session.scalars(
        select(Person.matrix_user_id).where(
            func.lower(Person.email) == address, Person.matrix_user_id.is_not(None)
        )
    )
    return {row for row in rows if row}


def _accounts_by_phone(session: Session, value: str) -> set[str]:
    """People's phones are kept as they were typed ("8 (912) 345-67-89"), so the few
    ending in the same two digits are read and compared in E.164."""
    wanted = e164(value)
    if wanted is None:
        return set()
    rows = session.execute(
        select(Person.phone, Person.matrix_user_id).where(
            Person.phone.like(f"%{wanted[-2:]}"), Person.matrix_user_id.is_not(None)
        )
    )
    return {user_id for phone, user_id in rows if user_id and phone and e164(phone) == wanted}
