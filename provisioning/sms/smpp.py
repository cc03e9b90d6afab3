"""SMPP 3.4 to an operator's SMSC, with smpplib.

smpplib is blocking, so each message runs in a worker thread: connect, bind as a
transmitter, submit_sm (one per part), wait for each submit_sm_resp, unbind. A socket
timeout bounds every read and an overall deadline bounds the whole exchange. One
connection per message is plenty for sign-in codes (a few per minute) and leaves no
session to keep alive.

smpplib logs every PDU in hex at DEBUG, which would put the password (bind) and the
code (submit_sm) into the log: its logger is held at WARNING whatever the root level.
"""

from __future__ import annotations

import asyncio
import logging

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from provisioning.sms.gateway import FlashCall, SmsMessage, SmsNotSent

_WIRE_LOGGER = "parta.sms.smpp.wire"
logging.getLogger(_WIRE_LOGGER).setLevel(logging.WARNING)


class SmppGateway:
    name = "smpp"
    flash_calls = False  # an SMSC sends texts; calls are a provider's HTTP API

    def __init__(
        self,
        *,
        host: str,
        port: int,
        system_id: str,
        password: str,
        sender: str,
        system_type: str = "",
        timeout_s: float = 15.0,
    ) -> None:
        self.host, self.port = host, port
        self._system_id, self._password, self._system_type = system_id, password, system_type
        self.sender = sender
        self.timeout_s = timeout_s

    async def send(self, message: SmsMessage) -> None:
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self._send_blocking, message), self.timeout_s + 1
            )
        except TimeoutError as exc:
            raise SmsNotSent(
                f"the SMSC {self.host}:{self.port} did not answer in {self.timeout_s:.0f} s"
            ) from exc

    async def flash_call(self, call: FlashCall) -> None:
        raise SmsNotSent("the SMPP gateway places no flash calls")

    def _source(self) -> tuple[int, int, str]:
        """TON, NPI and address of the sender: digits are a number, letters a name."""
        digits = self.sender.removeprefix("+")
        if digits.isdigit():
            return smpplib.consts.SMPP_TON_INTL, smpplib.consts.SMPP_NPI_ISDN, digits
        return smpplib.consts.SMPP_TON_ALNUM, smpplib.consts.SMPP_NPI_UNK, self.sender

    def _send_blocking(self, message: SmsMessage) -> None:
        client = smpplib.client.Client(
            self.host,
            self.port,
            timeout=self.timeout_s,
            logger_name=_WIRE_LOGGER,
            allow_unknown_opt_params=True,
        )
        try:
            client.connect()
            client.bind_transmitter(
                system_id=self._system_id, password=self._password, system_type=self._system_type
            )
            parts, encoding, esm_class = smpplib.gsm.make_parts(message.text)
            source_ton, source_npi, source = self._source()
            for part in parts:
                client.send_message(
                    source_addr_ton=source_ton,
                    source_addr_npi=source_npi,
                    source_addr=source,
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr=message.to_digits,
                    short_message=part,
                    data_coding=encoding,
                    esm_class=esm_class,
                    registered_delivery=False,
                )
                answer = client.read_pdu()
                if answer.command != "submit_sm_resp" or answer.is_error():
                    raise SmsNotSent(
                        f"the SMSC refused the message: {answer.command} status {answer.status}"
                    )
            client.unbind()
        except smpplib.exceptions.PDUError as exc:
            raise SmsNotSent(f"the SMSC refused: {exc.args[0]}") from None
        except (smpplib.exceptions.ConnectionError, OSError) as exc:  # timeouts too
            raise SmsNotSent(
                f"no SMPP session with {self.host}:{self.port}: {type(exc).__name__}"
            ) from None
        finally:
            client.disconnect()
