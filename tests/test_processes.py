"""No child outlives tinyrank: SIGTERM, SIGHUP, SIGINT, SIGKILL and `timeout --foreground` leave no QEMU.

A process shaped like `tinyrank bench` (signal handlers of the CLI, QEMU started through
QemuSession) and one shaped like `tinyrank flash` (QEMU started by a tool started by
tinyrank, as `pio run -t upload` does) are signalled while QEMU runs; then `pgrep` must
find nothing carrying the test's unique firmware path. QEMU waits for its serial client
before loading the firmware, so any file serves as the firmware here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.waiting import running, wait_until
from toolchain.errors import BuildError
from toolchain.processes import run_tool, start, stop_group

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm")

BENCH_LIKE = textwrap.dedent(
    """
    import sys, time
    from toolchain.firmware.emulators import QemuSession
    from toolchain.processes import install_signal_handlers, stop_all
    install_signal_handlers()
    try:
        with QemuSession("qemu_m4", sys.argv[1], timeout_s=120):
            print("ready", flush=True)
            time.sleep(120)
    finally:
        stop_all()
    """
)

FLASH_LIKE = textwrap.dedent(
    """
    import sys
    from toolchain.processes import install_signal_handlers, run_tool, stop_all
    install_signal_handlers()
    qemu = "qemu-system-arm -M mps2-an386 -nographic -monitor none "
    qemu += "-serial tcp:127.0.0.1:0,server=on,wait=on -kernel " + sys.argv[1]
    print("ready", flush=True)
    try:
        run_tool(["sh", "-c", qemu + "; true"], timeout_s=120, what="fake pio", guard=True)
    finally:
        stop_all()
    """
)


def _qemu_running(marker: Path) -> bool:
    return running(f"qemu-system-arm.*{marker}") > 0


def _launch(script: str, firmware: Path, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    process = subprocess.Popen(
        [*prefix, sys.executable, "-c", script, str(firmware)],
        stdout=subprocess.PIPE,
        text=True,
        # A user's shell delivers Ctrl-C: start from default handlers even if an earlier test left
        # SIGINT ignored in this process (a child would inherit that and never see the signal).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout.readline().strip() == "ready"
    assert wait_until(lambda: _qemu_running(firmware), 10, poll_s=0.05), "QEMU did not start"
    return process


@pytest.fixture
def firmware(tmp_path: Path):
    path = tmp_path / "signal-test-firmware.elf"
    path.write_bytes(b"\x7fELF")
    yield path
    subprocess.run(["pkill", "-KILL", "-f", f"qemu-system-arm.*{path}"], timeout=10)


@pytest.mark.parametrize("script", [BENCH_LIKE, FLASH_LIKE], ids=["bench", "flash"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
def test_signal_to_tinyrank_leaves_no_qemu(firmware, script, sig):
    process = _launch(script, firmware)
    process.send_signal(sig)
    process.wait(timeout=60)  # generous: a loaded 2-core machine stops QEMU slowly
    assert wait_until(lambda: not _qemu_running(firmware), 8, poll_s=0.05), (
        f"QEMU left running after {sig.name}"
    )


def test_timeout_foreground_leaves_no_qemu(firmware):
    process = _launch(BENCH_LIKE, firmware, prefix=("timeout", "--foreground", "3"))
    assert process.wait(timeout=30) != 0
    assert wait_until(lambda: not _qemu_running(firmware), 8, poll_s=0.05)


def test_run_tool_timeout_stops_grandchildren(firmware):
    qemu = f"qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none -S -kernel {firmware}"
    with pytest.raises(BuildError, match="no result after 1 s"):
        run_tool(["sh", "-c", f"{qemu}; true"], timeout_s=1, what="fake pio", guard=True)
    assert wait_until(lambda: not _qemu_running(firmware), 8, poll_s=0.05)


def test_child_is_tied_to_the_parent_thread_of_its_start():
    child = start(["sleep", "30"])
    try:
        status = Path(f"/proc/{child.pid}/status").read_text()
        assert child.poll() is None and "Tgid" in status
        assert os.getpgid(child.pid) == child.pid  # its own process group
    finally:
        stop_group(child, 1.0)
    assert child.returncode is not None
