"""The one interface every SMS gateway offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import phonenumbers

MAX_TEXT_CHARS = 160  # one SMS in GSM-7; our texts are short, a longer one is a bug


@dataclass(frozen=True)
class SmsMessage:
    """A text for one phone: `to` in E.164 (+79001234567)."""

    to: str
    text: str

    def __post_init__(self) -> None:
        try:
            number = phonenumbers.parse(self.to, None)
        except phonenumbers.NumberParseException:
            number = None
        if (
            number is None
            or phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != self.to
        ):
            raise ValueError("an SMS goes to a number in E.164 form, such as +79001234567")
        if not self.text or len(self.text) > MAX_TEXT_CHARS:
            raise ValueError(f"an SMS text has 1 to {MAX_TEXT_CHARS} characters")

    @property
    def to_digits(self) -> str:
        """The number without "+", as SMPP and most providers' APIs want it."""
        return self.to.removeprefix("+")


FLASH_CODE_DIGITS = 4  # a flash call's code: the last digits of the calling number


@dataclass(frozen=True)
class FlashCall:
    """A call to `to` (E.164) that rings once and ends, from a number ending in `code`.

    The person types the last digits of the number that called; nobody answers, and the
    call costs less than an SMS with most providers (SMS.ru "callcheck", SMSC, Zvonobot).
    """

    to: str
    code: str

    def __post_init__(self) -> None:
        SmsMessage(self.to, "-")  # the same check of the number
        if not (
            len(self.code) == FLASH_CODE_DIGITS and self.code.isascii() and self.code.isdigit()
        ):
            raise ValueError(f"a flash call's code is {FLASH_CODE_DIGITS} digits")

    @property
    def to_digits(self) -> str:
        return self.to.removeprefix("+")


class SmsNotSent(Exception):
    """The gateway did not take the message; the reason is for the operator's log and never
    contains the text (which holds a code)."""


class SmsGateway(Protocol):
    """Sends one text message; returns once the gateway accepted it. Where the provider
    offers it (`flash_calls`), places a flash call instead.

    Raises:
        SmsNotSent: the gateway refused, failed or did not answer in time.
    """

    name: str
    flash_calls: bool  # whether `flash_call` works here; else codes go by SMS only

    async def send(self, message: SmsMessage) -> None: ...

    async def flash_call(self, call: FlashCall) -> None: ...
