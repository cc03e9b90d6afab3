"""Text messages to phones, through one small interface and three gateways.

`SmsGateway.send` (and `flash_call` where `flash_calls`) is all the rest of Parta sees:
the console gateway (local mode, demos), SMPP to an operator's SMSC, or a provider's
HTTP API. `gateway_for(settings)` picks one.
"""

from __future__ import annotations

from foundation.settings import Settings
from provisioning.sms.console import ConsoleGateway
from provisioning.sms.gateway import FlashCall, SmsGateway, SmsMessage, SmsNotSent
from provisioning.sms.http import HttpGateway
from provisioning.sms.smpp import SmppGateway

__all__ = ["FlashCall", "SmsGateway", "SmsMessage", "SmsNotSent", "gateway_for"]


def gateway_for(settings: Settings) -> SmsGateway:
    """The gateway the settings choose (`PARTA_SMS_GATEWAY`)."""
    if settings.sms_gateway == "smpp":
        return SmppGateway(
            host=settings.sms_smpp_host,
            port=settings.sms_smpp_port,
            system_id=settings.sms_smpp_system_id,
            password=settings.sms_smpp_password.get_secret_value(),
            system_type=settings.sms_smpp_system_type,
            sender=settings.sms_sender,
            timeout_s=settings.sms_timeout_s,
        )
    if settings.sms_gateway == "http":
        return HttpGateway(
            url=settings.sms_http_url,
            method=settings.sms_http_method,
            content_type=settings.sms_http_content_type,
            body_template=settings.sms_http_body,
            authorization=settings.sms_http_auth.get_secret_value(),
            sender=settings.sms_sender,
            timeout_s=settings.sms_timeout_s,
            flash_call_url=settings.sms_flash_call_url if settings.sms_flash_call else "",
            flash_call_body=settings.sms_flash_call_body,
        )
    return ConsoleGateway(settings.sms_outbox_path, flash_calls=settings.sms_flash_call)
