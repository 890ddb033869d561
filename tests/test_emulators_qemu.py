"""QemuSession and run_to_exit: QEMU starts listening, talks, and is always stopped."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import serial

from toolchain.errors import DeviceError, TinyrankError
from toolchain.firmware import build
from toolchain.firmware.emulators import QemuSession, qemu_command, run_to_exit

pytestmark = pytest.mark.qemu

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    """The port-check firmware for qemu_m4: says hello, then waits for commands on the UART."""
    model = shutil.copytree(FIXTURES / "tiny_model", tmp_path_factory.mktemp("qemu") / "tiny_model")
    return Path(build(model, "qemu_m4", app_dir=FIXTURES / "port_check_app", timeout_s=180)["elf"])


def _running(elf: Path) -> bool:
    return subprocess.run(["pgrep", "-f", str(elf)], capture_output=True, timeout=10).returncode == 0


def test_command_line_has_the_documented_options(elf):
    from toolchain.firmware.boards import load_board

    command = qemu_command(load_board("qemu_m33"), elf, "tcp:127.0.0.1:5555,server=on,wait=on,nodelay=on")
    text = " ".join(command)
    for part in (
        "-M mps2-an505",
        "-cpu cortex-m33",
        "-nographic",
        "-icount shift=0,align=off,sleep=off",
        "-semihosting-config enable=on,target=native",
        "nodelay=on",
        f"-kernel {elf}",
    ):
        assert part in text


def test_session_serves_the_uart_and_stops(elf):
    with QemuSession("qemu_m4", elf, timeout_s=30) as qemu:
        assert qemu.url.startswith("socket://127.0.0.1:")
        with serial.serial_for_url(qemu.url, timeout=10) as link:
            assert link.readline().startswith(b"hello qemu_m4")
        assert "waiting for connection" in qemu.stderr_text()
        process = qemu.process
        assert process.poll() is None
    assert process.poll() is not None and not _running(elf)


def test_two_sessions_run_side_by_side(elf):
    with (
        QemuSession("qemu_m4", elf, timeout_s=30) as first,
        QemuSession("qemu_m4", elf, timeout_s=30) as second,
    ):
        assert first.port != second.port
        for session in (first, second):
            with serial.serial_for_url(session.url, timeout=10) as link:
                assert link.readline().startswith(b"hello")
    assert not _running(elf)


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_session_stops_qemu_on_errors_and_ctrl_c(elf, interruption):
    with pytest.raises(interruption):
        with QemuSession("qemu_m4", elf, timeout_s=30) as qemu:
            process = qemu.process
            raise interruption()
    assert process.poll() is not None
    assert not _running(elf)


def test_session_time_limit_kills_qemu(elf):
    with QemuSession("qemu_m4", elf, timeout_s=0.5) as qemu:
        deadline = time.monotonic() + 10
        while qemu.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert qemu.process.poll() is not None and qemu.timed_out


def test_session_refuses_missing_elf_and_real_boards(tmp_path, elf):
    with pytest.raises(TinyrankError, match="no such file; run `tinyrank build` first"):
        with QemuSession("qemu_m4", tmp_path / "missing.elf"):
            pass
    with pytest.raises(TinyrankError, match="'nano33' is a real board"):
        with QemuSession("nano33", elf):
            pass


def test_run_to_exit_returns_status_and_output(elf):
    status, output = run_to_exit("qemu_m4", elf, timeout_s=30, stdin=b"e\x03abcx\x09")
    assert status == 9
    assert "hello qemu_m4 instructions" in output and "abc" in output


def test_run_to_exit_timeout_kills_and_reports(elf):
    with pytest.raises(DeviceError, match=r"did not exit within 0.5 s; it printed: hello qemu_m4"):
        run_to_exit("qemu_m4", elf, timeout_s=0.5)
    assert not _running(elf)
