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


class SmsNotSent(Exception):
    """The gateway did not take the message; the reason is for the operator's log and never
    contains the text (which holds a code)."""


class SmsGateway(Protocol):
    """Sends one text message; returns once the gateway accepted it.

    Raises:
        SmsNotSent: the gateway refused, failed or did not answer in time.
    """

    name: str

    async def send(self, message: SmsMessage) -> None: ...
