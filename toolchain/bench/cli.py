"""`tinyrank bench`: measure built firmware on a board or in QEMU and print the report."""

from __future__ import annotations

import argparse
from typing import Any

from toolchain import argtypes
from toolchain.errors import TinyrankError

EXAMPLES = """examples:
  tinyrank bench gen/ --board qemu_m4 --data digits.npz --per-op --plot per_op.png
  tinyrank bench gen/ --board nano33 --port /dev/ttyACM0 --data digits.npz --report bench.json"""


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "bench",
        parents=[common],
        help="measure latency, RAM, flash and correctness on the board (or QEMU)",
        description="Run the benchmark firmware built by `tinyrank build`: latency over N runs, RAM "
        "(static + stack high-water), flash, and every data sample compared byte for byte with TFLite Micro "
        "on the host. QEMU boards are started and stopped automatically.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model_dir", metavar="DIR", help="output folder of `tinyrank codegen`, built with `tinyrank build`"
    )
    parser.add_argument(
        "--board", required=True, type=argtypes.board_id, help="board id (see `tinyrank boards`)"
    )
    parser.add_argument(
        "--port", metavar="URL", help="serial port or pyserial URL (real boards; default: start QEMU)"
    )
    parser.add_argument(
        "--runs", type=argtypes.runs, default=20, help="timed inferences after the warm-up (default 20)"
    )
    parser.add_argument(
        "--data", metavar="DATA.npz", help="samples to check against the host reference (x_test, y_test)"
    )
    parser.add_argument(
        "--max-samples", type=argtypes.positive_int, default=None, help="check only the first N samples"
    )
    parser.add_argument("--per-op", action="store_true", help="also time each op")
    parser.add_argument("--plot", metavar="P.png", help="write the per-op bar chart (implies --per-op)")
    parser.add_argument(
        "--timeout", type=argtypes.seconds, default=1.0, help="seconds to wait for each reply (default 1)"
    )
    parser.add_argument(
        "--no-cycle-estimate",
        action="store_true",
        help="QEMU boards: skip the traced run that estimates Cortex-M4 cycles from the instructions",
    )
    parser.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from rich.progress import Progress

    from toolchain.bench.measure import run_benchmark
    from toolchain.bench.report import plot_per_op, print_report
    from toolchain.console import make_console
    from toolchain.fileio import write_json_report

    console = make_console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("checking samples", total=None)
        report = run_benchmark(
            args.model_dir,
            args.board,
            port=args.port,
            runs=args.runs,
            dataset=args.data,
            per_op=args.per_op or bool(args.plot),
            max_samples=args.max_samples,
            timeout_s=args.timeout,
            estimate_cycles=not args.no_cycle_estimate,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_report(report)
    if args.plot:
        report["plot"] = str(plot_per_op(report, args.plot))
    if report["matches"] != report["samples"]:
        if args.report:
            write_json_report(args.report, report)
        raise TinyrankError(
            f"{report['samples'] - report['matches']} of {report['samples']} outputs differ "
            f"from the host reference (first: sample {report['mismatches'][0]['index']})"
        )
    return report
