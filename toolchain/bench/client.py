"""A session with the benchmark firmware over any pyserial link.

The host owns every timeout: each request is sent, the reply awaited for `timeout`
seconds, and resent up to `retries` times, since the device silently drops a corrupted
frame. A device that restarts (it announces BOOT, or answers with session 0) raises
`DeviceReset`; `BenchClient.run` then says HELLO again and replays the whole sample, a
bounded number of times. Anything that still fails is a one-line `DeviceError`.

Over 400 lines on purpose: the deadlines, retries, resets and HELLO checks of one session
are easier to audit together than split across modules.
"""

from __future__ import annotations

import errno
import itertools
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from toolchain.bench import protocol as p
from toolchain.bench.protocol import DeviceInfo
from toolchain.errors import DeviceError

COMMAND_NAMES = {
    p.HELLO: "HELLO",
    p.SET_INPUT: "SET_INPUT",
    p.INVOKE: "INVOKE",
    p.GET_OUTPUT: "GET_OUTPUT",
    p.STATS: "STATS",
    p.OP_TIMES: "OP_TIMES",
}
# How long one link read may block; the request deadline is checked between reads.
READ_SLICE_S = 0.05


class DeviceReset(DeviceError):
    """The device restarted mid-session and has forgotten its inputs and session."""


@dataclass
class RunResult:
    """One sample run on the device: outputs of the last run, and the counter per run."""

    outputs: list[bytes]
    counts: list[int]
    status: int
    stack_used_bytes: int
    op_counts: list[int] = field(default_factory=list)


def _link_failure(name: str, action: str, exc: Exception) -> DeviceError:
    """One sentence for a link that failed: pyserial already prefixes 'read failed:', so strip it."""
    text = str(exc)
    for prefix in ("read failed: ", "write failed: "):
        text = text.removeprefix(prefix)
    if "disconnected" in text or getattr(exc, "errno", None) in (errno.ECONNRESET, errno.EPIPE):
        return DeviceError(f"{name}: the device closed the connection while tinyrank was {action} it")
    return DeviceError(f"{name}: {action} the link failed ({text or type(exc).__name__})")


def open_link(url: str, *, baudrate: int = 115200, timeout: float = READ_SLICE_S) -> Any:
    """Open a pyserial URL or device path, turning the usual failures into one line each."""
    import serial

    kwargs: dict[str, Any] = {"baudrate": baudrate, "timeout": timeout, "write_timeout": 5.0}
    if "://" not in url:
        kwargs["exclusive"] = True  # a second program on the same port garbles both
    try:
        return serial.serial_for_url(url, **kwargs)
    except (serial.SerialException, OSError, ValueError) as exc:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text:
            raise DeviceError(
                f"port {url} is busy: another program (a serial monitor?) has it open"
            ) from None
        if code == errno.ENOENT or "No such file" in text:
            raise DeviceError(
                f"port {url}: no such device; is the board plugged in? "
                "(list ports with: python -m serial.tools.list_ports)"
            ) from None
        if code == errno.EACCES or "Permission denied" in text:
            raise DeviceError(f"port {url}: permission denied; add yourself to the 'dialout' group") from None
        raise DeviceError(f"port {url}: cannot open: {text}") from None


class BenchClient:
    """Requests to the benchmark firmware; see the module docstring for the retry rules.

    `timeout`: seconds to wait for a reply before resending; `invoke_timeout`: seconds one
    inference may take on the device (an INVOKE of N runs may take N times that);
    `max_resets`: device restarts survived over the life of the client.
    """

    def __init__(
        self,
        link: Any,
        *,
        name: str = "link",
        timeout: float = 1.0,
        retries: int = 4,
        invoke_timeout: float = 10.0,
        max_resets: int = 3,
        expected_hash: int | None = None,
    ) -> None:
        self.link = link
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.invoke_timeout = invoke_timeout
        self.max_resets = max_resets
        self.expected_hash = expected_hash
        self.info: DeviceInfo | None = None
        self.resets_seen = 0
        self.retries_used = 0
        self._reader = p.FrameReader()
        self._seq = itertools.cycle(range(1, 256))
        self._session = 0
        self._rng = random.Random()
        link.timeout = min(READ_SLICE_S, timeout)

    @classmethod
    def open(cls, url: str, *, baudrate: int = 115200, **options: Any) -> BenchClient:
        return cls(open_link(url, baudrate=baudrate), name=url, **options)

    # --- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.link.close()
        except Exception:  # closing is best effort; the port may already be gone
            pass

    def __enter__(self) -> BenchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bad_frames(self) -> int:
        """Frames from the device that failed COBS, length or CRC checks."""
        return self._reader.bad_frames

    # --- one request ------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
        except Exception as exc:  # pyserial raises SerialException, sockets OSError
            raise _link_failure(self.name, "writing to", exc) from None

    def _read(self) -> bytes:
        try:
            waiting = self.link.in_waiting
            return self.link.read(max(1, waiting))
        except Exception as exc:
            raise _link_failure(self.name, "reading from", exc) from None

    def _await(self, seq: int, reply_type: int, hello: bool, work_s: float) -> p.Packet | None:
        """The reply to request `seq`, or None at the deadline. Stale and stray frames are dropped.

        INVOKE_STARTED (the device is busy) moves the deadline to `work_s` past the request, once:
        the overall limit is fixed when the request is sent, so no keepalive can extend it."""
        sent = time.monotonic()
        deadline = sent + self.timeout
        overall = sent + self.timeout + work_s
        while time.monotonic() < deadline:
            for packet in self._reader.feed(self._read()):
                if not hello and (packet.type == p.BOOT or packet.session != self._session):
                    raise DeviceReset(
                        f"{self.name}: the device restarted (it announced BOOT or lost its session)"
                    )
                if packet.seq != seq:
                    continue  # a late reply to an earlier attempt
                if packet.type == p.INVOKE_STARTED:
                    deadline = overall
                elif packet.type == p.ERROR:
                    raise self._refused(packet, reply_type & ~p.REPLY)
                elif packet.type == reply_type:
                    return packet
        return None

    def _refused(self, packet: p.Packet, command: int) -> DeviceError:
        code, detail = 0, 0
        if len(packet.body) >= 5:
            code, detail = packet.body[0], int.from_bytes(packet.body[1:5], "little")
        reason = p.ERROR_NAMES.get(code, f"error {code}")
        return DeviceError(
            f"{self.name}: device refused {COMMAND_NAMES.get(command, command)}: {reason} ({detail})"
        )

    def request(self, command: int, body: bytes = b"", *, hello: bool = False, work_s: float = 0.0) -> bytes:
        """Send `command` and return the reply body, resending on silence up to `retries` times."""
        name = COMMAND_NAMES.get(command, hex(command))
        for attempt in range(self.retries + 1):
            seq = next(self._seq)
            session = 0 if hello else self._session
            # The leading zero ends whatever noise the device may have half-read.
            self._write(b"\x00" + p.encode_packet(p.Packet(command, seq, session, body)))
            reply = self._await(seq, command | p.REPLY, hello, work_s)
            if reply is not None:
                return reply.body
            if attempt < self.retries:
                self.retries_used += 1
        raise DeviceError(
            f"{self.name}: no valid reply to {name} after {self.retries + 1} attempts of {self.timeout:g} s "
            f"({self.bad_frames} corrupted frames received); is the benchmark firmware running?"
        )

    # --- commands ---------------------------------------------------------------------

    def hello(self) -> DeviceInfo:
        """Start a session: check protocol version and model hash, and learn the tensor sizes."""
        token = self._rng.randrange(1, 256)
        while token == self._session:
            token = self._rng.randrange(1, 256)
        body = self.request(p.HELLO, bytes([token]), hello=True)
        info = p.parse_hello(body)
        if self.expected_hash is not None and info.model_hash != self.expected_hash:
            raise DeviceError(
                f"{self.name}: the firmware runs model {info.model_hash:08x} but the host model is "
                f"{self.expected_hash:08x}; rebuild and flash the firmware for this model"
            )
        self._session = token
        self.info = info
        return info

    def _require_info(self) -> DeviceInfo:
        if self.info is None:
            self.hello()
        assert self.info is not None
        return self.info

    def set_input(self, index: int, data: bytes) -> None:
        info = self._require_info()
        if index >= len(info.input_sizes) or len(data) != info.input_sizes[index]:
            sizes = list(info.input_sizes)
            raise DeviceError(
                f"{self.name}: input {index} of {len(data)} bytes; the firmware expects sizes {sizes}"
            )
        chunk = info.max_body - 5
        for offset in range(0, len(data), chunk):
            self.request(p.SET_INPUT, struct.pack("<BI", index, offset) + data[offset : offset + chunk])

    def invoke(self, runs: int = 1, *, per_op: bool = False) -> tuple[int, int]:
        """Run the model `runs` times; returns (status of the first failing run or 0, stack used)."""
        if per_op and not self._require_info().per_op:
            raise DeviceError(
                f"{self.name}: the firmware was built without per-op hooks (TR_PROFILE); "
                "rebuild it without --no-profile to time each op"
            )
        body = self.request(
            p.INVOKE,
            struct.pack("<HB", runs, 1 if per_op else 0),
            work_s=self.timeout + self.invoke_timeout * runs,
        )
        status, done, stack_used, _bad = p.ReplyFields(body, "INVOKE").take("iHII")
        if done != runs:
            raise DeviceError(f"{self.name}: asked for {runs} runs, the device reports {done}")
        return status, stack_used

    def _counts(self, command: int, total: int) -> list[int]:
        counts: list[int] = []
        while len(counts) < total:
            b = p.ReplyFields(self.request(command, struct.pack("<H", len(counts))), COMMAND_NAMES[command])
            first, n = b.take("2H")
            if first != len(counts) or n == 0:
                raise DeviceError(
                    f"{self.name}: {COMMAND_NAMES[command]} returned counts from {first}, asked {len(counts)}"
                )
            counts.extend(b.take(f"{n}I") if n > 1 else [b.take("I")])
        return counts[:total]

    def stats(self, runs: int) -> list[int]:
        """Counter value of each run of the last INVOKE (cycles or instructions)."""
        return self._counts(p.STATS, runs)

    def op_times(self) -> list[int]:
        """Per op, the least count over the runs of the last per-op INVOKE."""
        return self._counts(p.OP_TIMES, self._require_info().num_ops)

    def get_output(self, index: int) -> bytes:
        info = self._require_info()
        if index >= len(info.output_sizes):
            raise DeviceError(
                f"{self.name}: output {index} requested; the firmware has {len(info.output_sizes)}"
            )
        size, chunk, data = info.output_sizes[index], info.max_body, bytearray()
        while len(data) < size:
            n = min(chunk, size - len(data))
            part = self.request(p.GET_OUTPUT, struct.pack("<BIH", index, len(data), n))
            if len(part) != n:
                raise DeviceError(f"{self.name}: GET_OUTPUT returned {len(part)} bytes, asked {n}")
            data += part
        return bytes(data)

    # --- a whole sample, surviving resets ---------------------------------------------

    def run(
        self, inputs: list[bytes], *, runs: int = 1, warmup: int = 0, per_op: bool = False, timed: bool = True
    ) -> RunResult:
        """Set the inputs, run (after `warmup` untimed runs), read counts and outputs back.

        `timed=False` skips reading the per-run counts (one round trip less per sample).
        If the device restarts at any point the sample is replayed from a fresh HELLO,
        at most `max_resets` times over the life of this client.
        """
        while True:
            try:
                return self._run_once(inputs, runs, warmup, per_op, timed)
            except DeviceReset:
                self.resets_seen += 1
                if self.resets_seen > self.max_resets:
                    raise DeviceError(
                        f"{self.name}: the device restarted {self.resets_seen} times "
                        f"(limit {self.max_resets}); "
                        "check its power supply and the firmware's stack size"
                    ) from None
                self._reader.clear()
                self.hello()

    def _run_once(self, inputs: list[bytes], runs: int, warmup: int, per_op: bool, timed: bool) -> RunResult:
        info = self._require_info()
        if len(inputs) != len(info.input_sizes):
            raise DeviceError(
                f"{self.name}: {len(inputs)} inputs given; the firmware has {len(info.input_sizes)}"
            )
        for index, data in enumerate(inputs):
            self.set_input(index, data)
        if warmup:
            self.invoke(min(warmup, info.max_runs))
        counts: list[int] = []
        status, stack_used, done = 0, 0, 0
        while done < runs:
            batch = min(info.max_runs, runs - done)
            batch_status, stack_used = self.invoke(batch, per_op=per_op)
            status = status or batch_status
            if timed:
                counts += self.stats(batch)
            done += batch
        op_counts = self.op_times() if per_op else []
        outputs = [self.get_output(i) for i in range(len(info.output_sizes))]
        return RunResult(outputs, counts, status, stack_used, op_counts)
