"""`tinyrank convert`: a Keras model and its data -> a full-int8 `.tflite`, with float and int8 scores."""

from __future__ import annotations

import argparse
from typing import Any

from toolchain import argtypes
from toolchain.convert.convert import convert_file


def print_summary(report: dict[str, Any]) -> None:
    """The people's view of a convert report: one table, float and int8 side by side."""
    from rich.table import Table

    from toolchain.console import make_console

    table = Table(title=f"convert: {report['tflite']} ({report['tflite_bytes']:,} bytes)")
    table.add_column(f"on {report['split']} ({report['samples']} samples)")
    table.add_column("float (Keras)", justify="right")
    table.add_column("int8 (TFLite)", justify="right")
    for metric, value in report["float"].items():
        fmt = "{:.2%}" if metric == "accuracy" else "{:.5g}"
        table.add_row(metric, fmt.format(value), fmt.format(report["int8"][metric]))
    make_console().print(table)


def run_convert(args: argparse.Namespace) -> dict[str, Any]:
    report = convert_file(args.model, args.data, args.out, samples=args.samples, seed=args.seed)
    print_summary(report)
    return report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "convert",
        parents=[common],
        help="Keras model -> full-int8 TFLite flatbuffer",
        description="Convert a Keras model to a full-int8 TFLite flatbuffer (int8 input/output, per-channel "
        "weights) calibrated on x_train, and compare float and int8 accuracy on x_test.",
        epilog="example: tinyrank convert small.keras --data digits.npz --out model.tflite "
        "--report convert.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the .keras model (a Keras 2 .h5 or a SavedModel folder also converts)")
    parser.add_argument(
        "--data", required=True, help=".npz with x_train (calibration) and optional x_test, y_test"
    )
    parser.add_argument("--out", required=True, help="the .tflite file to write")
    parser.add_argument(
        "--samples",
        type=argtypes.positive_int,
        default=300,
        help="calibration samples drawn from x_train (default 300)",
    )
    parser.add_argument(
        "--seed", type=argtypes.seed, default=0, help="shuffle seed for the calibration samples"
    )
    parser.set_defaults(func=run_convert, out_kind="file")
