"""`tinyrank export`: the PlatformIO library (manifest validated offline, pulled by lib_deps into a QEMU
build), the CMake snippet used by a host CMake project whose outputs must equal TensorFlow Lite Micro's, the
command line, and what the export refuses or leaves out."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.export_model import generate_shapes_model
from toolchain.cli import main as cli_main
from toolchain.errors import TinyrankError
from toolchain.export import export_arduino, export_platformio, model_library


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    return generate_shapes_model(tmp_path_factory.mktemp("export"))


def test_platformio_library_manifest_validates_offline(generated, tmp_path):
    from platformio.package.manifest.parser import ManifestParserFactory
    from platformio.package.manifest.schema import ManifestSchema

    report = export_platformio(model_library(generated["gen"]), tmp_path / "lib", generated["gen"])
    manifest = ManifestSchema().load_manifest(
        ManifestParserFactory.new_from_dir(str(tmp_path / "lib")).as_dict()
    )
    assert manifest["name"] == "tinyrank_shapes" and manifest["headers"] == ["tinyrank_shapes.h"]
    assert (
        report["lib_deps"].startswith("file://")
        and (tmp_path / "lib" / "src" / "tinyrank_shapes.h").is_file()
    )


HOST_APP = """
#include <stdio.h>
#include <tinyrank_shapes.h>

int main(void)
{
    int8_t *in = shapes_input(0);
    for (int i = 0; i < SHAPES_INPUT0_SIZE; ++i) {
        int v = getchar();
        if (v == EOF) return 3;
        in[i] = (int8_t)v;
    }
    if (shapes_invoke() != 0) return 4;
    for (int i = 0; i < SHAPES_OUTPUT0_SIZE; ++i) printf("%d\\n", shapes_output(0)[i]);
    return 0;
}
"""


def test_cmake_project_adds_the_library_with_one_line(generated, tmp_path):
    """Zephyr style (one include() links into `app`) and plain add_subdirectory, built by host cmake;
    both executables must print TensorFlow Lite Micro's outputs for the same int8 input."""
    from toolchain.oracle import run

    lib = tmp_path / "tinyrank_shapes"
    export_platformio(model_library(generated["gen"]), lib, generated["gen"])
    project = tmp_path / "app"
    project.mkdir()
    (project / "main.c").write_text(HOST_APP)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(host_app C)\n"
        "add_executable(app main.c)\n"
        f"include({lib}/tinyrank_shapes.cmake)\n"
        f"add_subdirectory({lib} tinyrank_shapes)\n"
        "add_executable(plain main.c)\ntarget_link_libraries(plain PRIVATE tinyrank_shapes)\n"
    )
    build = tmp_path / "build"
    for command in (["cmake", "-S", str(project), "-B", str(build)], ["cmake", "--build", str(build)]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 8, 8, 1)).astype(np.int8)
    expected = run(generated["tflite"], x)[0][0].tolist()
    for exe in ("app", "plain"):
        result = subprocess.run([str(build / exe)], input=x.tobytes(), capture_output=True, timeout=30)
        assert result.returncode == 0, exe
        assert [int(v) for v in result.stdout.split()] == expected, exe


def test_export_cli_writes_both_and_reports(generated, tmp_path, capsys):
    report = tmp_path / "export.json"
    status = cli_main(
        [
            "export",
            str(generated["gen"]),
            "--arduino",
            str(tmp_path / "lib.zip"),
            "--platformio-lib",
            str(tmp_path / "pio"),
            "--name",
            "shapes_model",
            "--lib-version",
            "2.1.0",
            "--report",
            str(report),
        ]
    )
    assert status == 0 and report.is_file()
    with zipfile.ZipFile(tmp_path / "lib.zip") as archive:
        props = archive.read("shapes_model/library.properties").decode()
        sample = archive.read("shapes_model/examples/shapes_model_demo/sample.h").decode()
    assert "version=2.1.0" in props and "kSampleLabel = -1;" in sample
    assert "lib_deps = file://" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "Arduino_kws"], "reserved"),
        (["--name", "my lib"], "--name"),
        (["--lib-version", "1.2"], "MAJOR.MINOR.PATCH"),
        (["--labels", "a,b"], "2 labels given but output 0 of the model has 3"),
        (["--sample", "99", "--data", "DATA"], "--sample 99"),
    ],
)
def test_bad_options_fail_before_writing(generated, tmp_path, capsys, extra, message):
    extra = [str(generated["data"]) if e == "DATA" else e for e in extra]
    out = tmp_path / "lib.zip"
    assert cli_main(["export", str(generated["gen"]), "--arduino", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_never_clears_a_folder_it_did_not_make(generated, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(TinyrankError, match="not made by `tinyrank export`"):
        export_platformio(model_library(generated["gen"]), folder, generated["gen"])
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(TinyrankError, match="outside the codegen folder"):
        export_platformio(model_library(generated["gen"]), generated["gen"] / "lib", generated["gen"])
    with pytest.raises(TinyrankError, match=r"\.zip"):
        export_arduino(model_library(generated["gen"]), tmp_path / "lib.tar")


def test_ships_only_the_kernels_the_model_uses(generated, tmp_path):
    """A codegen folder reused across models keeps stale kernels; the library takes model_info's list."""
    import json

    gen = tmp_path / "gen"
    shutil.copytree(generated["gen"], gen)
    (gen / "tr_stale_kernel.c").write_text("int tr_stale(void) { return 1; }\n")
    (gen / "tr_stale_kernel.h").write_text("int tr_stale(void);\n")
    files = model_library(gen).files
    info = json.loads((gen / "model_info.json").read_text())
    assert "tr_stale_kernel.c" not in files and "tr_stale_kernel.h" not in files
    assert set(info["kernels"]) <= set(files) and {"model.h", "model.c", "model_weights.c"} <= set(files)
    included = set(re.findall(r'#include "(tr_\w+\.h)"', (gen / "model.c").read_text()))
    assert included and included <= set(files)  # each family header model.c includes ships with it
    missing = sorted(included)[0]
    (gen / missing).unlink()
    with pytest.raises(TinyrankError, match=rf"{missing}: missing \(an #include names it\)"):
        model_library(gen)


LIB_DEPS_APP = """
#include <tinyrank_shapes.h>

#include "port.h"

static const int8_t kInput[SHAPES_INPUT0_SIZE] = {@INPUT@};
static const int8_t kExpected[SHAPES_OUTPUT0_SIZE] = {@EXPECTED@};

/* Runs the model from the library PlatformIO pulled in; exits 0 when it matches TFLite Micro. */
void bench_main(void)
{
    for (int i = 0; i < SHAPES_INPUT0_SIZE; ++i) {
        shapes_input(0)[i] = kInput[i];
    }
    int status = shapes_invoke();
    for (int i = 0; status == 0 && i < SHAPES_OUTPUT0_SIZE; ++i) {
        status = shapes_output(0)[i] == kExpected[i] ? 0 : 10 + i;
    }
    port_exit(status);
}
"""


@pytest.mark.qemu
def test_platformio_project_pulls_the_model_with_lib_deps(generated, tmp_path):
    """A PlatformIO project (the offline QEMU platform) whose only model is `lib_deps = file://LIB`."""
    from toolchain.firmware import create_project
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.emulators import run_to_exit
    from toolchain.firmware.flash import elf_path, pio_environment
    from toolchain.oracle import run

    board = load_board("qemu_m4")
    lib = tmp_path / "tinyrank_shapes"
    export_platformio(model_library(generated["gen"]), lib, generated["gen"])
    x = np.random.default_rng(9).integers(-128, 128, size=(1, 8, 8, 1)).astype(np.int8)
    expected = run(generated["tflite"], x)[0][0]
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.c").write_text(
        LIB_DEPS_APP.replace("@INPUT@", ", ".join(map(str, x.reshape(-1)))).replace(
            "@EXPECTED@", ", ".join(map(str, expected))
        )
    )
    project = create_project(generated["gen"], board, tmp_path / "project", profile=False, app_dir=app)
    shutil.rmtree(project / "src" / "model")  # the model comes from the library only
    for header in project.glob("include/*.h"):
        if header.name not in ("port.h", "board_config.h"):
            header.unlink()
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text().replace("build_flags =", f"lib_deps = file://{lib}\nbuild_flags =", 1))
    result = subprocess.run(
        [sys.executable, "-m", "platformio", "run", "-d", str(project), "-e", board.id],
        capture_output=True,
        text=True,
        env=pio_environment(project, board),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "tinyrank_shapes" in result.stdout
    status, output = run_to_exit(board, elf_path(project, board), timeout_s=60)
    assert status == 0, output
