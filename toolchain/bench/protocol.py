"""The wire format shared with the device (`firmware_templates/runtime/bench/bench_frame.c`).

A frame is a packet COBS-encoded and terminated by a 0x00 byte, so after any noise the
reader simply waits for the next zero and starts again. The packet inside is

    type u8 | seq u8 | session u8 | length u16 LE | body (length bytes) | CRC-16 u16 LE

with CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over everything before it. `seq` pairs a
reply with its request, so a late reply to an earlier attempt is recognised and dropped;
`session` is the token the host handed out in HELLO, so a reply from a device that has
reset since (session 0) is recognised too. Everything multi-byte is little-endian.

Messages (request body -> reply body; a reply's type is the request's | 0x80):

    HELLO      session u8 -> version u16, model_hash u32, clock_hz u32, arena u32,
               static_ram u32, stack_size u32, stack_used u32, max_body u16, max_runs u16,
               num_ops u16, n_in u8, n_out u8, features u8 (bit 0: per-op hooks),
               in sizes u32[n_in], out sizes u32[n_out],
               counter unit (len u8 + ASCII), board id (len u8 + ASCII)
    SET_INPUT  index u8, offset u32, bytes -> (empty)
    INVOKE     runs u16, flags u8 (bit 0: per op) -> INVOKE_STARTED (runs u16) at once, then
               status i32, runs u16, stack_used u32, bad frames seen u32
    GET_OUTPUT index u8, offset u32, length u16 -> bytes
    STATS      first u16 -> first u16, n u16, per-run counts u32[n] of the last INVOKE
    OP_TIMES   first u16 -> first u16, n u16, per-op counts u32[n] of the last per-op INVOKE
    BOOT       (device, unasked, at start-up; seq 0, session 0)
    ERROR      code u8, detail u32 (a refused request; see ERROR_NAMES)

The device keeps its own copy of the inputs and restores them before every run, since the
model's memory plan may reuse the input tensor's bytes; so every request is idempotent and
the host may resend any of them.

`ReplyFields` reads a reply body's fields in this order; `parse_hello` decodes HELLO's into
a `DeviceInfo`.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Any

from toolchain.errors import DeviceError

PROTOCOL_VERSION = 1

# Largest body either side puts in one frame; the device's buffers are sized from it.
MAX_BODY = 256
HEADER = struct.Struct("<BBBH")
CRC = struct.Struct("<H")

# Requests (host -> device). A reply has the request's type with the top bit set.
HELLO = 0x01
SET_INPUT = 0x02
INVOKE = 0x03
GET_OUTPUT = 0x04
STATS = 0x05
OP_TIMES = 0x06
REPLY = 0x80
# Device-initiated frames.
INVOKE_STARTED = 0x90  # sent as soon as an INVOKE is accepted, before the (long) work
BOOT = 0xB0  # sent once at start-up: the device has (re)started and forgotten everything
ERROR = 0xEE  # a request was understood but refused; body: code u8, detail u32

FEATURE_PER_OP = 0x01  # HELLO: model.c was built with TR_PROFILE, so OP_TIMES means something

ERROR_NAMES = {
    1: "unknown command",
    2: "malformed request body",
    3: "input or output index out of range",
    4: "offset or length outside the tensor",
    5: "too many runs for one INVOKE",
    6: "no INVOKE has run yet",
}


class FrameError(ValueError):
    """Bytes between two delimiters that are not a valid packet (noise, a flipped bit, a cut)."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE; `crc16(b"123456789") == 0x29B1`."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result holds no zero byte."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of `cobs_encode`; raises FrameError on input no encoder could have produced."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise FrameError("zero byte inside a COBS frame")
        end = i + code
        if end > len(data):
            raise FrameError("COBS block runs past the end of the frame")
        block = data[i + 1 : end]
        if 0 in block:
            raise FrameError("zero byte inside a COBS frame")
        out += block
        i = end
        if code != 255 and i < len(data):
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Packet:
    type: int
    seq: int
    session: int
    body: bytes = b""


def encode_packet(packet: Packet) -> bytes:
    """The bytes to put on the wire for one packet, delimiter included."""
    if len(packet.body) > MAX_BODY:
        raise ValueError(f"frame body of {len(packet.body)} bytes exceeds the limit of {MAX_BODY}")
    raw = HEADER.pack(packet.type, packet.seq, packet.session, len(packet.body)) + packet.body
    return cobs_encode(raw + CRC.pack(crc16(raw))) + b"\x00"


def decode_packet(frame: bytes) -> Packet:
    """Decode the bytes between two delimiters (delimiter excluded)."""
    raw = cobs_decode(frame)
    if len(raw) < HEADER.size + CRC.size:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a header")
    kind, seq, session, length = HEADER.unpack_from(raw)
    if length != len(raw) - HEADER.size - CRC.size:
        raise FrameError(f"frame says {length} body bytes but holds {len(raw) - HEADER.size - CRC.size}")
    (expected,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if crc16(raw[: -CRC.size]) != expected:
        raise FrameError("CRC mismatch")
    return Packet(kind, seq, session, raw[HEADER.size : HEADER.size + length])


class FrameReader:
    """Splits a byte stream into packets, dropping (and counting) anything that does not decode.

    Feed it whatever the link returned; it keeps the partial frame between calls.
    """

    # A frame longer than this cannot be valid; the bytes are noise, so stop buffering them.
    MAX_FRAME = MAX_BODY + HEADER.size + CRC.size + 4

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Packet]:
        packets = []
        for byte in data:
            if byte != 0:
                if len(self._buffer) <= self.MAX_FRAME:
                    self._buffer.append(byte)
                continue
            frame, self._buffer = bytes(self._buffer), bytearray()
            if not frame:
                continue
            if len(frame) > self.MAX_FRAME:
                self.bad_frames += 1
                continue
            try:
                packets.append(decode_packet(frame))
            except FrameError:
                self.bad_frames += 1
        return packets

    def clear(self) -> None:
        self._buffer.clear()


# --- reply bodies ----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """What the firmware says about itself in reply to HELLO."""

    protocol_version: int
    model_hash: int
    clock_hz: int
    arena_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    stack_used_bytes: int
    max_body: int
    max_runs: int
    num_ops: int
    input_sizes: tuple[int, ...]
    output_sizes: tuple[int, ...]
    counter_unit: str
    board_id: str
    per_op: bool  # built with TR_PROFILE: the op hooks run


class ReplyFields:
    """Reads little-endian fields off a reply body, failing with a DeviceError if it is short."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.at, self.what = data, 0, what

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.data):
            raise DeviceError(f"{self.what} reply is {len(self.data)} bytes, too short for its fields")
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.take("B")
        raw = self.take(f"{length}s")
        return raw.decode("ascii", errors="replace")


def parse_hello(body: bytes) -> DeviceInfo:
    """Decode a HELLO reply. The version comes first so a mismatch is caught before the rest."""
    b = ReplyFields(body, "HELLO")
    version = b.take("H")
    if version != PROTOCOL_VERSION:
        raise DeviceError(
            f"firmware speaks benchmark protocol v{version}, this host v{PROTOCOL_VERSION}; "
            "rebuild and flash the firmware with this tinyrank"
        )
    model_hash, clock, arena, static_ram, stack, stack_used = b.take("6I")
    max_body, max_runs, num_ops = b.take("3H")
    n_in, n_out, features = b.take("3B")
    inputs = tuple(b.take("I") for _ in range(n_in))
    outputs = tuple(b.take("I") for _ in range(n_out))
    unit, board_id = b.string(), b.string()
    _check_hello(max_body, max_runs, inputs, outputs)
    return DeviceInfo(
        version,
        model_hash,
        clock,
        arena,
        static_ram,
        stack,
        stack_used,
        max_body,
        max_runs,
        num_ops,
        inputs,
        outputs,
        unit,
        board_id,
        bool(features & FEATURE_PER_OP),
    )


# A frame body holds a 5-byte SET_INPUT header plus data, and no more than the host reads.
MIN_BODY = 8
MAX_TENSOR_BYTES = 1 << 26


def _check_hello(max_body: int, max_runs: int, inputs: tuple, outputs: tuple) -> None:
    """Fields the host loops on: a zero would make it loop forever, a huge size allocate forever."""
    problem = None
    if max_runs < 1:
        problem = f"max_runs={max_runs} (at least 1 run per INVOKE is needed)"
    elif not MIN_BODY <= max_body <= MAX_BODY:
        problem = f"max_body={max_body} (a frame body needs {MIN_BODY}..{MAX_BODY} bytes)"
    elif not inputs or not outputs:
        problem = f"{len(inputs)} inputs and {len(outputs)} outputs (the model needs at least one of each)"
    elif not all(1 <= size <= MAX_TENSOR_BYTES for size in inputs + outputs):
        problem = f"tensor sizes {list(inputs)} -> {list(outputs)} (each must be 1..{MAX_TENSOR_BYTES} bytes)"
    if problem:
        raise DeviceError(f"the firmware's HELLO announces {problem}; is it the tinyrank benchmark firmware?")
