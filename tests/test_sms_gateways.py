"""The SMS gateways against real servers: an SMSC process over SMPP, an HTTP server, a file."""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from foundation.settings import Settings
from provisioning.sms import FlashCall, SmsMessage, SmsNotSent, gateway_for
from provisioning.sms.console import ConsoleGateway, read_outbox
from provisioning.sms.http import HttpGateway
from provisioning.sms.smpp import SmppGateway
from tests.harness.smsc import SmscProcess, smpp_server

TEXT = "Код Парты: 493817. Никому его не сообщайте."
MESSAGE = SmsMessage("+79005550102", TEXT)


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[SmscProcess]:
    with smpp_server(tmp_path) as server:
        yield server


def smpp_gateway(
    smsc: SmscProcess, *, password: str | None = None, timeout_s: float = 5
) -> SmppGateway:
    return SmppGateway(
        host="127.0.0.1",
        port=smsc.port,
        system_id=smsc.system_id,
        password=smsc.password if password is None else password,
        sender="Parta",
        timeout_s=timeout_s,
    )


def test_a_message_must_go_to_an_e164_number() -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        SmsMessage("8 900 555-01-02", "x")
    with pytest.raises(ValueError):
        SmsMessage("+79005550102", "x" * 161)


async def test_the_console_gateway_writes_a_private_outbox(tmp_path: Path) -> None:
    outbox = tmp_path / "var" / "sms-outbox.log"
    gateway = ConsoleGateway(outbox)
    await gateway.send(MESSAGE)
    await gateway.send(SmsMessage("+79005550103", "второе"))
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600
    assert [(m["to"], m["text"]) for m in read_outbox(outbox)] == [
        ("+79005550102", TEXT),
        ("+79005550103", "второе"),
    ]


async def test_smpp_submits_the_message_to_a_real_smsc(
    smsc: SmscProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await smpp_gateway(smsc).send(MESSAGE)
    (recorded,) = smsc.messages()
    assert recorded["to"] == "79005550102" and recorded["dest_addr_ton"] == 1
    assert recorded["from"] == "Parta"
    assert recorded["data_coding"] == 8 and recorded["text"] == TEXT  # UCS-2 for Cyrillic
    # smpplib logs each PDU in hex at DEBUG; neither the code nor the password may show.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "493817" not in logged and smsc.password not in logged
    assert TEXT.encode("utf-16-be").hex() not in logged


async def test_smpp_refused_bind_is_reported_without_the_password(smsc: SmscProcess) -> None:
    with pytest.raises(SmsNotSent, match="Invalid Password") as refused:
        await smpp_gateway(smsc, password="wrong-password").send(MESSAGE)
    assert "wrong-password" not in str(refused.value)
    assert smsc.messages() == []


async def test_smpp_gives_up_on_a_silent_smsc_in_time(tmp_path: Path) -> None:
    with smpp_server(tmp_path, silent=True) as silent:
        started = time.monotonic()
        with pytest.raises(SmsNotSent):
            await smpp_gateway(silent, timeout_s=1).send(MESSAGE)
        assert time.monotonic() - started < 5


async def test_smpp_reports_a_closed_port(tmp_path: Path) -> None:
    with smpp_server(tmp_path) as smsc:
        port = smsc.port
    closed = SmscProcess(port, tmp_path / "none", "parta", "x")
    with pytest.raises(SmsNotSent, match="no SMPP session"):
        await smpp_gateway(closed).send(MESSAGE)


class _Provider(BaseHTTPRequestHandler):
    """A provider's API: records each request, answers with the status the test set."""

    received: list[dict[str, object]]
    status = 200

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "body": self.rfile.read(length).decode() if length else "",
            }
        )
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _record

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[tuple[str, type[_Provider]]]:
    handler = type("Handler", (_Provider,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_http_posts_json_with_the_auth_header(
    provider: tuple[str, type[_Provider]],
) -> None:
    base, handler = provider
    gateway = HttpGateway(
        url=f"{base}/v1/messages",
        method="POST",
        content_type="json",
        body_template='{"to": "$phone_digits", "text": "$text", "from": "$sender"}',
        authorization="Bearer provider-key",
        sender='Школа "1"',
    )
    await gateway.send(MESSAGE)
    (request,) = handler.received
    assert request["method"] == "POST" and request["path"] == "/v1/messages"
    assert request["authorization"] == "Bearer provider-key"
    assert json.loads(str(request["body"])) == {
        "to": "79005550102",
        "text": TEXT,
        "from": 'Школа "1"',
    }


async def test_http_get_puts_the_values_in_the_query(
    provider: tuple[str, type[_Provider]],
) -> None:
    base, handler = provider
    gateway = HttpGateway(
        url=f"{base}/sms/send?api_id=k&to=$phone&msg=$text&json=1",
        method="GET",
        content_type="form",
        body_template="",
        authorization="",
        sender="Parta",
    )
    await gateway.send(SmsMessage("+79005550102", "code 1 & 2"))
    (request,) = handler.received
    assert request["path"] == "/sms/send?api_id=k&to=%2B79005550102&msg=code%201%20%26%202&json=1"
    assert request["authorization"] is None


async def test_http_form_body_and_a_refusal(provider: tuple[str, type[_Provider]]) -> None:
    base, handler = provider
    gateway = HttpGateway(
        url=f"{base}/send",
        method="POST",
        content_type="form",
        body_template="To=$phone&Body=$text&From=$sender",
        authorization="Basic eDp5",
        sender="Parta",
    )
    await gateway.send(SmsMessage("+79005550102", "a+b c"))
    assert handler.received[0]["body"] == "To=%2B79005550102&Body=a%2Bb+c&From=Parta"
    assert handler.received[0]["content_type"] == "application/x-www-form-urlencoded"
    handler.status = 500
    with pytest.raises(SmsNotSent, match="answered 500") as refused:
        await gateway.send(MESSAGE)
    assert "493817" not in str(refused.value)


async def test_http_reports_a_provider_that_does_not_answer() -> None:
    from tests.harness.ports import free_ports

    gateway = HttpGateway(
        url=f"http://127.0.0.1:{free_ports(1)[0]}/send?text=$text",
        method="GET",
        content_type="form",
        body_template="",
        authorization="",
        sender="Parta",
        timeout_s=2,
    )
    with pytest.raises(SmsNotSent, match="did not answer") as refused:
        await gateway.send(MESSAGE)
    assert "493817" not in str(refused.value)


def test_settings_choose_the_gateway(tmp_path: Path) -> None:
    assert isinstance(gateway_for(Settings(var_dir=tmp_path)), ConsoleGateway)
    smpp = gateway_for(Settings(sms_gateway="smpp", sms_smpp_system_id="school"))
    assert isinstance(smpp, SmppGateway)
    http = Settings(sms_gateway="http", sms_http_url="https://sms.example/send")
    assert isinstance(gateway_for(http), HttpGateway)
    with pytest.raises(ValueError, match="PARTA_SMS_SMPP_SYSTEM_ID"):
        Settings(sms_gateway="smpp")
    with pytest.raises(ValueError, match="PARTA_SMS_HTTP_URL"):
        Settings(sms_gateway="http", sms_http_url="ftp://x")


def test_deploy_says_where_codes_go(tmp_path: Path) -> None:
    from parta.cli import _sms_line

    assert str(tmp_path / "sms-outbox.log") in _sms_line(Settings(var_dir=tmp_path))
    production = Settings(var_dir=tmp_path).model_copy(update={"environment": "production"})
    assert "NOT sent to phones" in _sms_line(production)
    http = Settings(sms_gateway="http", sms_http_url="https://sms.example/send")
    assert "http gateway" in _sms_line(http)
    calling = Settings(var_dir=tmp_path, sms_flash_call=True)
    assert "flash calls first" in _sms_line(calling) and "sms-outbox.log" in _sms_line(calling)


# --- Flash calls -------------------------------------------------------------------------

CALL = FlashCall("+79005550102", "4821")


def test_a_flash_call_has_four_digits_for_an_e164_number() -> None:
    with pytest.raises(ValueError, match="4 digits"):
        FlashCall("+79005550102", "482193")
    with pytest.raises(ValueError, match=r"E\.164"):
        FlashCall("89005550102", "4821")


async def test_http_places_a_flash_call_with_its_own_request(
    provider: tuple[str, type[_Provider]],
) -> None:
    """As SMS.ru's "callcheck"-style APIs take it: the code the calling number ends with."""
    base, handler = provider
    gateway = HttpGateway(
        url=f"{base}/sms/send",
        method="POST",
        content_type="json",
        body_template='{"to": "$phone", "text": "$text"}',
        authorization="Bearer provider-key",
        sender="Parta",
        flash_call_url=f"{base}/call/flash?to=$phone_digits",
        flash_call_body='{"phone": "$phone", "code": "$code", "from": "$sender"}',
    )
    assert gateway.flash_calls
    await gateway.flash_call(CALL)
    (request,) = handler.received
    assert request["method"] == "POST" and request["path"] == "/call/flash?to=79005550102"
    assert request["authorization"] == "Bearer provider-key"
    assert json.loads(str(request["body"])) == {
        "phone": "+79005550102",
        "code": "4821",
        "from": "Parta",
    }
    handler.status = 402  # the provider's balance ran out: the page falls back to an SMS
    with pytest.raises(SmsNotSent, match="answered 402") as refused:
        await gateway.flash_call(CALL)
    assert "4821" not in str(refused.value)


async def test_gateways_without_flash_calls_refuse_them(tmp_path: Path) -> None:
    plain = HttpGateway(url="http://127.0.0.1:9/send", method="GET", content_type="form",
                        body_template="", authorization="", sender="Parta")  # fmt: skip
    assert not plain.flash_calls
    with pytest.raises(SmsNotSent, match="PARTA_SMS_FLASH_CALL_URL"):
        await plain.flash_call(CALL)
    console = ConsoleGateway(tmp_path / "sms-outbox.log")
    assert not console.flash_calls
    with pytest.raises(SmsNotSent, match="PARTA_SMS_FLASH_CALL"):
        await console.flash_call(CALL)
    assert not SmppGateway(
        host="127.0.0.1", port=9, system_id="x", password="", sender="P"
    ).flash_calls


async def test_the_console_gateway_simulates_a_flash_call(tmp_path: Path) -> None:
    outbox = tmp_path / "sms-outbox.log"
    gateway = ConsoleGateway(outbox, flash_calls=True)
    await gateway.flash_call(CALL)
    (entry,) = read_outbox(outbox)
    assert entry["to"] == "+79005550102"
    assert entry["text"] == "Звонок с номера +7 900 000-48-21"
    assert entry["call_from"] == "+7 900 000-48-21"


def test_settings_turn_flash_calls_on(tmp_path: Path) -> None:
    console = gateway_for(Settings(var_dir=tmp_path, sms_flash_call=True))
    assert isinstance(console, ConsoleGateway) and console.flash_calls
    assert not gateway_for(Settings(var_dir=tmp_path)).flash_calls
    http = Settings(sms_gateway="http", sms_http_url="https://sms.example/send",
                    sms_flash_call=True, sms_flash_call_url="https://sms.example/call")  # fmt: skip
    assert gateway_for(http).flash_calls
    off = Settings(sms_gateway="http", sms_http_url="https://sms.example/send",
                   sms_flash_call_url="https://sms.example/call")  # fmt: skip
    assert not gateway_for(off).flash_calls  # the URL alone does not turn them on
    with pytest.raises(ValueError, match="PARTA_SMS_FLASH_CALL_URL"):
        Settings(sms_gateway="http", sms_http_url="https://sms.example/send", sms_flash_call=True)
    with pytest.raises(ValueError, match="SMPP sends texts only"):
        Settings(sms_gateway="smpp", sms_smpp_system_id="school", sms_flash_call=True)
