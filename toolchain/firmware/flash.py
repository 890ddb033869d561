"""Running PlatformIO: `pio run` to build the firmware (checked against the budget), `-t upload` to flash it.

On a QEMU board, upload runs the firmware in QEMU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from toolchain.errors import BuildError, DeviceError, TinyrankError
from toolchain.fileio import atomic_write_text
from toolchain.firmware.boards import Board, load_board
from toolchain.firmware.budget import check_budget, predict_usage
from toolchain.firmware.compile import elf_sizes
from toolchain.firmware.project import PIO_TIMEOUT_S, UPLOAD_TIMEOUT_S, create_project
from toolchain.processes import first_error_line, run_tool


def pio_environment(project: Path, board: Board) -> dict:
    """Environment for `pio`: no telemetry; QEMU boards get a core dir inside the project (offline)."""
    env = dict(os.environ)
    env["PLATFORMIO_SETTING_ENABLE_TELEMETRY"] = "No"
    env["PLATFORMIO_NO_ANSI"] = "true"
    if board.is_emulated:
        env["PLATFORMIO_CORE_DIR"] = str(project / ".platformio")
    return env


def _pio(project: Path, board: Board, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "platformio", "run", "-d", str(project), "-e", board.id, *args]
    return run_tool(
        command,
        timeout_s=timeout_s,
        what=f"pio run for {board.id}",
        env=pio_environment(project, board),
        guard=True,
    )


def elf_path(project: str | os.PathLike, board: Board | str) -> Path:
    return Path(project) / ".pio" / "build" / load_board(board).id / "firmware.elf"


def build(
    model_dir: str | os.PathLike,
    board: Board | str,
    *,
    profile: bool = True,
    out_dir: str | os.PathLike | None = None,
    app_dir: str | os.PathLike | None = None,
    extra_build_flags: Sequence[str] = (),
    check: bool = True,
    timeout_s: float = PIO_TIMEOUT_S,
) -> dict:
    """Check the budget, write the project, run `pio run`, and compare the ELF with the prediction.

    `check=False` skips the up-front budget check (the linker script still enforces it on
    QEMU boards); tests use it to see the link-time check fire.
    """
    board = load_board(board)
    predict = check_budget if check else predict_usage
    prediction = predict(model_dir, board, app_dir=app_dir)
    project = create_project(
        model_dir, board, out_dir, profile=profile, app_dir=app_dir, extra_build_flags=extra_build_flags
    )
    started = time.monotonic()
    result = _pio(project, board, timeout_s=timeout_s)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        log = result.stdout + result.stderr
        atomic_write_text(project / "build.log", log)
        raise BuildError(
            f"pio run -e {board.id} failed in {project}: {first_error_line(log)} "
            f"(full log: {project / 'build.log'})"
        )
    elf = elf_path(project, board)
    actual = elf_sizes(elf)
    return {
        "board": board.id,
        "project": str(project),
        "elf": str(elf),
        "build_seconds": round(seconds, 2),
        "flash_bytes": actual["flash_bytes"],
        "static_ram_bytes": actual["static_ram_bytes"],
        "flash_limit": board.flash_bytes,
        "ram_limit": board.ram_bytes,
        "predicted": prediction,
        "flash_prediction_error": _relative_error(prediction["flash_bytes"], actual["flash_bytes"]),
        "static_ram_prediction_error": _relative_error(
            prediction["static_ram_bytes"], actual["static_ram_bytes"]
        ),
    }


def _relative_error(predicted: int, actual: int) -> float:
    """(predicted - actual) / actual: positive when the prediction was cautious."""
    return round((predicted - actual) / actual, 4) if actual else 0.0


def flash(
    model_dir: str | os.PathLike,
    board: Board | str,
    port: str | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    timeout_s: float = UPLOAD_TIMEOUT_S,
) -> dict:
    """Upload the built firmware (`pio run -t upload`); on a QEMU board this runs it in QEMU.

    In QEMU the UART is this terminal and the call returns when the firmware exits
    (semihosting) or after `timeout_s`.
    """
    board = load_board(board)
    project = Path(out_dir) if out_dir is not None else Path(model_dir) / f"firmware_{board.id}"
    if not (project / "platformio.ini").is_file():
        raise TinyrankError(
            f"{project}: no platformio.ini; run `tinyrank build {model_dir} --board {board.id}` first"
        )
    args = ["-t", "upload"]
    if port and not board.is_emulated:
        args += ["--upload-port", port]
    try:
        result = _pio(project, board, *args, timeout_s=timeout_s)
    except BuildError as exc:
        if board.is_emulated and "no result after" in str(exc):
            raise DeviceError(
                f"firmware of {project} still running in QEMU after {timeout_s:g} s, so it was stopped: the "
                f"benchmark firmware waits for a host; measure it with `tinyrank bench` instead"
            ) from exc
        raise
    log = result.stdout + result.stderr
    if result.returncode != 0 and not board.is_emulated:
        raise BuildError(f"upload to {board.id} failed: {first_error_line(log)}")
    return {
        "board": board.id,
        "project": str(project),
        "exit_status": result.returncode,
        "output": log[-4000:],
    }
