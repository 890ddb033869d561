"""Project generation, budgets and cross-compilation: everything the build checks without PlatformIO.

Real boards are never built with `pio run` here (their platforms would download); instead
their platformio.ini is validated offline and the model, kernels and benchmark app are
compiled with arm-none-eabi-gcc for each board's core, warnings as errors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from toolchain.errors import BudgetError, BuildError, TinyrankError
from toolchain.firmware import (
    BENCH_APP_DIR,
    check_budget,
    create_project,
    cross_compile,
    predict_usage,
    render_board_config,
    validate_platformio_ini,
)
from toolchain.firmware.boards import list_boards, load_board
from toolchain.firmware.cli import register

FIXTURES = Path(__file__).parent / "fixtures"
REAL_BOARDS = [b for b in list_boards() if not b.is_emulated]
QEMU_BOARDS = [b for b in list_boards() if b.is_emulated]


@pytest.fixture()
def tiny_model(tmp_path) -> Path:
    """The hand-written one-op model (tests/fixtures/tiny_model), copied so tests may change it."""
    return Path(shutil.copytree(FIXTURES / "tiny_model", tmp_path / "tiny_model"))


@pytest.fixture(scope="module")
def generated_model(tmp_path_factory) -> Path:
    """A real codegen output: Dense(16->8, relu) -> Dense(4) -> Softmax, full int8 (~6 s of TensorFlow)."""
    import keras

    from toolchain.codegen import generate
    from toolchain.convert import convert_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(4),
            keras.layers.Softmax(),
        ]
    )
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    root = tmp_path_factory.mktemp("generated")
    (root / "model.tflite").write_bytes(convert_model(model, x, samples=32))
    generate(root / "model.tflite", root / "gen", tflm_arena=False)
    return root / "gen"


# ---------------------------------------------------------------- project layout


@pytest.mark.parametrize("board", QEMU_BOARDS, ids=lambda b: b.id)
def test_qemu_project_layout(tiny_model, board):
    project = create_project(tiny_model, board, app_dir=FIXTURES / "port_check_app")
    assert project == tiny_model / f"firmware_{board.id}"
    for path in (
        "platformio.ini",
        "linker.ld",
        f"boards/{board.pio_board}.json",
        "include/model.h",
        "include/port.h",
        "include/board_config.h",
        "src/model/model.c",
        "src/model/model_weights.c",
        "src/bench/port_check_app.c",
        "src/port/startup.c",
        "src/port/port_qemu_mps2.c",
    ):
        assert (project / path).is_file(), path
    assert validate_platformio_ini(project) == [board.id]
    linker = (project / "linker.ld").read_text()
    assert f"__flash_budget__ = {board.flash_bytes};" in linker
    assert f"__ram_budget__ = {board.ram_bytes};" in linker
    assert linker.count("ASSERT(") == 2
    manifest = json.loads((project / "boards" / f"{board.pio_board}.json").read_text())
    assert manifest["upload"]["maximum_size"] == board.flash_bytes
    assert manifest["build"]["qemu_machine"] == board.qemu_machine
    ini = (project / "platformio.ini").read_text()
    assert "-DTR_PROFILE" in ini and "tool-scons @ symlink://" in ini


@pytest.mark.parametrize("board", REAL_BOARDS, ids=lambda b: b.id)
def test_real_board_project_validates_offline(tiny_model, board):
    project = create_project(tiny_model, board)
    renode_env = [f"{board.id}_renode"] if board.renode_platform else []
    assert validate_platformio_ini(project) == [board.id, *renode_env]
    ini = (project / "platformio.ini").read_text()
    for line in (
        f"platform = {board.pio_platform}",
        f"board = {board.pio_board}",
        "framework = arduino",
        f"upload_protocol = {board.upload_protocol}",
        f"monitor_speed = {board.baud}",
    ):
        assert line in ini
    assert (project / "src" / "port" / "main.cpp").is_file()
    assert not (project / "linker.ld").exists()
    assert sorted(p.name for p in (project / "src" / "bench").iterdir()) == sorted(
        p.name for p in BENCH_APP_DIR.iterdir() if p.suffix in (".c", ".h")
    )


def test_validation_treats_unknown_options_as_errors(tiny_model):
    project = create_project(tiny_model, "nano33")
    with (project / "platformio.ini").open("a") as ini:
        ini.write("upload_prot = sam-ba\n")
    with pytest.raises(BuildError, match="unknown configuration option `upload_prot`"):
        validate_platformio_ini(project)


def test_no_profile_leaves_out_tr_profile(tiny_model):
    project = create_project(tiny_model, "qemu_m4", profile=False)
    assert "TR_PROFILE" not in (project / "platformio.ini").read_text()


def test_regenerating_drops_stale_sources_and_keeps_the_model(tiny_model):
    before = {p.name: p.read_bytes() for p in tiny_model.iterdir() if p.is_file()}
    project = create_project(tiny_model, "qemu_m4")
    (project / "src" / "model" / "stale.c").write_text("#error stale\n")
    create_project(tiny_model, "qemu_m4")
    assert not (project / "src" / "model" / "stale.c").exists()
    assert {p.name: p.read_bytes() for p in tiny_model.iterdir() if p.is_file()} == before


def test_project_refuses_the_model_folder_and_missing_model(tiny_model, tmp_path):
    with pytest.raises(TinyrankError, match="is the model folder"):
        create_project(tiny_model, "qemu_m4", out_dir=tiny_model)
    with pytest.raises(TinyrankError, match=r"model_info.json: no such file"):
        create_project(tmp_path / "nothing", "qemu_m4")
    with pytest.raises(TinyrankError, match="unknown board 'm5'"):
        create_project(tiny_model, "m5")


def test_project_never_clears_a_folder_it_did_not_make(tiny_model, tmp_path):
    mine = tmp_path / "my_project"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(TinyrankError, match="was not written by `tinyrank build`"):
        create_project(tiny_model, "qemu_m4", out_dir=mine)
    assert (mine / "src" / "main.c").read_text() == "int main(void) { return 0; }\n"


def test_build_project_only_cli(tiny_model, tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(
        ["build", str(tiny_model), "--board", "teensy41", "--project-only", "--out", str(tmp_path / "fw")]
    )
    report = args.func(args)
    assert report["project"] == str(tmp_path / "fw")
    assert (tmp_path / "fw" / "platformio.ini").is_file()


# ---------------------------------------------------------------- cross-compilation for real boards


@pytest.mark.parametrize("board", REAL_BOARDS, ids=lambda b: b.id)
def test_generated_model_and_bench_app_compile_warning_free(generated_model, board):
    result = cross_compile(generated_model, board, app_dir=BENCH_APP_DIR)
    objects = result["objects"]
    assert {"model.o", "model_weights.o", "tr_fully_connected.o", "bench_main.o"} <= set(objects)
    assert (
        f"-mcpu={board.compile_flags()[0].split('=')[1]}" in result["flags"] and "-Werror" in result["flags"]
    )
    info = json.loads((generated_model / "model_info.json").read_text())
    assert objects["model_weights.o"]["text"] >= info["weights_bytes"]


@pytest.mark.parametrize("board", REAL_BOARDS, ids=lambda b: b.id)
def test_arduino_port_compiles_for_each_core(board, tmp_path):
    """ports/arduino/main.cpp against a shim of the few Arduino APIs it uses (the frameworks are not here)."""
    (tmp_path / "board_config.h").write_text(render_board_config(board))
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [
            "arm-none-eabi-g++",
            *board.compile_flags(),
            "-std=gnu++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fno-exceptions",
            "-fno-rtti",
            f"-I{tmp_path}",
            f"-I{repo / 'firmware_templates' / 'runtime'}",
            f"-I{FIXTURES / 'arduino_shim'}",
            "-c",
            str(repo / "firmware_templates/runtime/ports/arduino/main.cpp"),
            "-o",
            str(tmp_path / "main.o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(tmp_path / "main.o")], capture_output=True, text=True, timeout=30
    ).stdout
    for name in (
        "port_read_byte",
        "port_write",
        "port_counter_start",
        "port_counter_elapsed",
        "port_stack_bounds",
        "port_static_ram_bytes",
        "port_exit",
        "setup",
        "loop",
    ):
        assert name in symbols


def test_compile_error_names_the_file(tiny_model):
    (tiny_model / "model.c").write_text(
        (tiny_model / "model.c").read_text() + "\nint unused_variable_here = ;\n"
    )
    with pytest.raises(BuildError, match=r"compiling .*model.c for pico \(cortex-m0plus\)"):
        cross_compile(tiny_model, "pico")


# ---------------------------------------------------------------- budgets


def test_prediction_counts_weights_code_arena_and_stack(generated_model):
    info = json.loads((generated_model / "model_info.json").read_text())
    usage = check_budget(generated_model, "nano33")
    board = load_board("nano33")
    assert usage["flash"]["weights"] == info["weights_bytes"] == sum(c["bytes"] for c in info["constants"])
    assert usage["flash"]["code"] > 0
    assert usage["flash"]["framework"] == board.runtime_flash_bytes
    assert usage["ram"]["arena"] == info["arena_bytes"]
    # The benchmark app's buffers are linked: the saved inputs, run counts and frames at least.
    assert usage["ram"]["static"] > 2 * 256
    assert usage["ram"]["stack"] == board.stack_bytes
    assert usage["flash_bytes"] == sum(usage["flash"].values()) < board.flash_bytes


def _patch_info(model_dir: Path, **changes) -> None:
    path = model_dir / "model_info.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info))


def test_over_flash_budget_refused_with_details(generated_model, tmp_path):
    model = Path(shutil.copytree(generated_model, tmp_path / "big"))
    _patch_info(model, weights_bytes=3_000_000)
    with pytest.raises(BudgetError) as caught:
        check_budget(model, "qemu_m4")
    message = str(caught.value)
    assert "\n" not in message
    for part in (
        "does not fit board 'qemu_m4'",
        "flash: needs",
        "> 1048576 B",
        "weights 3000000",
        "largest weights: 'tr_",
        "largest tensors:",
        "tinyrank compress MODEL.keras --board qemu_m4",
    ):
        assert part in message, part
    assert "ram:" not in message  # RAM fits: only what is over is reported


def test_over_ram_budget_refused(tiny_model):
    _patch_info(tiny_model, arena_bytes=300_000)
    with pytest.raises(
        BudgetError,
        match=r"ram: needs \d+ B \(arena 300000, static \d+, framework 0, stack 16384.*> 262144 B",
    ):
        check_budget(tiny_model, "qemu_m4")
    # The same model fits a board with more RAM.
    assert predict_usage(tiny_model, "teensy41")["ram_bytes"] < load_board("teensy41").ram_bytes
    check_budget(tiny_model, "teensy41")
