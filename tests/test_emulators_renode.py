"""Renode script for the Nano 33 BLE. Renode is not installable here, so running it is tested
only where `renode` is on the PATH (and PlatformIO's nordicnrf52 platform is installed); CI uses QEMU."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolchain.errors import TinyrankError
from toolchain.firmware import create_project, validate_platformio_ini
from toolchain.firmware.boards import load_board
from toolchain.firmware.emulators import RenodeSession, _listening, renode_available, renode_script

FIXTURES = Path(__file__).parent / "fixtures"


def test_nano33_project_carries_a_renode_script_and_env(tmp_path):
    model = shutil.copytree(FIXTURES / "tiny_model", tmp_path / "tiny_model")
    project = create_project(model, "nano33")
    script = (project / "nano33.resc").read_text()
    for line in (
        "machine LoadPlatformDescription @platforms/cpus/nrf52840.repl",
        "$bin ?= @$ORIGIN/.pio/build/nano33_renode/firmware.elf",
        'emulation CreateServerSocketTerminal $port "host_link" false',
        "connector Connect sysbus.uart0 host_link",
        "sysbus LoadELF $bin",
        "start",
    ):
        assert line in script, line
    assert validate_platformio_ini(project) == ["nano33", "nano33_renode"]
    ini = (project / "platformio.ini").read_text()
    assert "extends = env:nano33" in ini and "-DPORT_SERIAL=Serial1" in ini


def test_boards_without_a_renode_model_are_refused():
    with pytest.raises(TinyrankError, match="board 'teensy41' has no renode_platform"):
        renode_script(load_board("teensy41"))


def test_listening_reads_the_socket_table():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not _listening(port)
        server.listen()
        assert _listening(port)


@pytest.mark.skipif(
    not renode_available(), reason="renode is not on the PATH (not installable here; CI uses QEMU)"
)
def test_nano33_firmware_boots_in_renode(tmp_path):
    import serial

    from toolchain.firmware import build

    model = shutil.copytree(FIXTURES / "tiny_model", tmp_path / "tiny_model")
    report = build(
        model, "nano33", app_dir=FIXTURES / "port_check_app", extra_build_flags=["-DPORT_SERIAL=Serial1"]
    )
    with RenodeSession("nano33", report["elf"]) as renode:
        with serial.serial_for_url(renode.url, timeout=60) as link:
            assert link.readline().startswith(b"hello nano33 cycles")
