"""Waiting for child processes to appear or go, shared by the signal tests and the robustness probe."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], seconds: float, poll_s: float = 0.1) -> bool:
    """Poll `condition` until it holds or `seconds` pass; its last value either way."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def running(pattern: str) -> int:
    """How many processes have a command line matching `pattern` (pgrep -f)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, timeout=10)
    return len(found.stdout.split())
