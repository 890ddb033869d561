"""Emulators: running firmware in qemu-system-arm (and Renode), and never leaving one behind.

A leaked QEMU busy-polls a core, so every start here is paired with a stop that runs
on normal exit, on an exception, on Ctrl-C, and (as a last resort) at interpreter exit
or when the session's own time limit runs out. QEMU runs with `-icount shift=0`, which
makes one guest instruction one nanosecond of virtual time: the firmware's SysTick then
counts instructions, identically on every run.

Two ways in:
- `QemuSession(board, elf)`: the UART is a TCP server; `.url` is the pyserial URL.
- `run_to_exit(board, elf, timeout_s)`: for firmware that runs by itself and exits via
  semihosting; returns the exit status and what it printed.

Renode runs the boards it models (the Nano 33 BLE's nRF52840). It is not installable from the package registries these machines reach, so CI runs
the QEMU boards; this module writes a `<board>.resc` into a real board's project so a
developer with Renode can run the same firmware emulated: `renode firmware_nano33/nano33.resc`,
or `RenodeSession` from Python. Renode models the nRF52840's UART but not its USB, so
the script runs the project's `<board>_renode` environment, built with `PORT_SERIAL=Serial1`.
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
from collections.abc import Iterator, Sequence
from pathlib import Path

from toolchain.errors import DeviceError, TinyrankError
from toolchain.fileio import atomic_write_text
from toolchain.firmware.boards import Board, load_board
from toolchain.processes import stop_process

QEMU = os.environ.get("TINYRANK_QEMU", "qemu-system-arm")
_LIVE_SESSIONS: weakref.WeakSet[QemuSession] = weakref.WeakSet()


def qemu_command(board: Board, elf: str | os.PathLike, serial: str) -> list[str]:
    """The qemu-system-arm command line for `board`, with the UART on `serial` (a -serial spec)."""
    if not board.is_emulated:
        raise TinyrankError(f"board '{board.id}' is a real board, not a QEMU machine; use `tinyrank flash`")
    # A machine with its CPU built in (the microbit) refuses -cpu; its board file leaves cpu empty.
    cpu = ["-cpu", board.qemu_cpu] if board.qemu_cpu else []
    return [
        QEMU,
        "-M", board.qemu_machine,
        *cpu,
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


class QemuSession:
    """QEMU running `elf` with its UART on a local TCP port, for the length of a `with` block.

    QEMU waits for the first client before starting the guest, so nothing the firmware
    prints at boot is lost. `timeout_s` bounds the whole session: past it QEMU is
    killed, so a stuck host loop cannot leave it running.
    """

    def __init__(
        self,
        board: Board | str,
        elf: str | os.PathLike,
        *,
        timeout_s: float = 900.0,
        start_timeout_s: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.board = load_board(board)
        self.elf = Path(elf)
        self.extra_args = list(extra_args)  # e.g. an execution trace (toolchain.bench.cycles)
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
        serial = f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on"
        return qemu_command(self.board, self.elf, serial) + self.extra_args

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

    def stderr_lines(self) -> Iterator[str]:
        """What QEMU wrote, line by line, without reading it all at once (an execution trace is large)."""
        if self._stderr_file is None:
            return
        self._stderr_file.flush()
        self._stderr_file.seek(0)
        for line in self._stderr_file:
            yield line.decode("utf-8", "replace")

    def wait(self, timeout_s: float) -> int:
        """Wait for the firmware to exit (semihosting) and return its status."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(
                f"firmware {self.elf} on {self.board.id} did not exit within {timeout_s:g} s"
            ) from exc

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


def run_to_exit(
    board: Board | str,
    elf: str | os.PathLike,
    timeout_s: float = 60.0,
    stdin: bytes = b"",
    extra_args: Sequence[str] = (),
) -> tuple[int, str]:
    """Run firmware that exits on its own; return (exit status, UART output + QEMU's stderr).

    The UART is QEMU's stdio, fed `stdin`. A firmware still running after `timeout_s`
    is killed and reported as a DeviceError with what it printed.
    """
    board = load_board(board)
    _require_qemu(elf)
    command = qemu_command(board, elf, "stdio") + list(extra_args)
    command.remove("-nographic")
    command[1:1] = ["-display", "none"]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        stop_process(process)
        output, _ = process.communicate()
        text = output.decode("utf-8", "replace")[-500:].replace("\n", " | ")
        raise DeviceError(
            f"firmware {elf} on {board.id} did not exit within {timeout_s:g} s; it printed: {text}"
        ) from exc
    finally:
        stop_process(process)
    return process.returncode, output.decode("utf-8", "replace")


# ---------------------------------------------------------------- Renode

RENODE = os.environ.get("TINYRANK_RENODE", "renode")
DEFAULT_PORT = 3456


def renode_env(board: Board) -> str:
    """The PlatformIO environment whose firmware the Renode script runs."""
    return f"{board.id}_renode"


def renode_script(board: Board | str) -> str:
    """A Renode script (.resc) that loads the board's firmware and puts its UART on a TCP port.

    `$bin` and `$port` can be set before including it; they default to the project's
    Renode build and port 3456.
    """
    board = load_board(board)
    if not board.renode_platform:
        raise TinyrankError(
            f"board '{board.id}' has no renode_platform in {board.path}; Renode cannot run it"
        )
    return f""":name: tinyrank {board.id}
:description: {board.name} ({board.mcu}) running the tinyrank benchmark firmware; host link on TCP

using sysbus
mach create "{board.id}"
machine LoadPlatformDescription @{board.renode_platform}

$bin ?= @$ORIGIN/.pio/build/{renode_env(board)}/firmware.elf
$port ?= {DEFAULT_PORT}

emulation CreateServerSocketTerminal $port "host_link" false
connector Connect sysbus.uart0 host_link

macro reset
\"\"\"
    sysbus LoadELF $bin
\"\"\"
runMacro $reset
start
"""


def write_renode_script(project: str | os.PathLike, board: Board | str) -> Path:
    board = load_board(board)
    return atomic_write_text(Path(project) / f"{board.id}.resc", renode_script(board))


def renode_available() -> bool:
    return shutil.which(RENODE) is not None


def _listening(port: int) -> bool:
    """True if something listens on TCP `port` (read from /proc, so no connection is used up)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return True
    return False


class RenodeSession:
    """Renode running `elf` with the board's UART on a local TCP port; stopped on exit."""

    def __init__(
        self,
        board: Board | str,
        elf: str | os.PathLike,
        *,
        port: int = DEFAULT_PORT,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.board = load_board(board)
        self.elf = Path(elf)
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def __enter__(self) -> RenodeSession:
        if not renode_available():
            raise DeviceError(
                f"{RENODE} not found on PATH; Renode is not installable here, CI uses the QEMU boards"
            )
        if not self.elf.is_file():
            raise TinyrankError(
                f"firmware {self.elf}: no such file; build the {renode_env(self.board)} environment"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="tinyrank-renode-")
        script = Path(self._dir.name) / f"{self.board.id}.resc"
        script.write_text(renode_script(self.board))
        commands = f"$bin=@{self.elf.resolve()}; $port={self.port}; include @{script}"
        self.process = subprocess.Popen(
            [RENODE, "--disable-xwt", "--console", "-e", commands],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + self.start_timeout_s
            while not _listening(self.port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise DeviceError(
                        f"Renode did not open port {self.port} for {self.board.id} within "
                        f"{self.start_timeout_s:g} s"
                    )
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
