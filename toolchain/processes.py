"""The one way tinyrank starts and stops a child process (compilers, PlatformIO, QEMU, Renode).

Every child gets its own process group, so stopping it also stops what it started (a QEMU
under `pio run -t upload`), and every wait has a time limit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from toolchain.errors import BuildError

STOP_GRACE_S = 5.0  # between terminate and kill


def run_tool(
    command: Sequence[str],
    *,
    timeout_s: float,
    what: str,
    cwd: Path | None = None,
    env: dict | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run a tool with a time limit; on timeout or Ctrl-C stop it and everything it started.

    The command gets its own process group so that a QEMU started by `pio run -t upload`
    is stopped with it instead of being left busy-polling a core. Output is text, or
    bytes when `input_bytes` is given (it is fed to the tool's stdin).
    """
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if input_bytes is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=input_bytes is None,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {command[0]} not found; run `make setup`") from exc
    try:
        stdout, stderr = process.communicate(input_bytes, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        stop_group(process)
        raise BuildError(
            f"{what}: no result after {timeout_s:g} s (command: {' '.join(command[:4])} ...)"
        ) from exc
    except BaseException:
        stop_group(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_group(process: subprocess.Popen) -> None:
    """Terminate the process group of `process` (started with start_new_session), then kill what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.communicate(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass


def first_error_line(output: str) -> str:
    """The line a user needs from a compiler or PlatformIO log: a tinyrank ASSERT, else the first error."""
    lines = output.splitlines()
    for pattern in (r"tinyrank: ", r"\berror\b", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "(no output)"


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill if the process ignores it; always reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)
