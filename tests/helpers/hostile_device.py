"""A scripted benchmark device that lies: endless keepalives, impossible HELLO fields.

The device is Python (no firmware), so a test states exactly what it sends. Used by
tests/test_bench_hostile_device.py and benchmarks/bench_robustness.py.
"""

from __future__ import annotations

import struct
import time

from toolchain.bench import protocol as p


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


def scripted_device(hello: bytes):
    """Replies HELLO with `hello`, acknowledges inputs, and answers INVOKE with keepalives only."""

    def reply(packet: p.Packet) -> list[p.Packet]:
        if packet.type == p.HELLO:
            return [p.Packet(p.HELLO | p.REPLY, packet.seq, packet.body[0], hello)]
        if packet.type == p.SET_INPUT:
            return [p.Packet(p.SET_INPUT | p.REPLY, packet.seq, packet.session)]
        if packet.type == p.INVOKE:
            return [p.Packet(p.INVOKE_STARTED, packet.seq, packet.session)]
        return []

    return reply
