"""Stage 4, firmware: boards, the PlatformIO project, the budget, building, flashing, and emulators.

The names other stages use are re-exported here, so callers write `from toolchain.firmware import build`.
"""

from toolchain.firmware.boards import Board, list_boards, load_board
from toolchain.firmware.budget import check_budget, predict_usage
from toolchain.firmware.compile import cross_compile, elf_sizes
from toolchain.firmware.flash import build, elf_path, flash
from toolchain.firmware.project import (
    ARM_PREFIX,
    BENCH_APP_DIR,
    TEMPLATES_DIR,
    create_project,
    read_model_info,
    render_bench_model_header,
    render_board_config,
    validate_platformio_ini,
)

__all__ = [
    "ARM_PREFIX",
    "BENCH_APP_DIR",
    "TEMPLATES_DIR",
    "Board",
    "build",
    "check_budget",
    "create_project",
    "cross_compile",
    "elf_path",
    "elf_sizes",
    "flash",
    "list_boards",
    "load_board",
    "predict_usage",
    "read_model_info",
    "render_bench_model_header",
    "render_board_config",
    "validate_platformio_ini",
]
