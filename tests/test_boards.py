"""Board files: every one loads, follows the rules, and a broken one is refused with the key named."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from toolchain.errors import TinyrankError
from toolchain.firmware import boards as boards_module
from toolchain.firmware import render_board_config
from toolchain.firmware.boards import list_boards, load_board
from toolchain.firmware.cli import register

REQUIRED = {"nano33", "nucleo_l4r5zi", "pico", "teensy41", "qemu_m4", "qemu_m3", "qemu_m33", "qemu_m0"}


def test_required_boards_exist_and_load():
    ids = {b.id for b in list_boards()}
    assert REQUIRED <= ids


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.id)
def test_board_rules(board):
    assert board.path.stem == board.id
    assert board.counter in ("dwt", "systick")
    if board.core == "cortex-m0plus":
        assert not board.has_dsp and board.counter == "systick" and not board.fpu
    if board.is_emulated:
        assert board.family == "qemu_mps2" and board.counter_unit == "instructions"
        assert board.memory.flash_size >= board.flash_bytes and board.memory.ram_size >= board.ram_bytes
        assert board.instructions_per_tick > 0 and board.uart_base > 0
    else:
        assert (
            board.family == "arduino" and board.counter_unit == "cycles" and board.pio_framework == "arduino"
        )


def test_specific_board_facts():
    nano = load_board("nano33")
    assert (nano.mcu, nano.core, nano.clock_hz) == ("Nordic nRF52840", "cortex-m4f", 64_000_000)
    assert (nano.flash_bytes, nano.ram_bytes) == (1 << 20, 256 << 10)
    qemu_m4 = load_board("qemu_m4")
    assert qemu_m4.qemu_machine == "mps2-an386"
    assert (qemu_m4.flash_bytes, qemu_m4.ram_bytes) == (nano.flash_bytes, nano.ram_bytes)
    assert load_board("qemu_m3").has_dsp is False and load_board("qemu_m3").qemu_machine == "mps2-an385"
    assert load_board("qemu_m33").qemu_machine == "mps2-an505"


@pytest.mark.parametrize(
    "board_id, expected",
    [
        ("pico", ["-mcpu=cortex-m0plus", "-mthumb", "-masm-syntax-unified", "-mfloat-abi=soft"]),
        ("qemu_m0", ["-mcpu=cortex-m0", "-mthumb", "-masm-syntax-unified", "-mfloat-abi=soft"]),
        ("qemu_m3", ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]),
        ("nano33", ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]),
        ("teensy41", ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]),
        ("qemu_m33", ["-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]),
    ],
)
def test_compile_flags_per_core(board_id, expected):
    assert load_board(board_id).compile_flags() == expected


def test_unknown_board_lists_known_ids():
    with pytest.raises(TinyrankError, match=r"unknown board 'nano34'.*known boards: .*nano33.*qemu_m4"):
        load_board("nano34")


def test_unknown_key_refused(tmp_path):
    source = (boards_module.BOARDS_DIR / "teensy41.toml").read_text()
    (tmp_path / "teensy41.toml").write_text(source + "\nflash_kb = 3\n")
    with pytest.raises(TinyrankError, match=r"teensy41.toml: unknown key 'flash_kb'"):
        load_board("teensy41", boards_dir=tmp_path)


def test_missing_key_refused(tmp_path):
    source = (boards_module.BOARDS_DIR / "teensy41.toml").read_text()
    (tmp_path / "teensy41.toml").write_text(source.replace("baud =", "# baud ="))
    with pytest.raises(TinyrankError, match=r"teensy41.toml: missing key 'baud'"):
        load_board("teensy41", boards_dir=tmp_path)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("clock_hz = 600_000_000", 'clock_hz = "fast"', r"key 'clock_hz' is 'fast', expected an integer"),
        ("has_dsp = true", "has_dsp = 1", r"key 'has_dsp' is 1, expected true/false"),
        ('core = "cortex-m7"', 'core = "cortex-m9"', r"core 'cortex-m9' is not one of"),
        ('counter = "dwt"', 'counter = "rtc"', r"counter 'rtc' must be 'dwt' or 'systick'"),
        ('id = "teensy41"', 'id = "teensy40"', r"id 'teensy40' must match the file name"),
        ("ram_bytes = 1_048_576", "ram_bytes = 0", r"key 'ram_bytes' must be positive"),
    ],
)
def test_bad_values_refused(tmp_path, old, new, message):
    source = (boards_module.BOARDS_DIR / "teensy41.toml").read_text()
    assert old in source
    (tmp_path / "teensy41.toml").write_text(source.replace(old, new))
    with pytest.raises(TinyrankError, match=message):
        load_board("teensy41", boards_dir=tmp_path)


def test_dsp_on_m0plus_refused(tmp_path):
    source = (boards_module.BOARDS_DIR / "pico.toml").read_text().replace("has_dsp = false", "has_dsp = true")
    (tmp_path / "pico.toml").write_text(source)
    with pytest.raises(TinyrankError, match="cortex-m0plus has no DSP"):
        load_board("pico", boards_dir=tmp_path)


def test_qemu_budget_larger_than_memory_refused(tmp_path):
    source = (
        (boards_module.BOARDS_DIR / "qemu_m33.toml")
        .read_text()
        .replace("ram_size = 0x00200000", "ram_size = 0x00010000")
    )
    (tmp_path / "qemu_m33.toml").write_text(source)
    with pytest.raises(TinyrankError, match="larger than QEMU's memories"):
        load_board("qemu_m33", boards_dir=tmp_path)


def test_adding_a_board_is_adding_a_file(tmp_path):
    source = (boards_module.BOARDS_DIR / "nano33.toml").read_text()
    (tmp_path / "nano33.toml").write_text(source)
    (tmp_path / "nano33_sense.toml").write_text(source.replace('id = "nano33"', 'id = "nano33_sense"'))
    assert [b.id for b in list_boards(tmp_path)] == ["nano33", "nano33_sense"]


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.id)
def test_board_config_header_compiles_with_its_values(board, tmp_path):
    """board_config.h carries the contract macros; a C program checks their values at compile time."""
    (tmp_path / "board_config.h").write_text(render_board_config(board))
    check = tmp_path / "check.c"
    check.write_text(
        '#include <string.h>\n#include "board_config.h"\n'
        f'_Static_assert(BOARD_CLOCK_HZ == {board.clock_hz}u, "clock");\n'
        f'_Static_assert(BOARD_BAUD == {board.baud}u, "baud");\n'
        f'_Static_assert(sizeof(BOARD_ID) == {len(board.id) + 1}, "id");\n'
        f'_Static_assert(sizeof(BOARD_COUNTER_UNIT) == {len(board.counter_unit) + 1}, "unit");\n'
        f"#ifndef BOARD_COUNTER_{board.counter.upper()}\n#error counter\n#endif\n"
    )
    result = subprocess.run(
        ["arm-none-eabi-gcc", *board.compile_flags(), "-c", str(check), "-o", str(tmp_path / "c.o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_boards_command_lists_every_board(capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["boards"])
    report = args.func(args)
    assert {b["id"] for b in report["boards"]} >= REQUIRED
    out = capsys.readouterr().out
    assert "nano33" in out and "mps2-an386" in out and "nRF52840" in out
