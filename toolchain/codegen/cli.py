"""`tinyrank codegen` and `tinyrank verify`: the command-line face of stage 3."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolchain import argtypes


def _print_codegen(info: dict[str, Any], out: Path) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    table = Table(title=f"codegen: {info['tflite']} -> {out}")
    for column in ("#", "op", "kernel", "MACs"):
        table.add_column(column, justify="right" if column in ("#", "MACs") else "left")
    for op in info["ops"]:
        table.add_row(str(op["index"]), op["opcode"], op["kernel"] or "(alias)", f"{op['macs']:,}")
    console = make_console()
    console.print(table)
    tflm = info["tflm_arena_bytes"]
    console.print(
        f"arena {info['arena_bytes']:,} bytes (TFLite Micro: {f'{tflm:,}' if tflm else 'n/a'}), "
        f"weights {info['weights_bytes']:,} bytes, {info['macs']:,} MACs"
    )


def run_codegen(args: argparse.Namespace) -> dict[str, Any]:
    from toolchain.codegen import generate

    info = generate(args.model, args.out, prefix=args.prefix, dsp=args.dsp)
    _print_codegen(info, Path(args.out))
    return info


def run_verify(args: argparse.Namespace) -> dict[str, Any]:
    from toolchain.codegen.graph import parse
    from toolchain.codegen.verify import verify
    from toolchain.console import make_console
    from toolchain.data import check_input_shape, load_dataset
    from toolchain.errors import TinyrankError
    from toolchain.fileio import write_json_report

    dataset = load_dataset(args.data)
    graph = parse(args.model)
    if graph.inputs:
        check_input_shape(dataset, graph.inputs[0].shape[1:], where=f"model {graph.path.name}")
    x = dataset.eval_x[: args.samples] if args.samples else dataset.eval_x
    report = verify(args.model, x, sanitize=args.sanitize)
    console = make_console()
    console.print(
        f"verify: {report['samples']} samples, {report['mismatches']} mismatching output bytes "
        f"in {report['mismatched_samples']} samples"
    )
    first = report["first_mismatch"]
    if first:
        console.print(
            f"first difference: sample {first['sample']}, output {first['output']}[{first['position']}]: "
            f"generated {first['generated']}, TFLite Micro {first['tflm']} "
            f"(largest difference {first['max_abs_diff']})"
        )
    if not report["bit_exact"] and not args.allow_mismatch:
        if args.report:  # a mismatch is when the report is needed most; main() skips it on error
            write_json_report(args.report, report)
        raise TinyrankError(
            f"{args.model}: generated C differs from TFLite Micro in {report['mismatches']} output "
            f"bytes of {report['samples']} samples (first: sample {first['sample']})"
        )
    return report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "codegen",
        parents=[common],
        help="int8 .tflite -> standalone C (model.h, model.c, weights, kernels)",
        description="Compile a full-int8 TFLite model into plain C: straight-line kernel calls, const "
        "weights and one statically planned arena. Writes model_info.json next to the sources.",
        epilog="example: tinyrank codegen model.tflite --out gen/ --prefix kws --report codegen.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the full-int8 .tflite file")
    parser.add_argument("--out", required=True, help="folder for the generated sources")
    parser.add_argument(
        "--prefix", default="tr", type=argtypes.prefix, help=f"{argtypes.PREFIX_HELP} (default tr)"
    )
    parser.add_argument(
        "--no-dsp",
        dest="dsp",
        action="store_false",
        help="the target has no DSP extension (Cortex-M0/M3): keep the layouts its plain C path reads "
        "fastest (default: a Cortex-M4/M7/M33 target; the C is correct on any core either way)",
    )
    parser.set_defaults(func=run_codegen, out_kind="folder")

    parser = subparsers.add_parser(
        "verify",
        parents=[common],
        help="compile the generated C for the host and compare with TFLite Micro",
        description="Generate C for the model, build it with the host gcc, run every sample and compare each "
        "output byte with the tflite_micro interpreter. Exits 2 if any byte differs.",
        epilog="example: tinyrank verify model.tflite --data digits.npz --samples 200 --sanitize",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the full-int8 .tflite file")
    parser.add_argument("--data", required=True, help=".npz data set; x_test (or x_train) samples are run")
    parser.add_argument(
        "--samples", type=argtypes.count, default=0, help="run only the first N samples (default: all)"
    )
    parser.add_argument("--sanitize", action="store_true", help="build with -fsanitize=address,undefined")
    parser.add_argument("--allow-mismatch", action="store_true", help="report differences without failing")
    parser.set_defaults(func=run_verify)
