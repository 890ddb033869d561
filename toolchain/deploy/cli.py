"""`tinyrank deploy`: every stage in one command, and its summary table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolchain import argtypes
from toolchain.deploy.pipeline import deploy
from toolchain.errors import TinyrankError


def _accuracy(section: dict | None, *keys: str) -> str:
    """Dig a score out of a stage report, as a percentage, or '-' when that stage did not measure it."""
    value: Any = section
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return "-"
        value = value[key]
    if isinstance(value, dict):
        value = value.get("accuracy", value.get("mse"))
    return f"{value:.2%}" if isinstance(value, float) and value <= 1.0 else str(value)


def print_deploy_summary(report: dict[str, Any]) -> None:
    """The table a person reads at a glance after `deploy` (or `make demo`)."""
    from rich.table import Table

    from toolchain.console import make_console

    if report.get("comparison"):
        from toolchain.deploy.compare import print_comparison

        print_comparison(report)
        return
    bench_report = report.get("bench") or {}
    build_report = report.get("build") or {}
    table = Table(title=f"tinyrank deploy on {report['board']}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    comp = report.get("compress") or {}
    table.add_row("accuracy, original (float)", _accuracy(comp, "accuracy", "original"))
    table.add_row("accuracy, compressed + fine-tuned (float)", _accuracy(report.get("convert"), "float"))
    table.add_row("accuracy, int8 (host)", _accuracy(report.get("convert"), "int8"))
    if "accuracy" in bench_report:
        table.add_row("accuracy, int8 (on device)", f"{bench_report['accuracy']:.2%}")
    if "params" in comp:
        table.add_row(
            "parameters, original -> compressed",
            f"{comp['params']['before']:,} -> {comp['params']['after']:,}",
        )
    table.add_row("flash (bytes)", f"{build_report.get('flash_bytes', 0):,}")
    ram = bench_report.get("ram_bytes", build_report.get("static_ram_bytes", 0))
    table.add_row("RAM: static + stack high-water (bytes)", f"{ram:,}")
    latency = bench_report.get("latency") or {}
    if latency:
        table.add_row(
            f"{latency.get('unit', 'units')} per inference (median)", f"{latency.get('median', 0):,}"
        )
    if bench_report:
        table.add_row(
            "outputs match the host reference", f"{bench_report['matches']}/{bench_report['samples']}"
        )
    make_console().print(table)


def deploy_outputs(args: argparse.Namespace) -> tuple[dict, dict]:
    """What deploy writes inside its folder, so an input there is never overwritten."""
    out = args.out or Path("build") / args.board
    files = {f"--out's {name}": out / name for name in ("compressed.keras", "model.tflite", "report.json")}
    return files, {"--out": out, "--out's gen/": out / "gen", "--out's original/": out / "original"}


RULE_OPTIONS = ("energy", "ranks")  # rank rules: compress takes no board budget with these


def compress_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """What `deploy` passes to compress. With no rank option it searches against the board, so
    with only --board it compresses just enough to fit it."""
    if args.no_compress:
        return None
    options = {
        key: getattr(args, key)
        for key in (
            "method",
            "energy",
            "ranks",
            "target_params",
            "target_macs",
            "target_latency",
            "max_latency_ms",
            "finetune_epochs",
        )
        if getattr(args, key) is not None
    }
    if args.distill:
        options["distill"] = True
    if not any(key in options for key in RULE_OPTIONS):
        options["board"] = args.board
    return options


def run_deploy(args: argparse.Namespace) -> dict[str, Any]:
    options = compress_options(args)
    report = deploy(
        args.model,
        args.data,
        args.board,
        args.out or Path("build") / args.board,
        compress_options=options,
        runs=args.runs,
        port=args.port,
        flash=args.flash,
        prefix=args.prefix,
    )
    print_deploy_summary(report)
    bench_report = report.get("bench")
    if bench_report and bench_report["matches"] != bench_report["samples"]:
        raise TinyrankError(
            f"{bench_report['samples'] - bench_report['matches']} of {bench_report['samples']} "
            f"outputs differ from the host reference (see {args.out}/report.json)"
        )
    return report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "deploy",
        parents=[common],
        help="all stages: compress, convert, codegen, build, bench",
        description="Run every stage on a Keras model and measure it on the board (QEMU boards run in the "
        "emulator). A .tflite starts at codegen. Every option and output path is checked before the first "
        "stage starts.",
        epilog="example: tinyrank deploy model.keras --data digits.npz --board qemu_m4 --out build/qemu_m4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        help="the trained .keras/.h5 model or SavedModel folder, or a full-int8 .tflite (skips compress "
        "and convert); never modified",
    )
    parser.add_argument(
        "--data", required=True, help=".npz with x_train, y_train and optional x_test, y_test"
    )
    parser.add_argument(
        "--board",
        default="qemu_m4",
        type=argtypes.board_id,
        help="board id (default qemu_m4; see `tinyrank boards`)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default build/BOARD)")
    parser.add_argument(
        "--method",
        default=None,
        choices=("svd", "tucker", "cp", "spatial", "seminmf", "auto", "narrow"),
        help="compression method (default svd; narrow: fewer whole hidden units, with --target-params)",
    )
    rank = parser.add_argument_group(
        "rank choice (default: the least error that fits --board; the original is measured beside it)"
    )
    rank.add_argument("--ranks", default=None, metavar="LAYER=R[:R2],...", help="explicit ranks")
    rank.add_argument(
        "--energy", type=argtypes.fraction, default=None, help="fraction of singular-value energy kept"
    )
    rank.add_argument(
        "--target-params",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the parameters",
    )
    rank.add_argument(
        "--target-macs",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the MACs",
    )
    rank.add_argument(
        "--target-latency",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the original's predicted cost on --board",
    )
    rank.add_argument(
        "--max-latency-ms",
        type=argtypes.milliseconds,
        default=None,
        metavar="MS",
        help="budget: at most MS ms on --board (cycles at its clock; instructions on QEMU boards)",
    )
    parser.add_argument("--distill", action="store_true", help="fine-tune against the original's outputs too")
    parser.add_argument(
        "--finetune-epochs", type=argtypes.count, default=None, help="fine-tuning epochs after factorizing"
    )
    parser.add_argument("--no-compress", action="store_true", help="deploy the model as it is")
    parser.add_argument("--runs", type=argtypes.runs, default=10, help="timed inferences (default 10)")
    parser.add_argument("--port", help="serial port or pyserial URL of a real board")
    parser.add_argument(
        "--flash", action="store_true", help="upload to the connected board before benchmarking"
    )
    parser.add_argument(
        "--prefix", default="tr", type=argtypes.prefix, help=f"{argtypes.PREFIX_HELP} (default tr)"
    )
    parser.set_defaults(func=run_deploy, out_kind="folder", writes=deploy_outputs)
