"""The one budget model: predicted flash and RAM of a board's firmware, and the check against its limits.

`build`, `compress --board` and `deploy` all ask this module, so the figures a user sees
before building are the ones the build checks.

The prediction counts what the firmware links, by linking it: the model's code and
kernels, the benchmark app (with its buffers, sized by the model's inputs and outputs),
the board's port and the C library are compiled for the board's core and linked with
`--gc-sections`, as PlatformIO will. Only the weights are left out of that link (their
sizes are in model_info.json's `constants`, so the large `model_weights.c` is not
compiled twice) and the arena is taken from model_info.json. What tinyrank cannot link
itself, a real board's framework, bootloader and USB stack, is the board file's
`runtime_flash_bytes` / `runtime_ram_bytes` (0 on QEMU boards).

`compress --board` generates the original model's C once and asks `predict_usage` about it
(toolchain/compress/costs.py), so compress and build count the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import BudgetError, BuildError, TinyrankError
from toolchain.firmware.boards import Board, load_board
from toolchain.firmware.compile import compile_objects, elf_sizes
from toolchain.firmware.project import (
    ARM_PREFIX,
    BENCH_APP_DIR,
    HEAP_BYTES,
    PORTS_DIR,
    TEMPLATES_DIR,
    _model_files,
    read_model_info,
    render_linker_script,
)
from toolchain.processes import first_error_line, run_tool

KERNELS_DIR = TEMPLATES_DIR / "kernels"
WEIGHTS_SOURCE = "model_weights.c"
LINK_TIMEOUT_S = 120.0
MEASURING_MEMORY_BYTES = 64 << 20


@dataclass
class Linked:
    """Sizes of a firmware linked without its weights."""

    flash_bytes: int  # text + data: code, read-only data and .data initialisers
    static_ram_bytes: int  # data + bss, the arena included
    arena_bytes: int  # the model's static arena, as linked


# ---------------------------------------------------------------- linking


def _port_sources(board: Board) -> list[Path]:
    """The port's C sources tinyrank can compile (a real board's port needs its framework)."""
    if not board.is_emulated:
        return []
    return sorted(p for p in (PORTS_DIR / board.family).glob("*.c"))


def _link_flags(board: Board, work: Path) -> list[str]:
    """The link of the platform's builder (platformio/platform-tinyrank-qemu/builder/main.py).

    QEMU boards link with their own linker script, its memories and budget raised so an
    over-budget model is measured instead of refused. A real board's start-up lives in
    its framework, so its link starts at `bench_main` and leaves the port's symbols open.
    """
    flags = [
        *board.compile_flags(),
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
    ]
    if board.is_emulated and board.memory is not None:
        # Memories far larger than any board's: this ELF is only measured, never run.
        memory = dataclasses.replace(
            board.memory,
            flash_size=max(board.memory.flash_size, MEASURING_MEMORY_BYTES),
            ram_size=max(board.memory.ram_size, MEASURING_MEMORY_BYTES),
        )
        roomy = dataclasses.replace(
            board, memory=memory, flash_bytes=memory.flash_size, ram_bytes=memory.ram_size
        )
        script = work / "measure.ld"
        script.write_text(render_linker_script(roomy), encoding="utf-8")
        return [*flags, f"-T{script}"]
    return [*flags, "-Wl,-e,bench_main", "-Wl,--unresolved-symbols=ignore-all"]


def _symbol_size(elf: Path, name: str) -> int:
    result = run_tool(
        [f"{ARM_PREFIX}nm", "-S", "--defined-only", str(elf)], timeout_s=60, what="reading symbols"
    )
    if result.returncode != 0:
        raise BuildError(f"{ARM_PREFIX}nm failed: {first_error_line(result.stderr)}")
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    return 0


def link_without_weights(
    model_dir: str | os.PathLike,
    board: Board,
    *,
    constants: list[str],
    sources: list[Path] | None = None,
    app_dir: str | os.PathLike | None = None,
) -> Linked:
    """Compile and link the firmware of the model in `model_dir` with every weight array at address 0.

    `app_dir` is the application the firmware is built with (default: the benchmark app).
    """
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    if sources is None:
        model_sources, _ = _model_files(model_dir)
        sources = [p for p in model_sources if p.name != WEIGHTS_SOURCE]
    app_sources = sorted(Path(app_dir if app_dir is not None else BENCH_APP_DIR).glob("*.c"))
    port_sources = _port_sources(board)
    with tempfile.TemporaryDirectory(prefix="tinyrank-budget-") as tmp:
        work = Path(tmp)
        objects, _ = compile_objects(
            model_dir,
            board,
            [*sources, *app_sources, *port_sources],
            work,
            werror=False,
            include_dirs=(PORTS_DIR / board.family,),
        )
        weights = work / "weights.ld"
        weights.write_text("".join(f"{name} = 0;\n" for name in constants), encoding="utf-8")
        elf = work / "measure.elf"
        command = [
            f"{ARM_PREFIX}gcc",
            *_link_flags(board, work),
            *map(str, objects),
            str(weights),
            "-lm",
            "-o",
            str(elf),
        ]
        result = run_tool(command, timeout_s=LINK_TIMEOUT_S, what=f"linking for {board.id}")
        if result.returncode != 0:
            raise BuildError(f"linking {model_dir} for {board.id}: {first_error_line(result.stderr)}")
        sizes = elf_sizes(elf)
        arena = _symbol_size(elf, f"{info.get('prefix', 'tr')}_arena")
    return Linked(sizes["flash_bytes"], sizes["static_ram_bytes"], arena)


# ---------------------------------------------------------------- a generated model


def _constants(model_dir: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    constants = info.get("constants")
    if not isinstance(constants, list):
        raise TinyrankError(
            f"{model_dir / 'model_info.json'}: no 'constants' table; regenerate it with `tinyrank codegen`"
        )
    return constants


def predict_usage(
    model_dir: str | os.PathLike, board: Board | str, *, app_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Predicted flash and RAM of the firmware, by part, before PlatformIO runs.

    flash = weights (model_info) + code (everything linked but the weights) + framework;
    RAM = arena (model_info) + static (the app's buffers, port, C library) + framework
    + stack + heap. `static_ram_bytes` is what the ELF's .data + .bss will hold.
    """
    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    constants = _constants(model_dir, info)
    names = [c["c_name"] for c in constants]
    linked = link_without_weights(model_dir, board, constants=names, app_dir=app_dir)
    flash = {
        "weights": int(info["weights_bytes"]),
        "code": linked.flash_bytes,
        "framework": board.runtime_flash_bytes,
    }
    ram = {
        "arena": int(info["arena_bytes"]),
        "static": linked.static_ram_bytes - linked.arena_bytes,
        "framework": board.runtime_ram_bytes,
        "stack": board.stack_bytes,
        "heap": HEAP_BYTES,
    }
    return {
        "board": board.id,
        "flash": flash,
        "flash_bytes": sum(flash.values()),
        "flash_limit": board.flash_bytes,
        "ram": ram,
        "ram_bytes": sum(ram.values()),
        "ram_limit": board.ram_bytes,
        "static_ram_bytes": ram["arena"] + ram["static"] + ram["framework"],
    }


def _largest(entries: list[dict[str, Any]], count: int = 3) -> str:
    ranked = sorted(entries, key=lambda e: -int(e.get("bytes", 0)))[:count]
    return ", ".join(f"'{e['name']}' {e.get('shape', [])} {e['bytes']} B" for e in ranked) or "n/a"


def _largest_weights(info: dict[str, Any]) -> str:
    return _largest(
        [{"name": c["c_name"], "shape": [c["count"]], "bytes": c["bytes"]} for c in info["constants"]]
    )


def _largest_tensors(info: dict[str, Any]) -> str:
    tensors = info.get("tensors")
    if tensors is None:  # an older model_info: its inputs and outputs stand in
        tensors = [{**e, "bytes": e.get("size", 0)} for e in info.get("inputs", []) + info.get("outputs", [])]
    return _largest([t for t in tensors if t.get("storage", "arena") == "arena"])


def check_budget(
    model_dir: str | os.PathLike, board: Board | str, *, app_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The predicted usage (see `predict_usage`); raises BudgetError if it cannot fit the board."""
    board = load_board(board)
    usage = predict_usage(model_dir, board, app_dir=app_dir)
    over = [kind for kind in ("flash", "ram") if usage[f"{kind}_bytes"] > usage[f"{kind}_limit"]]
    if not over:
        return usage
    info = read_model_info(model_dir)
    totals = "; ".join(
        f"{kind}: needs {usage[f'{kind}_bytes']} B ("
        + ", ".join(f"{part} {size}" for part, size in usage[kind].items())
        + f") > {usage[f'{kind}_limit']} B"
        for kind in over
    )
    factor = max(usage[f"{k}_bytes"] / usage[f"{k}_limit"] for k in over)
    raise BudgetError(
        f"model {model_dir} does not fit board '{board.id}' ({board.name}): {totals}; "
        f"largest weights: {_largest_weights(info)}; largest tensors: {_largest_tensors(info)}; "
        f"shrink it about {factor:.1f}x, e.g. `tinyrank compress MODEL.keras --board {board.id}`"
    )
