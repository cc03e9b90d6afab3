"""The console SMS gateway's outbox of a test deployment: the codes "phones" received."""

from __future__ import annotations

import re
import secrets

import phonenumbers

from parta.deployment import LocalDeployment
from provisioning.sms.console import read_outbox
from tests.harness.waiting import wait_until


def new_mobile_number() -> str:
    """A Russian mobile number no other test uses, as people type it: "+7 900 123-45-67"."""
    digits = f"{secrets.randbelow(10**7):07d}"
    return f"+7 916 {digits[:3]}-{digits[3:5]}-{digits[5:]}"


def e164(typed: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(typed, "RU"), phonenumbers.PhoneNumberFormat.E164
    )


def texts_to(region: LocalDeployment, typed: str) -> list[str]:
    number = e164(typed)
    return [m["text"] for m in read_outbox(region.settings.sms_outbox_path) if m["to"] == number]


def code_for(region: LocalDeployment, typed: str, *, after: int = 0, within: float = 30) -> str:
    """The code of the message after the first `after` ones sent to this number (waits)."""
    texts = wait_until(
        lambda: found if len(found := texts_to(region, typed)) > after else None,
        f"an SMS to {typed} in the outbox",
        within=within,
    )
    match = re.search(r"\b(\d{6})\b", texts[after])
    assert match, texts[after]
    return match.group(1)


def flash_call_code_for(region: LocalDeployment, typed: str, *, within: float = 30) -> str:
    """The last 4 digits of the newest simulated flash call to this number (waits)."""
    number = e164(typed)

    def calls() -> list[str] | None:
        outbox = read_outbox(region.settings.sms_outbox_path)
        found = [m["call_from"] for m in outbox if m["to"] == number and "call_from" in m]
        return found or None

    caller = wait_until(calls, f"a flash call to {typed} in the outbox", within=within)[-1]
    return "".join(ch for ch in caller if ch.isdigit())[-4:]
