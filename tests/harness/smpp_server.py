"""A small SMSC for tests: answers bind, submit_sm, enquire_link and unbind over SMPP 3.4.

Run as its own process (`python -m tests.harness.smpp_server --port … --outbox …`) so the
SMPP gateway talks to a real server over a real socket. Every submitted message is
appended to the outbox file as one JSON line; a wrong password is refused with
ESME_RINVPASWD; `--silent` accepts connections and never answers (for timeouts).
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import struct
import threading
from pathlib import Path

import smpplib.consts
import smpplib.smpp

_DECODERS = {
    smpplib.consts.SMPP_ENCODING_ISO10646: "utf-16-be",
    smpplib.consts.SMPP_ENCODING_ISO88591: "iso-8859-1",
    smpplib.consts.SMPP_ENCODING_DEFAULT: "ascii",
}


class Smsc(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, outbox: Path, system_id: str, password: str, silent: bool):
        super().__init__(("127.0.0.1", port), Session)
        self.outbox, self.system_id, self.password, self.silent = (
            outbox,
            system_id,
            password,
            silent,
        )
        self.lock = threading.Lock()
        self.next_id = 1

    def record(self, pdu: object) -> str:
        coding = int(getattr(pdu, "data_coding", 0) or 0)
        raw = getattr(pdu, "short_message", b"") or b""
        with self.lock:
            message_id = str(self.next_id)
            self.next_id += 1
            entry = {
                "message_id": message_id,
                "to": _text(getattr(pdu, "destination_addr", b"")),
                "from": _text(getattr(pdu, "source_addr", b"")),
                "dest_addr_ton": int(getattr(pdu, "dest_addr_ton", 0) or 0),
                "data_coding": coding,
                "text": raw.decode(_DECODERS.get(coding, "latin-1"), errors="replace"),
            }
            with self.outbox.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return message_id


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class Session(socketserver.BaseRequestHandler):
    server: Smsc

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = self.request.recv(size - len(data))
            if not part:
                raise ConnectionError
            data += part
        return data

    def handle(self) -> None:
        try:
            while True:
                header = self._read_exact(4)
                (length,) = struct.unpack(">L", header)
                if not 16 <= length <= 65536:
                    return
                data = header + self._read_exact(length - 4)
                if self.server.silent:
                    continue
                request = smpplib.smpp.parse_pdu(
                    data, need_sequence=False, allow_unknown_opt_params=True
                )
                if not self._answer(request):
                    return
        except (ConnectionError, OSError):
            return

    def _answer(self, request: object) -> bool:
        command = request.command  # type: ignore[attr-defined]
        status = smpplib.consts.SMPP_ESME_ROK
        fields: dict[str, object] = {}
        if command.startswith("bind_"):
            given = (_text(request.system_id), _text(request.password))  # type: ignore[attr-defined]
            if given != (self.server.system_id, self.server.password):
                status = smpplib.consts.SMPP_ESME_RINVPASWD
            fields["system_id"] = "parta-test-smsc"
        elif command == "submit_sm":
            fields["message_id"] = self.server.record(request)
        elif command not in ("unbind", "enquire_link"):
            status = smpplib.consts.SMPP_ESME_RINVCMDID
        answer_name = (
            "generic_nack" if status == smpplib.consts.SMPP_ESME_RINVCMDID else f"{command}_resp"
        )
        answer = smpplib.smpp.make_pdu(answer_name, **fields)
        answer.sequence = request.sequence  # type: ignore[attr-defined]
        answer.status = status
        self.request.sendall(answer.generate())
        return bool(command != "unbind" and status == smpplib.consts.SMPP_ESME_ROK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--system-id", default="parta")
    parser.add_argument("--password", default="sm8pass1")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()
    with Smsc(args.port, args.outbox, args.system_id, args.password, args.silent) as server:
        server.serve_forever()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
