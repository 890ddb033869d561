"""The one way tinyrank starts and stops a child process (compilers, PlatformIO, QEMU, Renode).

A child must never outlive tinyrank: a leaked QEMU busy-polls a core. So every child
- gets its own process group, so stopping it also stops what it started (a QEMU under
  `pio run -t upload`);
- is tied to tinyrank's death with Linux's PR_SET_PDEATHSIG, so even SIGKILL of tinyrank
  stops it; a child that starts children of its own (`guard=True`, e.g. PlatformIO) runs
  under a small guard that, when tinyrank dies, stops the guard's whole process group;
- is registered until reaped, so SIGTERM, SIGHUP and SIGINT (see `install_signal_handlers`)
  and interpreter exit stop whatever is still running;
- is waited for with a time limit.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolchain.errors import BuildError

STOP_GRACE_S = 5.0  # between terminate and kill
_PR_SET_PDEATHSIG = 1
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()

try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # no libc symbol: other platforms rely on the signal handlers
    _PRCTL = None

# Runs as `python -c GUARD signal command...`: it dies with tinyrank (PR_SET_PDEATHSIG set before
# exec), and on that signal stops its whole process group, grandchildren included, then exits.
_GUARD = """
import os, signal, subprocess, sys, time
child = None
def stop(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + float(sys.argv[1])
    while child is not None and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, stop)
child = subprocess.Popen(sys.argv[2:])
status = child.wait()
sys.exit(status if status >= 0 else 128 - status)
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached tinyrank: unwinds like Ctrl-C so every `finally` stops its child."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP unwind the main thread like Ctrl-C (SIGINT already does)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)


def _tie_to_parent(parent_pid: int, death_signal: int):
    """A preexec_fn: the child gets `death_signal` when tinyrank dies (and exits if it already has)."""

    def tie() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return tie


def start(command: Sequence[str], *, guard: bool = False, **popen_args: Any) -> subprocess.Popen:
    """Start `command` in its own process group, tied to tinyrank's life; returns the Popen.

    `guard=True` is for tools that start long-lived children of their own (PlatformIO starting
    QEMU): the tie to tinyrank is then held by a guard that stops the whole group.
    `popen_args` are passed to subprocess.Popen (stdin, stdout, cwd, env, text, ...).
    """
    argv = [os.fspath(part) for part in command]
    if guard:
        argv = [sys.executable, "-c", _GUARD, f"{STOP_GRACE_S:g}", *argv]
    death = signal.SIGTERM if guard else signal.SIGKILL
    process = subprocess.Popen(
        argv, start_new_session=True, preexec_fn=_tie_to_parent(os.getpid(), death), **popen_args
    )
    with _LIVE_LOCK:
        _LIVE.add(process)
    return process


def run_tool(
    command: Sequence[str],
    *,
    timeout_s: float,
    what: str,
    cwd: Path | None = None,
    env: dict | None = None,
    guard: bool = False,
    input: bytes | str | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """Run a tool with a time limit, capturing its output; on timeout or a signal stop it and its group.

    `input` is written to its stdin (bytes when `text=False`); without it stdin is /dev/null.
    """
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    pipes = {"stdin": stdin, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": text}
    try:
        process = start(command, guard=guard, cwd=cwd, env=env, **pipes)
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {command[0]} not found; run `make setup`") from exc
    try:
        stdout, stderr = process.communicate(input, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        stop_group(process)
        raise BuildError(
            f"{what}: no result after {timeout_s:g} s (command: {' '.join(command[:4])} ...)"
        ) from exc
    except BaseException:
        stop_group(process)
        raise
    _forget(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _forget(process: subprocess.Popen) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(process)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(process: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate the process group of `process`, kill what is left after `grace_s`; always reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(process, sig)
        try:
            process.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    _signal_group(process, signal.SIGKILL)  # anything of the group the leader left behind
    _forget(process)


def stop_process(process: subprocess.Popen) -> None:
    """Stop a child started with `start` (and its group), waiting up to STOP_GRACE_S before killing."""
    stop_group(process, STOP_GRACE_S)


def stop_all() -> None:
    """Stop every child still running (called on exit and after a signal)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        stop_group(process, 1.0)


atexit.register(stop_all)


def first_error_line(output: str) -> str:
    """The line a user needs from a compiler or PlatformIO log: a tinyrank ASSERT, else the first error."""
    lines = output.splitlines()
    for pattern in (r"tinyrank: ", r"\berror\b", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "(no output)"
