"""A pyserial-compatible wrapper that damages traffic, to prove the client survives a flaky link.

Faults apply to whole frames (the bytes up to a 0x00 delimiter), counted separately in each
direction from 0: drop a frame, flip one byte of it, or put noise before it. They are given
either as frame numbers (`drop_sent={2}`), for tests that target one exchange, or as rates
with a seed, for soak tests. `on_send(n)` runs before sent frame n goes out, which is how a
test resets the device mid-run; `interrupt_on_read` raises KeyboardInterrupt at that read
call, as Ctrl-C would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from typing import Any


class FaultyLink:
    def __init__(
        self,
        link: Any,
        *,
        seed: int = 0,
        drop_sent: Collection[int] = (),
        flip_sent: Collection[int] = (),
        garbage_sent: Collection[int] = (),
        drop_received: Collection[int] = (),
        flip_received: Collection[int] = (),
        garbage_received: Collection[int] = (),
        drop_rate: float = 0.0,
        flip_rate: float = 0.0,
        garbage_rate: float = 0.0,
        on_send: Callable[[int], None] | None = None,
        interrupt_on_read: int | None = None,
    ) -> None:
        self.link = link
        self.rng = random.Random(seed)
        self.sent_faults = {"drop": set(drop_sent), "flip": set(flip_sent), "garbage": set(garbage_sent)}
        self.received_faults = {
            "drop": set(drop_received),
            "flip": set(flip_received),
            "garbage": set(garbage_received),
        }
        self.rates = {"drop": drop_rate, "flip": flip_rate, "garbage": garbage_rate}
        self.on_send = on_send
        self.interrupt_on_read = interrupt_on_read
        self.sent_frames = 0
        self.received_frames = 0
        self.reads = 0
        self.faults_applied = 0
        self.closed = False
        self._partial = bytearray()
        self._ready = bytearray()

    # --- fault selection ----------------------------------------------------------------

    def _faults(self, planned: dict[str, set[int]], index: int) -> set[str]:
        chosen = {kind for kind, frames in planned.items() if index in frames}
        chosen |= {kind for kind, rate in self.rates.items() if rate and self.rng.random() < rate}
        self.faults_applied += len(chosen)
        return chosen

    def _damage(self, frame: bytes, faults: set[str]) -> bytes:
        """Apply faults to one frame (delimiter included)."""
        if "drop" in faults:
            return b""
        data = bytearray(frame)
        if "flip" in faults and len(data) > 1:
            at = self.rng.randrange(len(data) - 1)  # never the delimiter: that would be a cut, not a flip
            flipped = data[at] ^ (1 << self.rng.randrange(8))
            data[at] = flipped if flipped else data[at] ^ 0xFF
        if "garbage" in faults:
            # A burst of line noise (zeros included) that ends before the frame starts; noise
            # running into the frame would just corrupt it, which "flip" already covers.
            noise = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
            data[0:0] = noise + b"\x00"
        return bytes(data)

    # --- pyserial surface ---------------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Each non-empty frame in `data` is one sent frame; lone delimiters pass untouched."""
        out = bytearray()
        start = 0
        for end in range(len(data)):
            if data[end] != 0:
                continue
            frame = bytes(data[start : end + 1])
            start = end + 1
            if len(frame) == 1:
                out += frame
                continue
            if self.on_send is not None:
                self.on_send(self.sent_frames)
            out += self._damage(frame, self._faults(self.sent_faults, self.sent_frames))
            self.sent_frames += 1
        out += data[start:]
        if out:
            self.link.write(bytes(out))
        return len(data)

    def _ingest(self, chunk: bytes) -> None:
        for byte in chunk:
            self._partial.append(byte)
            if byte != 0:
                continue
            frame, self._partial = bytes(self._partial), bytearray()
            if len(frame) == 1:
                self._ready += frame
                continue
            self._ready += self._damage(frame, self._faults(self.received_faults, self.received_frames))
            self.received_frames += 1

    def read(self, size: int = 1) -> bytes:
        self.reads += 1
        if self.interrupt_on_read is not None and self.reads >= self.interrupt_on_read:
            raise KeyboardInterrupt
        deadline = time.monotonic() + (self.timeout or 0)
        while not self._ready:
            chunk = self.link.read(max(1, self.link.in_waiting))
            if chunk:
                self._ingest(chunk)
            elif time.monotonic() >= deadline:
                break
        out, self._ready = bytes(self._ready[:size]), self._ready[size:]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self._ready)

    @property
    def timeout(self) -> float | None:
        return self.link.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.link.timeout = value

    @property
    def is_open(self) -> bool:
        return not self.closed and getattr(self.link, "is_open", True)

    def reset_input_buffer(self) -> None:
        self._partial.clear()
        self._ready.clear()
        self.link.reset_input_buffer()

    def close(self) -> None:
        self.closed = True
        self.link.close()
