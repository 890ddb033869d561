"""The device a benchmark talks to: the firmware `tinyrank build` made, and the link to it.

For a QEMU board the device is QEMU running that ELF (always stopped on exit); for a real
board it is the serial port the user names. The firmware's HELLO is checked against
model_info.json before anything is measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolchain.bench.client import BenchClient
from toolchain.bench.protocol import DeviceInfo
from toolchain.errors import DeviceError, TinyrankError


def built_firmware(model_dir: Path, board: Any) -> tuple[Path | None, dict | None]:
    """The ELF `tinyrank build` made for this board, and its sizes; (None, None) if there is none."""
    from toolchain.firmware import elf_path, elf_sizes

    elf = elf_path(model_dir / f"firmware_{board.id}", board)
    if not elf.is_file():
        return None, None
    return elf, elf_sizes(elf)


def require_firmware(model_dir: Path, board: Any, port: str | None) -> tuple[Path | None, dict | None]:
    """`_firmware`, refusing what cannot be measured.

    That is a QEMU board without its ELF, or a real board without a port.
    """
    elf, sizes = built_firmware(model_dir, board)
    if board.is_emulated and elf is None:
        raise TinyrankError(
            f"{model_dir}: no firmware for {board.id}; run `tinyrank build {model_dir} --board {board.id}`"
        )
    if not board.is_emulated and port is None:
        raise TinyrankError(
            f"board '{board.id}' is a real board: give its serial port, e.g. --port /dev/ttyACM0"
        )
    return elf, sizes


@contextmanager
def device_url(board: Any, elf: Path | None, port: str | None) -> Iterator[str]:
    """The pyserial URL of the device: `port` if given, else QEMU running `elf` (always stopped on exit)."""
    if port is not None:
        yield port
        return
    from toolchain.firmware.emulators import QemuSession

    if elf is None:
        raise TinyrankError(f"board '{board.id}': no firmware to run in QEMU and no --port")
    with QemuSession(board, elf) as qemu:
        yield qemu.url


def open_client(url: str, board: Any, info: dict, timeout_s: float) -> BenchClient:
    return BenchClient.open(
        url, baudrate=board.baud, timeout=timeout_s, expected_hash=int(info["model_hash32"])
    )


def bench_app_ram_bytes(elf: Path) -> int | None:
    """RAM the benchmark app itself takes (its statics are all named bench_*), so a reader can
    subtract it to get what the model needs in a deployment without the harness."""
    from toolchain.firmware import ARM_PREFIX
    from toolchain.processes import run_tool

    try:
        result = run_tool(
            [f"{ARM_PREFIX}nm", "-S", "--defined-only", str(elf)], timeout_s=30, what="reading symbols"
        )
    except TinyrankError:
        return None
    if result.returncode != 0:
        return None
    total = 0
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdD" and parts[3].startswith("bench_"):
            total += int(parts[1], 16)
    return total


def check_device(device: DeviceInfo, info: dict, board: Any) -> None:
    sizes = tuple(int(e["size"]) for e in info["inputs"]), tuple(int(e["size"]) for e in info["outputs"])
    if (device.input_sizes, device.output_sizes) != sizes:
        raise DeviceError(
            f"firmware tensors in {device.input_sizes} out {device.output_sizes} differ from "
            f"model_info.json in {sizes[0]} out {sizes[1]}; rebuild the firmware"
        )
    if device.counter_unit != board.counter_unit:
        raise DeviceError(
            f"firmware counts {device.counter_unit} but board '{board.id}' should count "
            f"{board.counter_unit}; was it built for another board?"
        )
