"""A device that lies: endless keepalives, impossible HELLO fields, a link that closes.

The fake device here is scripted in Python (no firmware), so each test states exactly what
the device sends; the client must end every exchange within its deadlines, with one sentence.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import serial

from toolchain.bench import protocol as p
from toolchain.bench.client import BenchClient, open_link
from toolchain.errors import DeviceError


def hello_body(*, max_body: int = 64, max_runs: int = 8, inputs=(16,), outputs=(4,)) -> bytes:
    body = struct.pack("<H6I3H", p.PROTOCOL_VERSION, 0x1234, 1, 2, 3, 4, 5, max_body, max_runs, 2)
    body += struct.pack("<3B", len(inputs), len(outputs), 0)
    body += b"".join(struct.pack("<I", n) for n in (*inputs, *outputs))
    return body + bytes([6]) + b"cycles" + bytes([4]) + b"fake"


class ScriptedLink:
    """A pyserial-like link whose device answers each request with `reply(packet)` frames."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.timeout = 0.01
        self._reader = p.FrameReader()
        self._out = bytearray()
        self.last: p.Packet | None = None

    def write(self, data: bytes) -> int:
        for packet in self._reader.feed(data):
            self.last = packet
            self._out += b"".join(p.encode_packet(q) for q in self.reply(packet))
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self._out)

    def read(self, size: int = 1) -> bytes:
        if not self._out and self.last is not None and self.last.type == p.INVOKE:
            # keepalive forever: the device says "started" again on every read
            self._out += p.encode_packet(p.Packet(p.INVOKE_STARTED, self.last.seq, self.last.session))
        if not self._out:
            time.sleep(self.timeout)
            return b""
        data, self._out = bytes(self._out[:size]), self._out[size:]
        return data

    def close(self) -> None:
        pass


def _device(hello: bytes):
    def reply(packet: p.Packet) -> list[p.Packet]:
        if packet.type == p.HELLO:
            return [p.Packet(p.HELLO | p.REPLY, packet.seq, packet.body[0], hello)]
        if packet.type == p.SET_INPUT:
            return [p.Packet(p.SET_INPUT | p.REPLY, packet.seq, packet.session)]
        if packet.type == p.INVOKE:
            return [p.Packet(p.INVOKE_STARTED, packet.seq, packet.session)]
        return []

    return reply


def test_keepalives_cannot_extend_the_invoke_deadline():
    client = BenchClient(ScriptedLink(_device(hello_body())), timeout=0.2, retries=1, invoke_timeout=0.3)
    client.hello()
    started = time.monotonic()
    with pytest.raises(DeviceError, match="no valid reply to INVOKE after 2 attempts"):
        client.invoke(runs=2)
    # two attempts of at most timeout + invoke_timeout * runs each, plus scheduling slack
    assert time.monotonic() - started < 2 * (0.2 + 0.2 + 0.6) + 1.0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_runs": 0}, "max_runs=0"),
        ({"max_body": 0}, "max_body=0"),
        ({"max_body": 5}, "max_body=5"),
        ({"max_body": 4000}, "max_body=4000"),
        ({"inputs": ()}, "0 inputs"),
        ({"outputs": (0,)}, "tensor sizes"),
    ],
)
def test_impossible_hello_fields_are_one_sentence(fields: dict, named: str):
    client = BenchClient(ScriptedLink(_device(hello_body(**fields))), timeout=0.2, retries=0)
    with pytest.raises(DeviceError, match=named) as caught:
        client.hello()
    assert "\n" not in str(caught.value) and str(caught.value).count("failed") <= 1


def test_a_device_closing_the_socket_is_one_sentence():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_then_close() -> None:
        connection, _ = server.accept()
        connection.recv(64)
        connection.close()

    thread = threading.Thread(target=accept_then_close, daemon=True)
    thread.start()
    try:
        client = BenchClient(open_link(f"socket://127.0.0.1:{port}"), name="dev", timeout=0.5, retries=2)
        with pytest.raises(DeviceError) as caught:
            client.hello()
    finally:
        server.close()
        thread.join(5)
    message = str(caught.value)
    assert message == "dev: the device closed the connection while tinyrank was reading from it", message
    assert "read failed: read failed" not in message


def test_serial_exception_text_is_not_doubled():
    class Broken(ScriptedLink):
        def read(self, size: int = 1) -> bytes:
            raise serial.SerialException("read failed: [Errno 5] Input/output error")

    client = BenchClient(Broken(_device(hello_body())), name="dev", timeout=0.2, retries=0)
    with pytest.raises(
        DeviceError, match=r"^dev: reading from the link failed \(\[Errno 5\] Input/output error\)$"
    ):
        client.hello()
