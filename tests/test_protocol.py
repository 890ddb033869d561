"""The host side of the benchmark wire format: CRC, COBS, packets and resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.bench import protocol as p


@pytest.mark.parametrize(
    ("data", "crc"),
    [(b"123456789", 0x29B1), (b"", 0xFFFF), (b"A", 0xB915), (bytes(4), 0x84C0)],
)
def test_crc16_ccitt_false_vectors(data: bytes, crc: int) -> None:
    assert p.crc16(data) == crc


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    ],
)
def test_cobs_known_vectors(raw: bytes, encoded: bytes) -> None:
    assert p.cobs_encode(raw) == encoded
    assert p.cobs_decode(encoded) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(encoded) == data


packets = st.builds(
    p.Packet,
    type=st.integers(0, 255),
    seq=st.integers(0, 255),
    session=st.integers(0, 255),
    body=st.binary(max_size=p.MAX_BODY),
)


@settings(max_examples=200, deadline=None)
@given(packets)
def test_packet_round_trip(packet: p.Packet) -> None:
    wire = p.encode_packet(packet)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert p.decode_packet(wire[:-1]) == packet


@settings(max_examples=100, deadline=None)
@given(st.lists(packets, min_size=1, max_size=5), st.binary(max_size=40), st.integers(1, 17))
def test_reader_resyncs_after_noise_in_any_chunking(batch: list[p.Packet], noise: bytes, chunk: int) -> None:
    # Noise then a delimiter costs at most one bad frame per zero-separated piece of it;
    # every real packet still arrives.
    stream = noise + b"\x00" + b"".join(p.encode_packet(x) for x in batch)
    reader = p.FrameReader()
    got = []
    for i in range(0, len(stream), chunk):
        got += reader.feed(stream[i : i + chunk])
    assert got[-len(batch) :] == batch
    assert len(got) - len(batch) + reader.bad_frames <= noise.count(0) + 1


@settings(max_examples=200, deadline=None)
@given(packets, st.data())
def test_any_flipped_bit_is_rejected(packet: p.Packet, data: st.DataObject) -> None:
    frame = bytearray(p.encode_packet(packet)[:-1])
    at = data.draw(st.integers(0, len(frame) - 1))
    frame[at] ^= 1 << data.draw(st.integers(0, 7))
    if 0 in frame:
        return  # the flip made a delimiter: that is a cut, covered by the next test
    with pytest.raises(p.FrameError):
        p.decode_packet(bytes(frame))


def test_cut_frames_are_rejected_and_counted() -> None:
    wire = p.encode_packet(p.Packet(0x81, 3, 9, b"hello world"))
    reader = p.FrameReader()
    assert reader.feed(wire[:6] + b"\x00" + wire[6:]) == []
    assert reader.bad_frames == 2


def test_overlong_noise_is_not_buffered_without_bound() -> None:
    reader = p.FrameReader()
    assert reader.feed(b"\x55" * 10_000) == []
    assert len(reader._buffer) <= p.FrameReader.MAX_FRAME + 1
    good = p.Packet(0x85, 1, 2, b"ok")
    assert reader.feed(b"\x00" + p.encode_packet(good)) == [good]
    assert reader.bad_frames == 1


def test_length_field_must_match() -> None:
    import struct

    raw = struct.pack("<BBBH", 1, 1, 1, 5) + b"abc"  # says 5 body bytes, holds 3
    frame = p.cobs_encode(raw + struct.pack("<H", p.crc16(raw)))
    with pytest.raises(p.FrameError, match="body bytes"):
        p.decode_packet(frame)


def test_oversized_body_is_refused_on_encode() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        p.encode_packet(p.Packet(1, 1, 1, bytes(p.MAX_BODY + 1)))
