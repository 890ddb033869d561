"""Offline PlatformIO builds for the QEMU boards, run for real in qemu-system-arm.

The firmware is the port-check app (tests/fixtures/port_check_app) on the fixture model:
it drives every function of port.h over the UART, so these tests check the start-up code,
UART, counter, stack painting and semihosting exit of each QEMU board, plus the linker
script's budget ASSERTs and `pio run -t upload` running QEMU.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import serial

from toolchain.errors import BudgetError, BuildError, DeviceError
from toolchain.firmware import build, flash
from toolchain.firmware.boards import load_board
from toolchain.firmware.emulators import QemuSession, run_to_exit

pytestmark = pytest.mark.qemu

FIXTURES = Path(__file__).parent / "fixtures"
PORT_CHECK_APP = FIXTURES / "port_check_app"
QEMU_BOARDS = ["qemu_m4", "qemu_m3", "qemu_m33", "qemu_m0"]


def _copy_tiny_model(root: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "tiny_model", root / "tiny_model"))


@pytest.fixture(scope="module", params=QEMU_BOARDS)
def port_check_build(request, tmp_path_factory) -> dict:
    model = _copy_tiny_model(tmp_path_factory.mktemp(request.param))
    return build(model, request.param, app_dir=PORT_CHECK_APP, timeout_s=180)


def _expected_outputs(x: np.ndarray) -> list[int]:
    reference = np.load(FIXTURES / "tiny_model" / "reference.npz")
    acc = reference["w"].astype(np.int64) @ x.astype(np.int64) + reference["b"]
    return np.clip(acc >> 6, -128, 127).tolist()


def test_build_reports_elf_sizes_and_prediction(port_check_build):
    report = port_check_build
    board = load_board(report["board"])
    assert Path(report["elf"]).is_file()
    assert 1000 < report["flash_bytes"] < report["predicted"]["flash_bytes"] <= board.flash_bytes
    assert report["static_ram_bytes"] >= 32 + 16  # the arena and the app's state, at least
    assert report["flash_prediction_error"] > 0  # the prediction errs on the cautious side


def test_port_works_over_the_uart(port_check_build):
    board = load_board(port_check_build["board"])
    rng = np.random.default_rng(5)
    with QemuSession(board, port_check_build["elf"], timeout_s=60) as qemu:
        link = serial.serial_for_url(qemu.url, timeout=10)
        try:
            hello = link.readline().decode().split()
            assert hello[:3] == ["hello", board.id, "instructions"]
            assert int(hello[3]) == port_check_build["static_ram_bytes"]

            payload = bytes(range(256))[:200]
            link.write(b"e" + bytes([len(payload)]) + payload)
            assert link.read(len(payload)) == payload

            # 2 instructions per iteration. One tick is 40-62.5 instructions, but the port times
            # its spins to SysTick edges and subtracts its own calls, so counts are exact to a
            # few instructions (a little less so where a tick is a fractional count: 62.5 on M0).
            limit = 4 if board.tick_fraction[1] == 1 else 8
            errors = []
            for iterations in (1, 2, 3, 10, 11, 1_000, 1_001, 1_000_000):
                link.write(b"c" + struct.pack("<I", iterations))
                errors.append(int(link.readline().split()[1]) - 2 * iterations)
            assert all(-limit <= e <= limit for e in errors), errors

            for _ in range(3):
                x = rng.integers(-128, 128, size=16)
                link.write(b"m" + x.astype(np.int8).tobytes())
                fields = link.readline().decode().split()
                assert fields[0] == "out" and fields[-2:] == ["ops", "1"]
                assert [int(v) for v in fields[1:5]] == _expected_outputs(x)

            link.write(b"s")
            _, low, high, used = link.readline().decode().split()
            assert int(high) - int(low) == board.stack_bytes
            assert int(high) == board.memory.ram_origin + board.ram_bytes  # stack at the top of the budget
            assert 0 < int(used) < 1024

            link.write(b"x\x05")
            assert qemu.wait(10) == 5
        finally:
            link.close()
    assert qemu.process.poll() is not None


def test_counter_survives_systick_wraps(tmp_path):
    """SysTick reloading every 1000 ticks (a test build): counts stay right across many wraps.

    A missed or doubled wrap would be off by a whole period (40 000 instructions); what is
    allowed on top of the loop is the wrap interrupt's handful of instructions per wrap,
    which are really executed.
    """
    period = 1000 * 40
    report = build(
        _copy_tiny_model(tmp_path),
        "qemu_m4",
        app_dir=PORT_CHECK_APP,
        timeout_s=180,
        extra_build_flags=["-DQEMU_MPS2_SYSTICK_RELOAD=999u"],
    )
    with QemuSession("qemu_m4", report["elf"], timeout_s=60) as qemu:
        link = serial.serial_for_url(qemu.url, timeout=30)
        try:
            link.readline()
            # 40 k to 6 M instructions: 1 to 150 wraps.
            for iterations in (19_990, 20_000, 20_011, 123_457, 1_000_000, 3_000_000):
                link.write(b"c" + struct.pack("<I", iterations))
                error = int(link.readline().split()[1]) - 2 * iterations
                wraps = 2 * iterations // period + 1
                assert -4 <= error <= 4 + 12 * wraps, (iterations, error)
        finally:
            link.close()


def test_over_budget_refused_before_platformio(tmp_path):
    model = _copy_tiny_model(tmp_path)
    info = json.loads((model / "model_info.json").read_text())
    info["weights_bytes"] = 2_000_000
    (model / "model_info.json").write_text(json.dumps(info))
    with pytest.raises(BudgetError, match="does not fit board 'qemu_m4'"):
        build(model, "qemu_m4", app_dir=PORT_CHECK_APP)
    assert not (model / "firmware_qemu_m4").exists()  # refused before writing or building anything


@pytest.mark.parametrize(
    "source, padding, message",
    [
        # 1.2 MB more constants than model_info.json admits: only the linker can see them.
        (
            "model_weights.c",
            '__attribute__((section(".rodata.tr_weights"))) const int8_t tr_padding[1200000] = {1};',
            r"qemu_m4: code \+ weights \+ \.data exceed the flash budget of 1048576 bytes",
        ),
        # 300 KB more RAM in the arena's section (same object, so --gc-sections keeps it).
        (
            "model.c",
            '__attribute__((section(".bss.tr_arena"))) int8_t tr_ram_padding[300000];',
            r"qemu_m4: \.data \+ \.bss \(arena\) \+ 0 heap \+ 16384 stack exceed the RAM budget of 262144 bytes",
        ),
    ],
)
def test_wrong_prediction_still_fails_at_link_time(tmp_path, source, padding, message):
    model = _copy_tiny_model(tmp_path)
    path = model / source
    path.write_text(path.read_text() + "\n" + padding + "\n")
    with pytest.raises(BuildError, match=message):
        build(model, "qemu_m4", app_dir=PORT_CHECK_APP, check=False, timeout_s=180)
    assert "does not fit qemu_m4" in (model / "firmware_qemu_m4" / "build.log").read_text()


def test_upload_runs_firmware_in_qemu_and_run_to_exit(tmp_path):
    """`pio run -t upload` on a QEMU board runs QEMU; the self-test exits 0 when its count is right."""
    model = _copy_tiny_model(tmp_path)
    report = build(
        model, "qemu_m33", app_dir=PORT_CHECK_APP, extra_build_flags=["-DPORT_CHECK_SELFTEST"], timeout_s=180
    )
    uploaded = flash(model, "qemu_m33", timeout_s=120)
    assert uploaded["exit_status"] == 0, uploaded["output"]
    assert abs(int(re.search(r"selftest count (\d+)", uploaded["output"]).group(1)) - 2_000_000) <= 4

    status, output = run_to_exit("qemu_m33", report["elf"], timeout_s=30)
    assert status == 0
    assert abs(int(re.search(r"selftest count (\d+)", output).group(1)) - 2_000_000) <= 4


def test_upload_of_firmware_that_waits_is_stopped(tmp_path):
    """The port-check app (like the benchmark) waits for a host: flash() stops QEMU and says why."""
    model = _copy_tiny_model(tmp_path)
    report = build(model, "qemu_m4", app_dir=PORT_CHECK_APP, timeout_s=180)
    with pytest.raises(DeviceError, match="still running in QEMU after 2 s, so it was stopped"):
        flash(model, "qemu_m4", timeout_s=2)
    leftover = subprocess.run(["pgrep", "-f", report["elf"]], capture_output=True, timeout=10)
    assert leftover.returncode == 1, leftover.stdout


def test_build_command_with_the_benchmark_app(tmp_path, capsys):
    """`tinyrank build` end to end: the real benchmark app, a JSON report, and a one-line error."""
    from toolchain.cli import main

    model = _copy_tiny_model(tmp_path)
    report_path = tmp_path / "build.json"
    assert main(["build", str(model), "--board", "qemu_m3", "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert Path(report["elf"]).is_file() and report["board"] == "qemu_m3"
    assert 0 < report["flash_bytes"] <= report["predicted"]["flash_bytes"]
    assert "predicted" in capsys.readouterr().out

    assert main(["build", str(model), "--board", "qemu_m5"]) == 2
    assert "tinyrank: error: unknown board 'qemu_m5'" in capsys.readouterr().err
