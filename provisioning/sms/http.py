"""A provider's HTTP API: URL, method, Authorization header and a body template.

Most Russian and international providers (SMS.ru, SMSC, SMS Aero, Twilio)
take one request per message with the number and the text in a JSON body, a form or the
query string. The templates use `$phone` (+79001234567), `$phone_digits` (79001234567),
`$text` and `$sender`, each escaped for where it stands. Any 2xx answer is success;
docs/operations.md shows the settings for common providers.

A flash call (`flash_call_url`, with `flash_call_body`) is the provider's call request,
sent the same way: its templates take `$code` (the digits the calling number ends with)
instead of `$text`.
"""

from __future__ import annotations

import json
from string import Template
from typing import Literal
from urllib.parse import quote, quote_plus

import httpx

from provisioning.sms.gateway import FlashCall, SmsMessage, SmsNotSent


class HttpGateway:
    name = "http"

    def __init__(
        self,
        *,
        url: str,
        method: Literal["POST", "GET"],
        content_type: Literal["json", "form"],
        body_template: str,
        authorization: str,
        sender: str,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        flash_call_url: str = "",
        flash_call_body: str = "",
    ) -> None:
        self.url, self.method, self.content_type = url, method, content_type
        self.body_template = Template(body_template)
        self.flash_call_url, self.flash_call_body = flash_call_url, Template(flash_call_body)
        self.flash_calls = bool(flash_call_url)
        self._authorization = authorization
        self.sender = sender
        self.timeout_s = timeout_s
        self._transport = transport

    def _values(self, message: SmsMessage) -> dict[str, str]:
        return {
            "phone": message.to,
            "phone_digits": message.to_digits,
            "text": message.text,
            "sender": self.sender,
        }

    def request_parts(self, message: SmsMessage) -> tuple[str, bytes | None, dict[str, str]]:
        """The URL, the body and the headers of the request for one message."""
        return self._parts(self.url, self.body_template, self._values(message))

    def call_request_parts(self, call: FlashCall) -> tuple[str, bytes | None, dict[str, str]]:
        """The URL, the body and the headers of the request for one flash call."""
        values = {
            "phone": call.to,
            "phone_digits": call.to_digits,
            "code": call.code,
            "sender": self.sender,
        }
        return self._parts(self.flash_call_url, self.flash_call_body, values)

    def _parts(
        self, url_template: str, body: Template, values: dict[str, str]
    ) -> tuple[str, bytes | None, dict[str, str]]:
        url = Template(url_template).safe_substitute(
            {k: quote(v, safe="") for k, v in values.items()}
        )
        headers = {"User-Agent": "Parta-SMS"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        if self.method == "GET":
            return url, None, headers
        if self.content_type == "json":
            escaped = {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in values.items()}
            headers["Content-Type"] = "application/json; charset=utf-8"
        else:
            escaped = {k: quote_plus(v) for k, v in values.items()}
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return url, body.safe_substitute(escaped).encode(), headers

    async def send(self, message: SmsMessage) -> None:
        await self._request(*self.request_parts(message))

    async def flash_call(self, call: FlashCall) -> None:
        if not self.flash_calls:
            raise SmsNotSent("no flash call request is configured (PARTA_SMS_FLASH_CALL_URL)")
        await self._request(*self.call_request_parts(call))

    async def _request(self, url: str, body: bytes | None, headers: dict[str, str]) -> None:
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_s, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.request(self.method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SmsNotSent(
                f"the SMS provider at {httpx.URL(url).host} did not answer: {type(exc).__name__}"
            ) from None
        if not response.is_success:
            raise SmsNotSent(
                f"the SMS provider at {httpx.URL(url).host} answered {response.status_code}"
            )
