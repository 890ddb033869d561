"""Renode scripts for the boards Renode models (the Nano 33 BLE's nRF52840).

Renode is not installable from the package registries these machines reach, so CI runs
the QEMU boards; this module writes a `<board>.resc` into a real board's project so a
developer with Renode can run the same firmware emulated: `renode firmware_nano33/nano33.resc`,
or `RenodeSession` from Python. Renode models the nRF52840's UART but not its USB, so
the script runs the project's `<board>_renode` environment, built with `PORT_SERIAL=Serial1`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from toolchain.boards import Board, load_board
from toolchain.errors import DeviceError, TinyrankError
from toolchain.fileio import atomic_write_text
from toolchain.qemu import stop_process

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
        raise TinyrankError(f"board '{board.id}' has no renode_platform in {board.path}; Renode cannot run it")
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

    def __init__(self, board: Board | str, elf: str | os.PathLike, *, port: int = DEFAULT_PORT,
                 start_timeout_s: float = 60.0) -> None:
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
            raise DeviceError(f"{RENODE} not found on PATH; Renode is not installable here, CI uses the QEMU boards")
        if not self.elf.is_file():
            raise TinyrankError(f"firmware {self.elf}: no such file; build the {renode_env(self.board)} environment")
        self._dir = tempfile.TemporaryDirectory(prefix="tinyrank-renode-")
        script = Path(self._dir.name) / f"{self.board.id}.resc"
        script.write_text(renode_script(self.board))
        commands = f"$bin=@{self.elf.resolve()}; $port={self.port}; include @{script}"
        self.process = subprocess.Popen([RENODE, "--disable-xwt", "--console", "-e", commands],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + self.start_timeout_s
            while not _listening(self.port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise DeviceError(f"Renode did not open port {self.port} for {self.board.id} within "
                                      f"{self.start_timeout_s:g} s")
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
