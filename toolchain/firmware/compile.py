"""Cross-compiling the generated model for a board's core with arm-none-eabi-gcc, and reading sizes.

This is what CI can check for real boards without their Arduino frameworks, and what the
budget compiles and links to measure what the firmware will hold.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from toolchain.errors import BuildError
from toolchain.firmware.boards import Board, load_board
from toolchain.firmware.project import (
    ARM_PREFIX,
    COMPILE_TIMEOUT_S,
    OPTIMIZATION,
    TEMPLATES_DIR,
    WARNING_FLAGS,
    _model_files,
    read_model_info,
    render_bench_model_header,
    render_board_config,
)
from toolchain.processes import first_error_line, run_tool


def cross_compile(
    model_dir: str | os.PathLike,
    board: Board | str,
    *,
    sources: Sequence[Path] | None = None,
    app_dir: str | os.PathLike | None = None,
    werror: bool = True,
) -> dict:
    """Compile the model's sources (and the app's, if `app_dir`) to objects for the board's core.

    This is what CI can check for real boards without their Arduino frameworks. Returns
    per-object text/data/bss sizes.
    """
    board = load_board(board)
    model_sources, _headers = _model_files(Path(model_dir))
    files = list(sources) if sources is not None else model_sources
    if app_dir is not None:
        files += sorted(p for p in Path(app_dir).glob("*.c"))
    with tempfile.TemporaryDirectory(prefix="tinyrank-cc-") as tmp:
        objects, flags = compile_objects(model_dir, board, files, Path(tmp), werror=werror)
        sizes = _berkeley_sizes(objects) if objects else {}
    return {"board": board.id, "flags": flags, "objects": sizes}


def compile_objects(
    model_dir: str | os.PathLike,
    board: Board,
    files: Sequence[Path],
    out_dir: Path,
    *,
    werror: bool = True,
    include_dirs: Sequence[Path] = (),
) -> tuple[list[Path], list[str]]:
    """Compile `files` into `out_dir` with the flags of the board's firmware; returns (objects, flags).

    The include path holds the model folder, the runtime (port.h), `include_dirs`, and the
    `board_config.h` and `bench_model.h` that `tinyrank build` writes into a project.
    """
    model_dir = Path(model_dir)
    (out_dir / "board_config.h").write_text(render_board_config(board), encoding="utf-8")
    (out_dir / "bench_model.h").write_text(
        render_bench_model_header(read_model_info(model_dir)), encoding="utf-8"
    )
    flags = board.compile_flags() + [
        OPTIMIZATION,
        "-std=c11",
        "-ffunction-sections",
        "-fdata-sections",
        "-DTR_PROFILE",
        *WARNING_FLAGS,
        f"-I{out_dir}",
        f"-I{model_dir}",
        f"-I{TEMPLATES_DIR / 'runtime'}",
        *(f"-I{d}" for d in include_dirs),
    ]
    if werror:
        flags.append("-Werror")
    objects = []
    for source in files:
        obj = out_dir / f"{source.stem}.o"
        result = run_tool(
            [f"{ARM_PREFIX}gcc", *flags, "-c", str(source), "-o", str(obj)],
            timeout_s=COMPILE_TIMEOUT_S,
            what=f"compiling {source.name} for {board.id}",
        )
        if result.returncode != 0 or (werror and result.stderr.strip()):
            raise BuildError(
                f"compiling {source} for {board.id} ({board.core}): {first_error_line(result.stderr)}"
            )
        objects.append(obj)
    return objects, flags


def _berkeley_sizes(files: Sequence[Path]) -> dict[str, dict[str, int]]:
    """text/data/bss of each file, from `arm-none-eabi-size -B` (text includes read-only data)."""
    result = run_tool([f"{ARM_PREFIX}size", "-B", *map(str, files)], timeout_s=60, what="measuring sizes")
    if result.returncode != 0:
        raise BuildError(f"{ARM_PREFIX}size failed: {first_error_line(result.stderr)}")
    sizes = {}
    for line in result.stdout.splitlines()[1:]:
        text, data, bss, _dec, _hex, name = line.split(None, 5)
        sizes[Path(name).name] = {"text": int(text), "data": int(data), "bss": int(bss)}
    return sizes


def elf_sizes(elf: str | os.PathLike) -> dict:
    """Flash (text + data) and static RAM (data + bss) of a linked firmware."""
    (sizes,) = _berkeley_sizes([Path(elf)]).values()
    return {
        **sizes,
        "flash_bytes": sizes["text"] + sizes["data"],
        "static_ram_bytes": sizes["data"] + sizes["bss"],
    }
