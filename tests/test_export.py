"""`tinyrank export`: the Arduino library zip against the library specification, compiled and linked for
each real board's core against the stand-in Arduino headers; the PlatformIO manifest validated offline; the
CMake snippet used by a host CMake project whose outputs must equal TensorFlow Lite Micro's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli import main as cli_main
from toolchain.errors import TinyrankError
from toolchain.export import export_arduino, export_platformio, model_library
from toolchain.firmware.boards import list_boards

SHIM = Path(__file__).parent / "fixtures" / "arduino_shim"
REAL_BOARDS = [b for b in list_boards() if not b.is_emulated]
LABELS = "circle,square,cross"

# The Arduino library specification (arduino-cli docs/library-specification.md, rev. 2.2) as rules.
REQUIRED_FIELDS = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url")
CATEGORIES = {
    "Display",
    "Communication",
    "Signal Input/Output",
    "Sensors",
    "Device Control",
    "Timing",
    "Data Storage",
    "Data Processing",
    "Other",
}
NAME = re.compile(r"^(([a-zA-Z][a-zA-Z0-9 _.\-]*)|([0-9][a-zA-Z0-9 _.\-]*[a-zA-Z][a-zA-Z0-9 _.\-]*))$")
FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)(\.(0|[1-9]\d*))?(-[0-9A-Za-z.\-]+)?(\+[0-9A-Za-z.\-]+)?$")
KEYWORD_TYPES = {"KEYWORD1", "KEYWORD2", "KEYWORD3", "LITERAL1", "LITERAL2"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """A small CNN (conv, depthwise, pointwise, pooling, dense, softmax) generated with prefix 'shapes'."""
    import keras

    from toolchain.codegen import generate
    from toolchain.convert import convert_model
    from toolchain.data import save_dataset

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            keras.layers.Conv2D(6, 1, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8, 8, 1)).astype("float32")
    root = tmp_path_factory.mktemp("export")
    (root / "model.tflite").write_bytes(convert_model(model, x, samples=32))
    generate(root / "model.tflite", root / "gen", prefix="shapes", tflm_arena=False)
    data = save_dataset(
        root / "data.npz", x_train=x, y_train=rng.integers(0, 3, 40), x_test=x[:8], y_test=np.arange(8) % 3
    )
    return {"gen": root / "gen", "tflite": root / "model.tflite", "data": data, "root": root}


@pytest.fixture(scope="module")
def arduino_zip(generated, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "shapes.zip"
    lib = model_library(generated["gen"], data=generated["data"], sample=2, labels=LABELS)
    export_arduino(lib, out)
    return out


def _properties(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"library.properties line without '=': {line!r}"
            fields[key.strip()] = value.strip()
    return fields


def specification_problems(zip_path: Path) -> list[str]:
    """Everything in the zip that breaks the Arduino library specification (1.5 format, recursive layout)."""
    problems = []
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        roots = {n.split("/")[0] for n in names}
        if len(roots) != 1:
            return [f"the zip must hold one library folder, found {sorted(roots)}"]
        root = roots.pop()
        files = {n[len(root) + 1 :]: archive.read(n) for n in names}
    if not FOLDER.match(root):
        problems.append(f"root folder name {root!r}")
    if "library.properties" not in files:
        return [*problems, "no library.properties in the library root"]
    props = _properties(files["library.properties"].decode("utf-8"))
    problems += [f"library.properties: missing {key}" for key in REQUIRED_FIELDS if not props.get(key)]
    name = props.get("name", "")
    if not NAME.match(name) or len(name) > 63 or name.lower().startswith("arduino"):
        problems.append(f"name {name!r}")
    if not SEMVER.match(props.get("version", "")):
        problems.append(f"version {props.get('version')!r}")
    if props.get("category") not in CATEGORIES:
        problems.append(f"category {props.get('category')!r}")
    if not re.match(r"^https?://[^\s]+$", props.get("url", "")):
        problems.append(f"url {props.get('url')!r}")
    architectures = [a.strip() for a in props.get("architectures", "").split(",") if a.strip()]
    if not {"mbed", "mbed_nano"} <= set(architectures):
        problems.append(f"architectures {architectures}")
    for header in props.get("includes", "").split(","):
        if header.strip() and f"src/{header.strip()}" not in files:
            problems.append(f"includes names {header.strip()}, which is not in src/")
    # Recursive layout: sources only under src/ (the root and utility/ are not compiled then).
    for path in files:
        top = path.split("/")[0]
        if Path(path).suffix in {".c", ".cpp", ".h", ".S"} and top not in ("src", "examples"):
            problems.append(f"source file outside src/: {path}")
        if top == "utility":
            problems.append("utility/ belongs to the flat layout")
    if not any(p.startswith("src/") for p in files):
        problems.append("no src/ folder")
    # Examples: examples/<sketch>/<sketch>.ino (the sketch specification).
    sketches = {p.split("/")[1] for p in files if p.startswith("examples/")}
    if not sketches:
        problems.append("no example sketch")
    for sketch in sketches:
        if not FOLDER.match(sketch) or f"examples/{sketch}/{sketch}.ino" not in files:
            problems.append(f"example {sketch} has no {sketch}.ino")
    for line in files.get("keywords.txt", b"").decode().splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in KEYWORD_TYPES:
                problems.append(f"keywords.txt line {line!r}")
    return problems


def test_arduino_zip_follows_the_library_specification(arduino_zip):
    assert specification_problems(arduino_zip) == []
    with zipfile.ZipFile(arduino_zip) as archive:
        names = set(archive.namelist())
        props = _properties(archive.read("tinyrank_shapes/library.properties").decode())
        readme = archive.read("tinyrank_shapes/README.md").decode()
        sample = archive.read("tinyrank_shapes/examples/tinyrank_shapes_demo/sample.h").decode()
    assert props["name"] == "tinyrank_shapes" and props["includes"] == "tinyrank_shapes.h"
    assert {
        "tinyrank_shapes/src/tinyrank_shapes/model.c",
        "tinyrank_shapes/src/tinyrank_shapes/tr_conv.c",
    } <= names
    # Only the public header at the top of src/: the IDE's "Include Library" adds every header there.
    assert [n for n in names if re.fullmatch(r"tinyrank_shapes/src/[^/]+\.h", n)] == [
        "tinyrank_shapes/src/tinyrank_shapes.h"
    ]
    api = readme.split("```c")[1].split("```")[0].strip().splitlines()
    assert len(api) == 5 and "shapes_invoke" in readme
    assert "Not tried" in readme and '"circle"' in sample and "kSampleLabel = 2;" in sample


def test_specification_checker_catches_a_broken_library(arduino_zip, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(arduino_zip) as src, zipfile.ZipFile(broken, "w") as dst:
        for entry in src.namelist():
            data = src.read(entry)
            if entry.endswith("library.properties"):
                data = data.replace(b"category=Data Processing", b"category=Machine Learning")
            if entry.endswith(".ino"):
                entry = entry.replace("_demo.ino", "_main.ino")
            dst.writestr(entry, data)
    problems = specification_problems(broken)
    assert any("category" in p for p in problems) and any(".ino" in p for p in problems)


def test_same_model_gives_the_same_zip_bytes(generated, arduino_zip, tmp_path):
    again = tmp_path / "again.zip"
    export_arduino(model_library(generated["gen"], data=generated["data"], sample=2, labels=LABELS), again)
    assert again.read_bytes() == arduino_zip.read_bytes()


def _compile(compiler: str, flags: list[str], source: Path, out: Path, *includes: Path) -> Path:
    result = subprocess.run(
        [
            compiler,
            *flags,
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            *(f"-I{d}" for d in includes),
            "-c",
            str(source),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{source.name}: {result.stderr}"
    return out


@pytest.mark.parametrize("board", REAL_BOARDS, ids=lambda b: b.id)
def test_library_and_example_compile_and_link_for_each_core(arduino_zip, board, tmp_path):
    """What the Arduino builder does: compile src/ recursively as C, the sketch as C++ after Arduino.h."""
    with zipfile.ZipFile(arduino_zip) as archive:
        archive.extractall(tmp_path)
    lib = tmp_path / "tinyrank_shapes"
    sketch_dir = lib / "examples" / "tinyrank_shapes_demo"
    cpu = board.compile_flags()
    objects = [
        _compile("arm-none-eabi-gcc", [*cpu, "-std=gnu11"], c, tmp_path / f"{c.stem}.o", lib / "src")
        for c in sorted((lib / "src").rglob("*.c"))
    ]
    sketch_cpp = tmp_path / "sketch.cpp"
    sketch_cpp.write_text(
        '#include <Arduino.h>\n#line 1 "tinyrank_shapes_demo.ino"\n'
        + (sketch_dir / "tinyrank_shapes_demo.ino").read_text()
    )
    cxx = [*cpu, "-std=gnu++17", "-fno-exceptions", "-fno-rtti"]
    objects.append(
        _compile("arm-none-eabi-g++", cxx, sketch_cpp, tmp_path / "sketch.o", SHIM, lib / "src", sketch_dir)
    )
    objects.append(_compile("arm-none-eabi-g++", cxx, SHIM / "arduino_stubs.cpp", tmp_path / "stubs.o", SHIM))
    elf = tmp_path / "sketch.elf"
    link = subprocess.run(
        ["arm-none-eabi-gcc", *cpu, "-specs=nosys.specs", *map(str, objects), "-o", str(elf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert link.returncode == 0, link.stderr
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "-C", str(elf)], capture_output=True, text=True, timeout=30
    ).stdout
    for name in (
        "shapes_invoke",
        "shapes_input",
        "shapes_output",
        "setup()",
        "loop()",
        "sbrk",
        "tr_conv_int8",
    ):
        assert re.search(rf" [TW] {re.escape(name)}$", symbols, re.MULTILINE), name


def test_example_sketch_prints_class_time_arena_ram_and_repeats(generated, arduino_zip, tmp_path):
    """The sketch run on the host (tests/fixtures/arduino_shim/arduino_host.cpp simulates the clock,
    a button on pin 2 at 1500 ms and a character on Serial at 2500 ms): it prints the class TFLite
    Micro predicts for the stored sample, the micros() difference, the arena and free RAM, and runs
    at start, on the button, on the character and 5 s after the last run."""
    from toolchain.oracle import run

    with zipfile.ZipFile(arduino_zip) as archive:
        archive.extractall(tmp_path)
    lib = tmp_path / "tinyrank_shapes"
    sketch_dir = lib / "examples" / "tinyrank_shapes_demo"
    sketch_cpp = tmp_path / "sketch.cpp"
    sketch_cpp.write_text("#include <Arduino.h>\n" + (sketch_dir / "tinyrank_shapes_demo.ino").read_text())
    objects = [
        _compile("gcc", ["-std=gnu11"], c, tmp_path / f"{c.stem}.o", lib / "src")
        for c in sorted((lib / "src").rglob("*.c"))
    ]
    cxx = ["-std=gnu++17", "-DBUTTON_PIN=2"]
    objects.append(_compile("g++", cxx, sketch_cpp, tmp_path / "sketch.o", SHIM, lib / "src", sketch_dir))
    objects.append(_compile("g++", cxx, SHIM / "arduino_host.cpp", tmp_path / "host.o", SHIM))
    program = tmp_path / "sketch"
    subprocess.run(["g++", *map(str, objects), "-o", str(program)], check=True, timeout=120)
    out = subprocess.run([str(program)], capture_output=True, text=True, timeout=60, check=True).stdout

    x_test = np.load(generated["data"])["x_test"]
    expected = int(np.argmax(run(generated["tflite"], x_test[2:3])[0][0]))
    label = LABELS.split(",")[expected]
    runs = out.split("setup done\n")[1].split("ran at ")
    assert [int(r.split(" ms")[0]) for r in runs[1:]] == [0, 1500, 2500, 7500]
    info = model_library(generated["gen"]).info
    for text in runs[:-1]:  # each run's output precedes its "ran at" line
        assert f"predicted class: {expected} ({label}), score " in text
        assert "expected class: 2\ntime: 250 us\n" in text
        assert f"arena: {info['arena_bytes']} bytes\n" in text
        assert re.search(r"free RAM: \d+ bytes\n", text), text


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


def test_hostile_labels_are_escaped_in_c(generated):
    from toolchain.export.arduino import arduino_tree

    lib = model_library(generated["gen"], labels='a"b,c\\d,*/x')
    sample = arduino_tree(lib)["examples/tinyrank_shapes_demo/sample.h"].decode()
    assert '"a\\"b"' in sample and '"c\\\\d"' in sample and '"*/x"' in sample
    code = re.sub(r'"(\\.|[^"\\])*"', '""', sample)  # string literals removed: comments must still pair up
    assert code.count("/*") == code.count("*/")


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
