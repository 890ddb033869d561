"""`tinyrank build`, `tinyrank flash` and `tinyrank boards`."""

from __future__ import annotations

from toolchain import argtypes
from toolchain.firmware.boards import USER_BOARDS_ENV, list_boards, load_board
from toolchain.firmware.budget import check_budget
from toolchain.firmware.flash import build, flash
from toolchain.firmware.project import create_project, validate_platformio_ini

BOARD_HELP = f"board id, a name from `tinyrank boards` (your own board files: set ${USER_BOARDS_ENV})"


def register(subparsers, common) -> None:
    import argparse

    build_parser = subparsers.add_parser(
        "build",
        parents=[common],
        help="turn a generated model into a PlatformIO project and build it",
        description="Check the model against the board's flash and RAM budget, write a PlatformIO project "
        "for it (benchmark app, board port, linker limits) and build the firmware. The predicted and actual "
        "sizes are printed side by side.",
        epilog="example: tinyrank build gen/ --board qemu_m4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build_parser.add_argument("model_dir", help="output folder of `tinyrank codegen` (holds model_info.json)")
    build_parser.add_argument("--board", required=True, type=argtypes.board_id, help=BOARD_HELP)
    build_parser.add_argument("--out", help="project folder (default MODEL_DIR/firmware_BOARD)")
    build_parser.add_argument("--no-profile", action="store_true", help="build without per-op timing")
    build_parser.add_argument(
        "--project-only", action="store_true", help="write and validate the project but do not run PlatformIO"
    )
    build_parser.set_defaults(func=run_build, out_kind="folder")

    flash_parser = subparsers.add_parser(
        "flash",
        parents=[common],
        help="upload the built firmware to the board (QEMU boards: run it)",
        description="Upload the firmware built by `tinyrank build` with `pio run -t upload`. On a QEMU board "
        "this runs the firmware in the emulator instead, until it exits or the time limit.",
        epilog="example: tinyrank flash gen/ --board nano33 --port /dev/ttyACM0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flash_parser.add_argument("model_dir", help="the folder given to `tinyrank build`")
    flash_parser.add_argument("--board", required=True, type=argtypes.board_id, help=BOARD_HELP)
    flash_parser.add_argument("--port", help="serial port of the board (default: PlatformIO finds it)")
    flash_parser.add_argument("--out", help="project folder if not MODEL_DIR/firmware_BOARD")
    flash_parser.set_defaults(func=run_flash)

    boards_parser = subparsers.add_parser(
        "boards",
        parents=[common],
        help="list the boards tinyrank knows",
        description=f"List the board files of boards/ (and of the folder named by ${USER_BOARDS_ENV}, for "
        "your own boards): core, clock, flash and RAM budgets, and where each runs.",
        epilog="example: tinyrank boards",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    boards_parser.set_defaults(func=run_boards)


def run_build(args) -> dict:
    from rich.table import Table

    from toolchain.console import make_console

    board = load_board(args.board)
    if args.project_only:
        check_budget(args.model_dir, board)
        project = create_project(args.model_dir, board, args.out, profile=not args.no_profile)
        validate_platformio_ini(project)
        make_console().print(f"project written to {project}")
        return {"board": board.id, "project": str(project)}
    report = build(args.model_dir, board, profile=not args.no_profile, out_dir=args.out)
    table = Table(title=f"firmware for {board.name}")
    for column in ("", "predicted", "actual (ELF)", "limit"):
        table.add_column(column, justify="right")
    predicted = report["predicted"]
    table.add_row(
        "flash", f"{predicted['flash_bytes']:,}", f"{report['flash_bytes']:,}", f"{board.flash_bytes:,}"
    )
    table.add_row(
        "static RAM",
        f"{predicted['static_ram_bytes']:,}",
        f"{report['static_ram_bytes']:,}",
        f"{board.ram_bytes:,}",
    )
    make_console().print(table)
    make_console().print(f"ELF: {report['elf']}")
    return report


def run_flash(args) -> dict:
    report = flash(args.model_dir, args.board, args.port, out_dir=args.out)
    print(report["output"])
    return report


def run_boards(args) -> dict:
    from rich.table import Table

    from toolchain.console import make_console

    boards = list_boards()
    table = Table(title="boards")
    for column in ("id", "name", "MCU", "core", "clock", "flash", "RAM", "DSP", "counter", "runs on"):
        table.add_column(column)
    for b in boards:
        table.add_row(
            b.id,
            b.name,
            b.mcu,
            b.core,
            f"{b.clock_hz / 1e6:g} MHz",
            f"{b.flash_bytes // 1024} KB",
            f"{b.ram_bytes // 1024} KB",
            "yes" if b.has_dsp else "no",
            b.counter,
            f"QEMU {b.qemu_machine}" if b.is_emulated else f"PlatformIO {b.pio_platform}/{b.pio_board}",
        )
    console = make_console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console.width = 160
    console.print(table)
    return {
        "boards": [
            {
                "id": b.id,
                "name": b.name,
                "core": b.core,
                "clock_hz": b.clock_hz,
                "flash_bytes": b.flash_bytes,
                "ram_bytes": b.ram_bytes,
                "emulated": b.is_emulated,
            }
            for b in boards
        ]
    }
