"""Generated model -> PlatformIO project -> firmware ELF, with the board's budget checked first.

Status: the QEMU path works end to end offline: `create_project` + `build` for qemu_m4,
qemu_m3 and qemu_m33 produce an ELF that runs in QEMU (tests/test_build_qemu.py runs a
port-check app over the UART in each); budgets are checked before building and again
by the linker script; real-board projects are generated and validated offline, and the
model and app sources are cross-compiled for each real board's core.

A project (`<model_dir>/firmware_<board>/`) holds:
  platformio.ini            one environment named after the board
  include/                  model.h and the other model headers, port.h, board_config.h
  src/model/                the generated model and kernel sources
  src/bench/                the benchmark application (firmware_templates/runtime/bench/)
  src/port/                 the board family's port (start-up, UART, counter)
  linker.ld, boards/*.json  QEMU boards only: the linker script (budget ASSERTs) and the
                            PlatformIO board manifest for the local tinyrank-qemu platform

QEMU boards build with the development platform and SCons package kept in this repo
(platformio/), with PLATFORMIO_CORE_DIR inside the project, so nothing is downloaded.
Real boards build with PlatformIO's own platforms, in the user's usual PlatformIO home.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from toolchain.boards import Board, list_boards, load_board
from toolchain.errors import BudgetError, BuildError, DeviceError, TinyrankError
from toolchain.fileio import atomic_write_bytes, atomic_write_text

REPO_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO_DIR / "firmware_templates"
PORTS_DIR = TEMPLATES_DIR / "runtime" / "ports"
BENCH_APP_DIR = TEMPLATES_DIR / "runtime" / "bench"
PLATFORM_DIR = REPO_DIR / "platformio" / "platform-tinyrank-qemu"
SCONS_DIR = REPO_DIR / "platformio" / "tool-scons"

ARM_PREFIX = os.environ.get("TINYRANK_ARM_PREFIX", "arm-none-eabi-")
PIO_TIMEOUT_S = 900.0  # a real board's first build downloads its toolchain and framework
UPLOAD_TIMEOUT_S = 300.0
COMPILE_TIMEOUT_S = 300.0
HEAP_BYTES = 0  # the app and kernels do not allocate; newlib's sbrk gets what is left
OPTIMIZATION = "-O2"
WARNING_FLAGS = ["-Wall", "-Wextra"]
C_SUFFIXES = {".c", ".cpp", ".cc", ".S", ".s"}
HEADER_SUFFIXES = {".h", ".hpp"}


# ---------------------------------------------------------------- the generated model


def read_model_info(model_dir: str | os.PathLike) -> dict:
    """`model_info.json` of a codegen output folder, with the keys the build relies on checked."""
    path = Path(model_dir) / "model_info.json"
    if not path.is_file():
        raise TinyrankError(f"{path}: no such file; is {model_dir} the output folder of `tinyrank codegen`?")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TinyrankError(f"{path}: cannot read it as JSON ({exc})") from exc
    for key in ("arena_bytes", "weights_bytes", "ops"):
        if key not in info:
            raise TinyrankError(f"{path}: missing key '{key}'")
    return info


def _model_files(model_dir: Path) -> tuple[list[Path], list[Path]]:
    """(sources, headers) of the generated model folder, skipping any firmware projects in it."""
    sources = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in C_SUFFIXES)
    headers = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in HEADER_SUFFIXES)
    if not any(p.name == "model.h" for p in headers):
        raise TinyrankError(f"{model_dir}: no model.h; is it the output folder of `tinyrank codegen`?")
    return sources, headers


# ---------------------------------------------------------------- project generation


def _jinja():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES_DIR, PORTS_DIR]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_board_config(board: Board) -> str:
    return _jinja().get_template("board_config.h.j2").render(board=board)


def render_bench_model_header(info: dict) -> str:
    """`bench_model.h`: maps a model generated with another `--prefix` onto the app's `tr_` names."""
    prefix = info.get("prefix", "tr")
    return _jinja().get_template("bench_model.h.j2").render(
        prefix=prefix, PREFIX=prefix.upper(),
        num_inputs=len(info.get("inputs", [])), num_outputs=len(info.get("outputs", [])))


def build_flags(board: Board, *, profile: bool = True, extra: Sequence[str] = ()) -> list[str]:
    """Flags the project adds to the platform's (CPU, warnings, include/ come from the platform)."""
    flags = [OPTIMIZATION]
    if profile:
        flags.append("-DTR_PROFILE")
    return flags + list(extra)


def render_platformio_ini(board: Board, flags: Sequence[str]) -> str:
    return _jinja().get_template("platformio.ini.j2").render(
        board=board, build_flags=flags, platform_dir=PLATFORM_DIR, scons_dir=SCONS_DIR
    )


def render_linker_script(board: Board) -> str:
    return _jinja().get_template("qemu_mps2/linker.ld.j2").render(
        board=board, stack_bytes=board.stack_bytes, heap_bytes=HEAP_BYTES
    )


def qemu_board_manifest(board: Board) -> dict:
    """The PlatformIO board manifest (`boards/<id>.json`) the tinyrank-qemu platform reads."""
    return {
        "name": board.name,
        "vendor": "QEMU",
        "url": "https://www.qemu.org/docs/master/system/arm/mps2.html",
        "frameworks": [],
        "build": {
            "cpu": board.qemu_cpu,
            "mcu": board.qemu_machine,
            "f_cpu": f"{board.clock_hz}L",
            "cpu_flags": " ".join(board.compile_flags()),
            "qemu_machine": board.qemu_machine,
            "qemu_cpu": board.qemu_cpu,
            "ldscript": "linker.ld",
        },
        "upload": {
            "maximum_size": board.flash_bytes,
            "maximum_ram_size": board.ram_bytes,
            "protocol": board.upload_protocol,
        },
    }


def _copy_tree_files(files: Sequence[Path], dest: Path) -> None:
    for path in files:
        atomic_write_bytes(dest / path.name, path.read_bytes())


PROJECT_MARK = "generated by `tinyrank build`"


def _check_project_folder(project: Path) -> None:
    """Refuse to clear src/ and include/ of a folder tinyrank did not make (a user's own project)."""
    if not project.exists() or not any(project.iterdir()):
        return
    ini = project / "platformio.ini"
    if not project.is_dir() or not ini.is_file() or PROJECT_MARK not in ini.read_text(errors="replace")[:400]:
        raise TinyrankError(f"project folder {project} exists and was not written by `tinyrank build`; "
                            f"choose an empty or new --out so nothing of yours is overwritten")


def create_project(model_dir: str | os.PathLike, board: Board | str, out_dir: str | os.PathLike | None = None, *,
                   profile: bool = True, app_dir: str | os.PathLike | None = None,
                   extra_build_flags: Sequence[str] = ()) -> Path:
    """Write the PlatformIO project for `board` and return its folder (default `model_dir/firmware_<board>`).

    `app_dir` replaces the benchmark application (tests use a small port-check app).
    The project's `src/` and `include/` are rewritten from scratch each time, so a file
    dropped from the model does not linger; the `.pio` build cache is kept.
    """
    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    sources, headers = _model_files(model_dir)
    project = Path(out_dir) if out_dir is not None else model_dir / f"firmware_{board.id}"
    if project.resolve() == model_dir.resolve():
        raise TinyrankError(f"project folder {project} is the model folder; choose another --out")
    _check_project_folder(project)
    app_dir = Path(app_dir) if app_dir is not None else BENCH_APP_DIR
    app_files = sorted(p for p in app_dir.glob("*") if p.is_file() and p.suffix in C_SUFFIXES | HEADER_SUFFIXES)
    if not any(p.suffix in C_SUFFIXES for p in app_files):
        raise TinyrankError(f"{app_dir}: no application sources (.c); the benchmark app is missing")
    port_dir = PORTS_DIR / board.family
    port_files = sorted(p for p in port_dir.iterdir() if p.is_file() and p.suffix in C_SUFFIXES | HEADER_SUFFIXES)

    for generated in ("src", "include", "boards"):
        shutil.rmtree(project / generated, ignore_errors=True)
    _copy_tree_files(sources, project / "src" / "model")
    _copy_tree_files(headers, project / "include")
    _copy_tree_files([TEMPLATES_DIR / "runtime" / "port.h"], project / "include")
    _copy_tree_files(app_files, project / "src" / "bench")
    _copy_tree_files(port_files, project / "src" / "port")
    atomic_write_text(project / "include" / "board_config.h", render_board_config(board))
    atomic_write_text(project / "include" / "bench_model.h", render_bench_model_header(info))
    flags = build_flags(board, profile=profile, extra=extra_build_flags)
    atomic_write_text(project / "platformio.ini", render_platformio_ini(board, flags))
    if board.is_emulated:
        atomic_write_text(project / "linker.ld", render_linker_script(board))
        manifest = json.dumps(qemu_board_manifest(board), indent=2) + "\n"
        atomic_write_text(project / "boards" / f"{board.pio_board}.json", manifest)
    if board.renode_platform:
        from toolchain.renode import write_renode_script

        write_renode_script(project, board)
    return project


def validate_platformio_ini(project: str | os.PathLike) -> list[str]:
    """Check a project's platformio.ini offline; unknown options count as errors. Returns its envs."""
    from platformio.project.config import ProjectConfig
    from platformio.project.exception import ProjectError

    path = Path(project) / "platformio.ini"
    try:
        config = ProjectConfig(str(path), parse_extra=False)
        config.validate(silent=True)
    except ProjectError as exc:
        raise BuildError(f"{path}: {exc}") from exc
    if config.warnings:
        raise BuildError(f"{path}: {'; '.join(config.warnings)}")
    return config.envs()


# ---------------------------------------------------------------- cross-compilation and sizes


def _run(command: Sequence[str], *, timeout_s: float, what: str, cwd: Path | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a tool with a time limit; on timeout or Ctrl-C stop it and everything it started.

    The command gets its own process group so that a QEMU started by `pio run -t upload`
    is stopped with it instead of being left busy-polling a core.
    """
    try:
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {command[0]} not found; run `make setup`") from exc
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _stop_group(process)
        raise BuildError(f"{what}: no result after {timeout_s:g} s (command: {' '.join(command[:4])} ...)") from exc
    except BaseException:
        _stop_group(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _stop_group(process: subprocess.Popen) -> None:
    """Terminate the process group of `process` (started with start_new_session), then kill what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.communicate(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass


def _first_error_line(output: str) -> str:
    """The line a user needs from a compiler or PlatformIO log: a tinyrank ASSERT, else the first error."""
    lines = output.splitlines()
    for pattern in (r"tinyrank: ", r"\berror\b", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "(no output)"


def cross_compile(model_dir: str | os.PathLike, board: Board | str, *, sources: Sequence[Path] | None = None,
                  app_dir: str | os.PathLike | None = None, werror: bool = True) -> dict:
    """Compile the model's sources (and the app's, if `app_dir`) to objects for the board's core.

    This is what CI can check for real boards without their Arduino frameworks, and what
    the budget uses to measure code size. Returns per-object text/data/bss sizes.
    """
    board = load_board(board)
    model_dir = Path(model_dir)
    model_sources, _headers = _model_files(model_dir)
    files = list(sources) if sources is not None else model_sources
    if app_dir is not None:
        files += sorted(p for p in Path(app_dir).glob("*.c"))
    with tempfile.TemporaryDirectory(prefix="tinyrank-cc-") as tmp:
        tmp_dir = Path(tmp)
        (tmp_dir / "board_config.h").write_text(render_board_config(board), encoding="utf-8")
        (tmp_dir / "bench_model.h").write_text(render_bench_model_header(read_model_info(model_dir)),
                                               encoding="utf-8")
        flags = board.compile_flags() + [OPTIMIZATION, "-std=c11", "-ffunction-sections", "-fdata-sections",
                                         "-DTR_PROFILE", *WARNING_FLAGS, f"-I{tmp_dir}", f"-I{model_dir}",
                                         f"-I{TEMPLATES_DIR / 'runtime'}"]
        if werror:
            flags.append("-Werror")
        objects = []
        for source in files:
            obj = tmp_dir / f"{source.stem}.o"
            result = _run([f"{ARM_PREFIX}gcc", *flags, "-c", str(source), "-o", str(obj)],
                          timeout_s=COMPILE_TIMEOUT_S, what=f"compiling {source.name} for {board.id}")
            if result.returncode != 0 or (werror and result.stderr.strip()):
                raise BuildError(f"compiling {source} for {board.id} ({board.core}): "
                                 f"{_first_error_line(result.stderr)}")
            objects.append(obj)
        sizes = _berkeley_sizes(objects) if objects else {}
    return {"board": board.id, "flags": flags, "objects": sizes}


def _berkeley_sizes(files: Sequence[Path]) -> dict[str, dict[str, int]]:
    """text/data/bss of each file, from `arm-none-eabi-size -B` (text includes read-only data)."""
    result = _run([f"{ARM_PREFIX}size", "-B", *map(str, files)], timeout_s=60, what="measuring sizes")
    if result.returncode != 0:
        raise BuildError(f"{ARM_PREFIX}size failed: {_first_error_line(result.stderr)}")
    sizes = {}
    for line in result.stdout.splitlines()[1:]:
        text, data, bss, _dec, _hex, name = line.split(None, 5)
        sizes[Path(name).name] = {"text": int(text), "data": int(data), "bss": int(bss)}
    return sizes


def elf_sizes(elf: str | os.PathLike) -> dict:
    """Flash (text + data) and static RAM (data + bss) of a linked firmware."""
    (sizes,) = _berkeley_sizes([Path(elf)]).values()
    return {**sizes, "flash_bytes": sizes["text"] + sizes["data"], "static_ram_bytes": sizes["data"] + sizes["bss"]}


# ---------------------------------------------------------------- budget


_C_TYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4,
                 "int64_t": 8}
_WEIGHT_ARRAY = re.compile(r"^const\s+(\w+)\s+(\w+)((?:\[\d+\])+)", re.MULTILINE)


def _largest_weights(model_dir: Path) -> list[dict]:
    """Constant arrays defined in model_weights.c with their sizes, largest first."""
    path = model_dir / "model_weights.c"
    if not path.is_file():
        return []
    entries = []
    for c_type, name, dims in _WEIGHT_ARRAY.findall(path.read_text(encoding="utf-8", errors="replace")):
        shape = [int(d) for d in re.findall(r"\d+", dims)]
        count = 1
        for d in shape:
            count *= d
        entries.append({"name": name, "shape": shape, "bytes": count * _C_TYPE_BYTES.get(c_type, 4)})
    return sorted(entries, key=lambda e: -e["bytes"])


def _largest_activations(model_dir: Path, info: dict) -> list[dict]:
    """Non-constant tensors of the .tflite (next to the model folder), largest first.

    Without the .tflite, the model's inputs and outputs from model_info.json stand in.
    """
    name = info.get("tflite", "model.tflite")
    candidates = [model_dir / name, model_dir.parent / name]
    tflite_path = next((p for p in candidates if p.is_file()), None)
    if tflite_path is None:
        edges = info.get("inputs", []) + info.get("outputs", [])
        return sorted(({"name": e.get("name", "?"), "shape": e.get("shape", []), "bytes": e.get("size", 0)}
                       for e in edges), key=lambda e: -e["bytes"])
    from tflite.Model import Model

    itemsize = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}  # TensorType -> bytes
    model = Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    entries = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            if buffer is not None and buffer.DataLength() > 0:
                continue  # a constant: counted with the weights
            shape = [int(tensor.Shape(i)) for i in range(tensor.ShapeLength())]
            count = 1
            for d in shape:
                count *= max(d, 1)
            entries.append({"name": tensor.Name().decode("utf-8", "replace"), "shape": shape,
                            "bytes": count * itemsize.get(tensor.Type(), 4)})
    return sorted(entries, key=lambda e: -e["bytes"])


def _describe(entries: list[dict], count: int = 3) -> str:
    return ", ".join(f"'{e['name']}' {e['shape']} {e['bytes']} B" for e in entries[:count]) or "n/a"


def predict_usage(model_dir: str | os.PathLike, board: Board | str) -> dict:
    """Predicted flash and RAM of the firmware, by part, before PlatformIO runs.

    Code size is measured, not guessed: the model's sources other than the weights are
    compiled for the board's core; the weights are `weights_bytes` of model_info.json.
    """
    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    sources, _ = _model_files(model_dir)
    code_sources = [p for p in sources if p.name != "model_weights.c"]
    objects = cross_compile(model_dir, board, sources=code_sources, werror=False)["objects"]
    code_bytes = sum(o["text"] + o["data"] for o in objects.values())
    model_static_ram = sum(o["data"] + o["bss"] for o in objects.values())
    arena_bytes = int(info["arena_bytes"])
    flash = {"weights": int(info["weights_bytes"]), "model_code": code_bytes, "runtime": board.runtime_flash_bytes}
    # The arena is a static array of model.c when codegen puts it there; count it once.
    ram = {"arena_and_model": max(arena_bytes, model_static_ram), "stack": board.stack_bytes,
           "runtime": board.runtime_ram_bytes, "heap": HEAP_BYTES}
    return {
        "board": board.id,
        "flash": flash, "flash_bytes": sum(flash.values()), "flash_limit": board.flash_bytes,
        "ram": ram, "ram_bytes": sum(ram.values()), "ram_limit": board.ram_bytes,
        "static_ram_bytes": ram["arena_and_model"] + ram["runtime"],
    }


def check_budget(model_dir: str | os.PathLike, board: Board | str) -> dict:
    """The predicted usage (see `predict_usage`); raises BudgetError if it cannot fit the board."""
    board = load_board(board)
    usage = predict_usage(model_dir, board)
    over = [kind for kind in ("flash", "ram") if usage[f"{kind}_bytes"] > usage[f"{kind}_limit"]]
    if not over:
        return usage
    info = read_model_info(model_dir)
    weights, activations = _largest_weights(Path(model_dir)), _largest_activations(Path(model_dir), info)
    totals = "; ".join(
        f"{kind}: needs {usage[f'{kind}_bytes']} B ("
        + ", ".join(f"{part} {size}" for part, size in usage[kind].items())
        + f") > {usage[f'{kind}_limit']} B" for kind in over
    )
    factor = max(usage[f"{k}_bytes"] / usage[f"{k}_limit"] for k in over)
    raise BudgetError(
        f"model {model_dir} does not fit board '{board.id}' ({board.name}): {totals}; "
        f"largest weights: {_describe(weights)}; largest tensors: {_describe(activations)}; "
        f"shrink it about {factor:.1f}x, e.g. `tinyrank compress MODEL.keras --board {board.id}`"
    )


# ---------------------------------------------------------------- PlatformIO


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
    return _run(command, timeout_s=timeout_s, what=f"pio run for {board.id}", env=pio_environment(project, board))


def elf_path(project: str | os.PathLike, board: Board | str) -> Path:
    return Path(project) / ".pio" / "build" / load_board(board).id / "firmware.elf"


def build(model_dir: str | os.PathLike, board: Board | str, *, profile: bool = True,
          out_dir: str | os.PathLike | None = None, app_dir: str | os.PathLike | None = None,
          extra_build_flags: Sequence[str] = (), check: bool = True, timeout_s: float = PIO_TIMEOUT_S) -> dict:
    """Check the budget, write the project, run `pio run`, and compare the ELF with the prediction.

    `check=False` skips the up-front budget check (the linker script still enforces it on
    QEMU boards); tests use it to see the link-time check fire.
    """
    board = load_board(board)
    prediction = check_budget(model_dir, board) if check else predict_usage(model_dir, board)
    project = create_project(model_dir, board, out_dir, profile=profile, app_dir=app_dir,
                             extra_build_flags=extra_build_flags)
    started = time.monotonic()
    result = _pio(project, board, timeout_s=timeout_s)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        log = result.stdout + result.stderr
        atomic_write_text(project / "build.log", log)
        raise BuildError(f"pio run -e {board.id} failed in {project}: {_first_error_line(log)} "
                         f"(full log: {project / 'build.log'})")
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
        "static_ram_prediction_error": _relative_error(prediction["static_ram_bytes"], actual["static_ram_bytes"]),
    }


def _relative_error(predicted: int, actual: int) -> float:
    """(predicted - actual) / actual: positive when the prediction was cautious."""
    return round((predicted - actual) / actual, 4) if actual else 0.0


def flash(model_dir: str | os.PathLike, board: Board | str, port: str | None = None, *,
          out_dir: str | os.PathLike | None = None, timeout_s: float = UPLOAD_TIMEOUT_S) -> dict:
    """Upload the built firmware (`pio run -t upload`); on a QEMU board this runs it in QEMU.

    In QEMU the UART is this terminal and the call returns when the firmware exits
    (semihosting) or after `timeout_s`.
    """
    board = load_board(board)
    project = Path(out_dir) if out_dir is not None else Path(model_dir) / f"firmware_{board.id}"
    if not (project / "platformio.ini").is_file():
        raise TinyrankError(f"{project}: no platformio.ini; run `tinyrank build {model_dir} --board {board.id}` first")
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
        raise BuildError(f"upload to {board.id} failed: {_first_error_line(log)}")
    return {"board": board.id, "project": str(project), "exit_status": result.returncode, "output": log[-4000:]}


# ---------------------------------------------------------------- CLI


def register(subparsers, common) -> None:
    import argparse

    build_parser = subparsers.add_parser(
        "build", parents=[common], help="turn a generated model into a PlatformIO project and build it",
        epilog="example: tinyrank build gen/ --board qemu_m4", formatter_class=argparse.RawDescriptionHelpFormatter)
    build_parser.add_argument("model_dir", help="output folder of `tinyrank codegen` (holds model_info.json)")
    build_parser.add_argument("--board", required=True, help="board id (see `tinyrank boards`)")
    build_parser.add_argument("--out", help="project folder (default MODEL_DIR/firmware_BOARD)")
    build_parser.add_argument("--no-profile", action="store_true", help="build without per-op timing")
    build_parser.add_argument("--project-only", action="store_true",
                              help="write and validate the project but do not run PlatformIO")
    build_parser.set_defaults(func=run_build)

    flash_parser = subparsers.add_parser(
        "flash", parents=[common], help="upload the built firmware to the board (QEMU boards: run it)",
        epilog="example: tinyrank flash gen/ --board nano33 --port /dev/ttyACM0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    flash_parser.add_argument("model_dir", help="the folder given to `tinyrank build`")
    flash_parser.add_argument("--board", required=True)
    flash_parser.add_argument("--port", help="serial port of the board (default: PlatformIO finds it)")
    flash_parser.add_argument("--out", help="project folder if not MODEL_DIR/firmware_BOARD")
    flash_parser.set_defaults(func=run_flash)

    boards_parser = subparsers.add_parser(
        "boards", parents=[common], help="list the boards tinyrank knows",
        epilog="example: tinyrank boards", formatter_class=argparse.RawDescriptionHelpFormatter)
    boards_parser.set_defaults(func=run_boards)


def run_build(args) -> dict:
    from rich.console import Console
    from rich.table import Table

    board = load_board(args.board)
    if args.project_only:
        check_budget(args.model_dir, board)
        project = create_project(args.model_dir, board, args.out, profile=not args.no_profile)
        validate_platformio_ini(project)
        Console().print(f"project written to {project}")
        return {"board": board.id, "project": str(project)}
    report = build(args.model_dir, board, profile=not args.no_profile, out_dir=args.out)
    table = Table(title=f"firmware for {board.name}")
    for column in ("", "predicted", "actual (ELF)", "limit"):
        table.add_column(column, justify="right")
    predicted = report["predicted"]
    table.add_row("flash", f"{predicted['flash_bytes']:,}", f"{report['flash_bytes']:,}", f"{board.flash_bytes:,}")
    table.add_row("static RAM", f"{predicted['static_ram_bytes']:,}", f"{report['static_ram_bytes']:,}",
                  f"{board.ram_bytes:,}")
    Console().print(table)
    Console().print(f"ELF: {report['elf']}")
    return report


def run_flash(args) -> dict:
    report = flash(args.model_dir, args.board, args.port, out_dir=args.out)
    print(report["output"])
    return report


def run_boards(args) -> dict:
    from rich.console import Console
    from rich.table import Table

    boards = list_boards()
    table = Table(title="boards")
    for column in ("id", "name", "MCU", "core", "clock", "flash", "RAM", "DSP", "counter", "runs on"):
        table.add_column(column)
    for b in boards:
        table.add_row(b.id, b.name, b.mcu, b.core, f"{b.clock_hz / 1e6:g} MHz", f"{b.flash_bytes // 1024} KB",
                      f"{b.ram_bytes // 1024} KB", "yes" if b.has_dsp else "no", b.counter,
                      f"QEMU {b.qemu_machine}" if b.is_emulated else f"PlatformIO {b.pio_platform}/{b.pio_board}")
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console.width = 160
    console.print(table)
    return {"boards": [{"id": b.id, "name": b.name, "core": b.core, "clock_hz": b.clock_hz,
                        "flash_bytes": b.flash_bytes, "ram_bytes": b.ram_bytes, "emulated": b.is_emulated}
                       for b in boards]}
