"""A provider's HTTP API: URL, method, Authorization header and a body template.

Most Russian and international providers (SMS.ru, SMSC, SMS Aero, Twilio)
take one request per message with the number and the text in a JSON body, a form or the
query string. The templates use `$phone` (+79001234567), `$phone_digits` (79001234567),
`$text` and `$sender`, each escaped for where it stands. Any 2xx answer is success;
docs/operations.md shows the settings for common providers.
"""

from __future__ import annotations

import json
from string import Template
from typing import Literal
from urllib.parse import quote, quote_plus

import httpx

from provisioning.sms.gateway import SmsMessage, SmsNotSent


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
    ) -> None:
        self.url, self.method, self.content_type = url, method, content_type
        self.body_template = Template(body_template)
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
        values = self._values(message)
        url = Template(self.url).safe_substitute({k: quote(v, safe="") for k, v in values.items()})
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
        return url, self.body_template.safe_substitute(escaped).encode(), headers

    async def send(self, message: SmsMessage) -> None:
        url, body, headers = self.request_parts(message)
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
