"""Running firmware in qemu-system-arm, and never leaving QEMU behind.

A leaked QEMU busy-polls a core, so every start here is paired with a stop that runs
on normal exit, on an exception, on Ctrl-C, and (as a last resort) at interpreter exit
or when the session's own time limit runs out. QEMU runs with `-icount shift=0`, which
makes one guest instruction one nanosecond of virtual time: the firmware's SysTick then
counts instructions, identically on every run.

Two ways in:
- `QemuSession(board, elf)`: the UART is a TCP server; `.url` is the pyserial URL.
- `run_to_exit(board, elf, timeout_s)`: for firmware that runs by itself and exits via
  semihosting; returns the exit status and what it printed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from toolchain.boards import Board, load_board
from toolchain.errors import DeviceError, TinyrankError

QEMU = os.environ.get("TINYRANK_QEMU", "qemu-system-arm")
STOP_GRACE_S = 5.0  # between terminate and kill
_LIVE_SESSIONS: weakref.WeakSet[QemuSession] = weakref.WeakSet()


def qemu_command(board: Board, elf: str | os.PathLike, serial: str) -> list[str]:
    """The qemu-system-arm command line for `board`, with the UART on `serial` (a -serial spec)."""
    if not board.is_emulated:
        raise TinyrankError(f"board '{board.id}' is a real board, not a QEMU machine; use `tinyrank flash`")
    return [
        QEMU,
        "-M", board.qemu_machine,
        "-cpu", board.qemu_cpu,
        "-nographic",
        "-monitor", "none",
        "-icount", "shift=0,align=off,sleep=off",
        "-semihosting-config", "enable=on,target=native",
        "-serial", serial,
        "-kernel", os.fspath(elf),
    ]  # fmt: skip


def _require_qemu(elf: str | os.PathLike) -> None:
    if shutil.which(QEMU) is None:
        raise DeviceError(f"{QEMU} not found on PATH; install the Debian package qemu-system-arm")
    if not Path(elf).is_file():
        raise TinyrankError(f"firmware {elf}: no such file; run `tinyrank build` first")


def _free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it, so parallel tests differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill if QEMU ignores it; always reap the process."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)


class QemuSession:
    """QEMU running `elf` with its UART on a local TCP port, for the length of a `with` block.

    QEMU waits for the first client before starting the guest, so nothing the firmware
    prints at boot is lost. `timeout_s` bounds the whole session: past it QEMU is
    killed, so a stuck host loop cannot leave it running.
    """

    def __init__(self, board: Board | str, elf: str | os.PathLike, *, timeout_s: float = 900.0,
                 start_timeout_s: float = 10.0) -> None:
        self.board = load_board(board)
        self.elf = Path(elf)
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._stderr_file = None
        self._watchdog: threading.Timer | None = None
        self.timed_out = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise TinyrankError("QemuSession is not running; use it in a `with` block")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return qemu_command(self.board, self.elf, f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on")

    def __enter__(self) -> QemuSession:
        _require_qemu(self.elf)
        try:
            self._start_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_listening(self) -> None:
        # The port is free when picked but another process may take it before QEMU binds:
        # try a few ports rather than fail.
        for _attempt in range(3):
            self.port = _free_port()
            self._stderr_file = tempfile.TemporaryFile(mode="w+b")
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=self._stderr_file, stderr=self._stderr_file
            )
            _LIVE_SESSIONS.add(self)
            if self._wait_until_listening():
                self._watchdog = threading.Timer(self.timeout_s, self._time_up)
                self._watchdog.daemon = True
                self._watchdog.start()
                return
            if "bind" not in self.stderr_text().lower():
                break
            self.stop()
        text = self.stderr_text().strip().replace("\n", " | ")
        self.stop()
        raise DeviceError(f"QEMU ({self.board.qemu_machine}) did not start listening on a TCP port: {text}")

    def _wait_until_listening(self) -> bool:
        """True once QEMU says it waits for a connection; False if it exited or took too long."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if "waiting for connection" in self.stderr_text():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.005)
        return False

    def _time_up(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.timed_out = True
            stop_process(self.process)

    def stderr_text(self) -> str:
        """What QEMU wrote so far: its own messages and the firmware's semihosting output."""
        if self._stderr_file is None:
            return ""
        self._stderr_file.flush()
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")

    def wait(self, timeout_s: float) -> int:
        """Wait for the firmware to exit (semihosting) and return its status."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"firmware {self.elf} on {self.board.id} did not exit within {timeout_s:g} s") from exc

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.process is not None:
            stop_process(self.process)
        _LIVE_SESSIONS.discard(self)


@atexit.register
def _stop_leftover_sessions() -> None:
    for session in list(_LIVE_SESSIONS):
        session.stop()


def run_to_exit(board: Board | str, elf: str | os.PathLike, timeout_s: float = 60.0,
                stdin: bytes = b"", extra_args: Sequence[str] = ()) -> tuple[int, str]:
    """Run firmware that exits on its own; return (exit status, UART output + QEMU's stderr).

    The UART is QEMU's stdio, fed `stdin`. A firmware still running after `timeout_s`
    is killed and reported as a DeviceError with what it printed.
    """
    board = load_board(board)
    _require_qemu(elf)
    command = qemu_command(board, elf, "stdio") + list(extra_args)
    command.remove("-nographic")
    command[1:1] = ["-display", "none"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        stop_process(process)
        output, _ = process.communicate()
        text = output.decode("utf-8", "replace")[-500:].replace("\n", " | ")
        raise DeviceError(f"firmware {elf} on {board.id} did not exit within {timeout_s:g} s; it printed: {text}") from exc
    finally:
        stop_process(process)
    return process.returncode, output.decode("utf-8", "replace")
