"""The benchmark firmware compiled for this machine and run on a pty: a device without a board.

The same C sources as on the board (`firmware_templates/runtime/bench/`) are built with the
system gcc against a host `port.h` implementation (stdin/stdout) and a `model.h`/`model.c`,
so the protocol is tested from both ends in well under a second, without QEMU. `reset()`
kills and restarts the program on the same pty, as a board that browns out mid-run would.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
import tty
from collections.abc import Iterable
from pathlib import Path

from toolchain.errors import BuildError

TEMPLATES = Path(__file__).resolve().parents[2] / "firmware_templates"
BENCH_SOURCES = TEMPLATES / "runtime" / "bench"


def build_host_device(
    model_dir: Path, port_source: Path, out: Path, defines: Iterable[str] = (), profile: bool = True
) -> Path:
    """Compile the benchmark app with `port_source` and the model C files in `model_dir`."""
    import json

    from toolchain.fileio import atomic_write_text
    from toolchain.firmware import render_bench_model_header

    port_source = Path(port_source)
    info_file = Path(model_dir) / "model_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    atomic_write_text(out.parent / "bench_model.h", render_bench_model_header(info))
    model_sources = [s for s in sorted(Path(model_dir).glob("*.c")) if s.resolve() != port_source.resolve()]
    sources = sorted(BENCH_SOURCES.glob("*.c")) + model_sources + [port_source]
    includes = [out.parent, model_dir, port_source.parent, TEMPLATES / "runtime", BENCH_SOURCES]
    command = ["gcc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror"] + (
        ["-DTR_PROFILE"] if profile else []
    )
    command += [f"-D{d}" for d in defines] + [f"-I{i}" for i in includes]
    command += [str(s) for s in sources] + ["-o", str(out)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise BuildError(f"gcc building {out.name}: no result after 120 s") from None
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["(no output)"])[0]
        raise BuildError(f"gcc building {out.name} failed: {first}")
    return out


class HostDevice:
    """Runs a host build of the benchmark app on a pty; `.url` is the pty to open with pyserial."""

    def __init__(self, executable: Path) -> None:
        self.executable = Path(executable)
        self.process: subprocess.Popen | None = None
        self.master, self._slave = pty.openpty()
        # Raw before anything is written: a cooked pty would echo and buffer lines.
        tty.setraw(self._slave)
        self.url = os.ttyname(self._slave)
        self.starts = 0

    def start(self) -> HostDevice:
        """Start the program and swallow its BOOT frame, so every session starts the same way."""
        self._spawn()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._slave], [], [], 0.05)
            if ready and os.read(self._slave, 1) == b"\x00":
                return self
        self.stop()
        raise BuildError(f"{self.executable.name}: sent no BOOT frame within 5 s of starting")

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [str(self.executable)], stdin=self.master, stdout=self.master, close_fds=True
        )
        self.starts += 1

    def reset(self) -> None:
        """Kill and restart the program: like a board reset, all RAM state is lost; the BOOT
        frame it sends is left for the client to see."""
        self._kill()
        self._spawn()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def stop(self) -> None:
        self._kill()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> HostDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
