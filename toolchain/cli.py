"""The `tinyrank` command: one sub-command per stage, plus `deploy` for all of them.

Each stage module registers its own sub-commands (see ARCHITECTURE.md), so the options
of a stage live next to its code. This file only wires them up, writes `--report`, and
turns a `TinyrankError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from toolchain.errors import TinyrankError
from toolchain.fileio import write_json_report

# Modules that provide `register(subparsers, common)`, in the order of the pipeline.
STAGE_MODULES = (
    "toolchain.compress.cli",
    "toolchain.convert.cli",
    "toolchain.codegen.cli",
    "toolchain.firmware.cli",
    "toolchain.bench.cli",
    "toolchain.deploy.cli",
    "toolchain.export.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyrank",
        description="Shrink a Keras model with low-rank factorization, compile it to C, "
        "and measure it on a Cortex-M.",
        epilog="example: tinyrank deploy model.keras --data data.npz --board qemu_m4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--report", metavar="FILE", help="also write the stage's JSON report to FILE")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in STAGE_MODULES:
        importlib.import_module(name).register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report = args.func(args)
        if getattr(args, "report", None) and report is not None:
            write_json_report(args.report, report)
    except TinyrankError as exc:
        print(f"tinyrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyrank: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
