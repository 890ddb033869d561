"""`tinyrank export --arduino`: the library zip against the Arduino library specification, compiled and
linked for each real board's core against the stand-in Arduino headers, and its example sketch run on the
host with a simulated clock, button and Serial."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.export_model import LABELS, generate_shapes_model
from toolchain.export import export_arduino, model_library
from toolchain.firmware.boards import list_boards

SHIM = Path(__file__).parent / "fixtures" / "arduino_shim"
REAL_BOARDS = [b for b in list_boards() if not b.is_emulated]

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
    return generate_shapes_model(tmp_path_factory.mktemp("export"))


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
        "tinyrank_shapes/src/tinyrank_shapes/tr_conv_first.c",
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
        "tr_conv_first_int8",
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


def test_hostile_labels_are_escaped_in_c(generated):
    from toolchain.export.arduino import arduino_tree

    lib = model_library(generated["gen"], labels='a"b,c\\d,*/x')
    sample = arduino_tree(lib)["examples/tinyrank_shapes_demo/sample.h"].decode()
    assert '"a\\"b"' in sample and '"c\\\\d"' in sample and '"*/x"' in sample
    code = re.sub(r'"(\\.|[^"\\])*"', '""', sample)  # string literals removed: comments must still pair up
    assert code.count("/*") == code.count("*/")
