"""Sending a code to a phone and checking the code typed, for the pages that need a
checked number (registration through a link, "forgot password").

The code goes to the gateway and nowhere else: log lines name the purpose and a masked
number, never the code; a gateway's failure is logged with its reason for the operator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import phonenumbers
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix.accounts import user_id_for_phone
from matrix.client import MatrixClient
from matrix.errors import MatrixError
from provisioning.i18n import N_, translations
from provisioning.services import phone_codes as codes
from provisioning.services.passwords import FormProblem
from provisioning.sms import FlashCall, SmsGateway, SmsMessage, SmsNotSent
from provisioning.web.deps import WebError
from provisioning.web.security import client_ip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeState:
    """What a form shows about the code: whether one was sent, how, and the countdown."""

    sent: bool = False
    resend_in: int = 0
    channel: codes.Channel = codes.Channel.SMS  # of the code that can be typed now
    flash_calls: bool = False  # the gateway calls first; SMS is the fallback


def masked(phone: str) -> str:
    """+79005550102 → +7900*****02: enough for an operator to match a complaint."""
    return phone[:5] + "*" * max(0, len(phone) - 7) + phone[-2:]


def shown_number(phone: str) -> str:
    """+79005550102 → +7 900 555-01-02, as people read their own number."""
    number = phonenumbers.parse(phone, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


async def account_with_phone(matrix: MatrixClient, phone: str) -> str | None:
    """The account that signs in with `phone`, as the homeserver knows it.

    Raises:
        WebError: 503 when the homeserver does not answer (the page says to retry).
    """
    try:
        return await user_id_for_phone(matrix, phone)
    except MatrixError as exc:
        log.warning("could not look up the account of %s: %s", masked(phone), exc)
        raise WebError(
            503, N_("The server does not answer right now. Try again in a minute.")
        ) from exc


def _key(settings: Settings) -> bytes:
    return codes.code_key(settings.web_secret.get_secret_value())


def code_state(
    session: Session, phone: str | None, purpose: codes.Purpose, *, flash_calls: bool = False
) -> CodeState:
    if not phone:
        return CodeState(flash_calls=flash_calls)
    wait = codes.seconds_until_resend(session, phone, purpose)
    channel = codes.live_channel(session, phone, purpose)
    return CodeState(
        sent=channel is not None, resend_in=wait, channel=channel or codes.Channel.SMS,
        flash_calls=flash_calls,
    )  # fmt: skip


def flash_calls(request: Request) -> bool:
    """Whether this deployment's gateway places flash calls."""
    gateway: SmsGateway = request.app.state.sms
    return gateway.flash_calls


def wanted_channel(request: Request, asked: str) -> codes.Channel:
    """A flash call where the gateway offers one, unless the person asked for an SMS."""
    if asked == codes.Channel.SMS.value or not flash_calls(request):
        return codes.Channel.SMS
    return codes.Channel.FLASH_CALL


def _issue(
    session: Session,
    settings: Settings,
    phone: str,
    purpose: codes.Purpose,
    origin: str | None,
    channel: codes.Channel = codes.Channel.SMS,
) -> codes.IssuedCode:
    limits = codes.DailyLimits(settings.sms_daily_per_number, settings.sms_daily_per_address)
    try:
        issued = codes.issue(
            session, phone, purpose, key=_key(settings), origin=origin, limits=limits,
            channel=channel,
        )  # fmt: skip
        session.commit()
    except Exception:
        session.rollback()
        raise
    return issued


def _forget(session: Session, code_id: int) -> None:
    codes.forget(session, code_id)
    session.commit()


async def send_code(
    request: Request,
    session: Session,
    phone: str,
    purpose: codes.Purpose,
    channel: codes.Channel = codes.Channel.SMS,
) -> tuple[CodeState, FormProblem | None]:
    """Issue a code for `phone` (E.164) and send it by SMS or flash call; the state to
    show, or a refusal. A flash call the provider refuses falls back to an SMS at once."""
    settings: Settings = request.app.state.settings
    gateway: SmsGateway = request.app.state.sms
    calls = flash_calls(request)
    origin = client_ip(request)
    try:
        issued = await run_in_threadpool(_issue, session, settings, phone, purpose, origin, channel)
    except codes.CodeRefused as refused:
        state = await run_in_threadpool(code_state, session, phone, purpose, flash_calls=calls)
        return state, (refused.template, refused.params)
    if channel is codes.Channel.FLASH_CALL:
        try:
            await gateway.flash_call(FlashCall(phone, issued.code))
        except SmsNotSent as failure:
            log.warning("a %s flash call to %s failed: %s", purpose, masked(phone), failure)
            await run_in_threadpool(_forget, session, issued.id)
            return await send_code(request, session, phone, purpose, codes.Channel.SMS)
        log.info("placed a %s flash call to %s through the %s gateway", purpose, masked(phone),
                 gateway.name)  # fmt: skip
        return _sent(channel, calls), None
    template = codes.sms_template(purpose)
    text = translations(settings.language).gettext(template) % {"code": issued.code}
    try:
        await gateway.send(SmsMessage(phone, text))
    except SmsNotSent as failure:
        log.warning("a %s code to %s was not sent: %s", purpose, masked(phone), failure)
        await run_in_threadpool(_forget, session, issued.id)
        return CodeState(flash_calls=calls), (
            N_("The SMS could not be sent right now. Try again in a minute."),
            {},
        )
    log.info("sent a %s code to %s through the %s gateway", purpose, masked(phone), gateway.name)
    return _sent(channel, calls), None


def _sent(channel: codes.Channel, calls: bool) -> CodeState:
    resend_in = int(codes.RESEND_AFTER.total_seconds())
    return CodeState(sent=True, resend_in=resend_in, channel=channel, flash_calls=calls)


async def issue_without_sending(
    request: Request,
    session: Session,
    phone: str,
    purpose: codes.Purpose,
    channel: codes.Channel = codes.Channel.SMS,
) -> tuple[CodeState, FormProblem | None]:
    """What `send_code` shows and counts, without a message: for a number that must not be
    told apart from one that has an account ("forgot password" for a stranger's number)."""
    settings: Settings = request.app.state.settings
    calls = flash_calls(request)
    origin = client_ip(request)
    try:
        await run_in_threadpool(_issue, session, settings, phone, purpose, origin, channel)
    except codes.CodeRefused as refused:
        state = await run_in_threadpool(code_state, session, phone, purpose, flash_calls=calls)
        return state, (refused.template, refused.params)
    return _sent(channel, calls), None


def _check(
    session: Session, settings: Settings, phone: str, purpose: codes.Purpose, typed: str
) -> FormProblem | None:
    try:
        codes.check(session, phone, purpose, typed, key=_key(settings))
    except codes.CodeRefused as refused:
        return refused.template, refused.params
    finally:
        session.commit()  # an attempt stays counted, also when it failed
    return None


async def check_code(
    request: Request, session: Session, phone: str, purpose: codes.Purpose, typed: str
) -> FormProblem | None:
    """None when the code typed is right (it is used up now), else why not."""
    settings: Settings = request.app.state.settings
    return await run_in_threadpool(_check, session, settings, phone, purpose, typed)
