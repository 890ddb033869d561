"""Generated model -> PlatformIO project: the files a board's firmware is built from.

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
import shutil
from collections.abc import Sequence
from pathlib import Path

from toolchain.errors import BuildError, TinyrankError
from toolchain.fileio import atomic_write_bytes, atomic_write_text
from toolchain.firmware.boards import CORE_CPU, Board, load_board

REPO_DIR = Path(__file__).resolve().parents[2]
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
    return (
        _jinja()
        .get_template("bench_model.h.j2")
        .render(
            prefix=prefix,
            PREFIX=prefix.upper(),
            num_inputs=len(info.get("inputs", [])),
            num_outputs=len(info.get("outputs", [])),
        )
    )


def build_flags(board: Board, *, profile: bool = True, extra: Sequence[str] = ()) -> list[str]:
    """Flags the project adds to the platform's (CPU, warnings, include/ come from the platform)."""
    flags = [OPTIMIZATION]
    if profile:
        flags.append("-DTR_PROFILE")
    return flags + list(extra)


def render_platformio_ini(board: Board, flags: Sequence[str]) -> str:
    return (
        _jinja()
        .get_template("platformio.ini.j2")
        .render(board=board, build_flags=flags, platform_dir=PLATFORM_DIR, scons_dir=SCONS_DIR)
    )


def render_linker_script(board: Board) -> str:
    return (
        _jinja()
        .get_template("qemu_mps2/linker.ld.j2")
        .render(board=board, stack_bytes=board.stack_bytes, heap_bytes=HEAP_BYTES)
    )


def qemu_board_manifest(board: Board) -> dict:
    """The PlatformIO board manifest (`boards/<id>.json`) the tinyrank-qemu platform reads."""
    return {
        "name": board.name,
        "vendor": "QEMU",
        "url": "https://www.qemu.org/docs/master/system/arm/mps2.html",
        "frameworks": [],
        "build": {
            "cpu": CORE_CPU[board.core],
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
        raise TinyrankError(
            f"project folder {project} exists and was not written by `tinyrank build`; "
            f"choose an empty or new --out so nothing of yours is overwritten"
        )


def create_project(
    model_dir: str | os.PathLike,
    board: Board | str,
    out_dir: str | os.PathLike | None = None,
    *,
    profile: bool = True,
    app_dir: str | os.PathLike | None = None,
    extra_build_flags: Sequence[str] = (),
) -> Path:
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
    app_files = sorted(
        p for p in app_dir.glob("*") if p.is_file() and p.suffix in C_SUFFIXES | HEADER_SUFFIXES
    )
    if not any(p.suffix in C_SUFFIXES for p in app_files):
        raise TinyrankError(f"{app_dir}: no application sources (.c); the benchmark app is missing")
    port_dir = PORTS_DIR / board.family
    port_files = sorted(
        p for p in port_dir.iterdir() if p.is_file() and p.suffix in C_SUFFIXES | HEADER_SUFFIXES
    )

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
        from toolchain.firmware.emulators import write_renode_script

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
