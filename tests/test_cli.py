"""The CLI contract: every stage is there, documented with an example, and starts fast."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.cli import build_parser, main

COMMANDS = ("compress", "convert", "codegen", "verify", "build", "flash", "bench", "deploy", "boards")


def _subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_command_is_registered() -> None:
    assert set(COMMANDS) <= set(_subcommands())


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command: str) -> None:
    text = _subcommands()[command].format_help()
    assert re.search(r"examples?:", text) and f"tinyrank {command} " in text


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "boards"])
def test_report_option_everywhere(command: str) -> None:
    assert "--report" in _subcommands()[command].format_help()


def test_help_does_not_import_tensorflow() -> None:
    """`tinyrank --help` and `tinyrank boards` must not pay TensorFlow's multi-second import."""
    code = (
        "import sys; from toolchain.cli import build_parser; build_parser(); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"


def test_missing_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture, tmp_path) -> None:
    assert main(["codegen", str(tmp_path / "nope.tflite"), "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyrank: error: ") and err.count("\n") == 1 and "nope.tflite" in err


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "toolchain.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "deploy" in out.stdout


def test_make_flash_wires_board_and_port() -> None:
    """`make flash BOARD=nano33 PORT=...` must reach `tinyrank deploy --flash` with both.

    A dry run: there is no board here.
    """
    out = subprocess.run(
        ["make", "-n", "flash", "BOARD=nano33", "PORT=/dev/ttyACM0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    deploy = next(line for line in out.splitlines() if "tinyrank deploy" in line)
    assert "--board nano33" in deploy and "--flash" in deploy and "--port /dev/ttyACM0" in deploy


def test_make_demo_kws_sets_up_first_and_passes_the_board() -> None:
    """`make demo-kws` must run the set-up (espeak-ng, .venv) before the example, on the chosen board."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["make", "-n", "demo-kws", "BOARD=qemu_m3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=root,
    ).stdout.splitlines()
    setup = next(i for i, line in enumerate(out) if "scripts/setup.sh" in line)
    demo = next(i for i, line in enumerate(out) if "examples.kws.demo" in line)
    assert setup < demo and "--board qemu_m3" in out[demo]
    help_text = subprocess.run(
        [sys.executable, "-m", "examples.kws.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=root,
    ).stdout
    assert "--board" in help_text and "--per-class" in help_text
