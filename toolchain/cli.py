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
from typing import Any

from toolchain import __version__
from toolchain.errors import TinyrankError
from toolchain.fileio import check_paths, write_json_report
from toolchain.processes import Terminated, install_signal_handlers, stop_all

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
    parser.add_argument("--version", action="version", version=f"tinyrank {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--report", metavar="FILE", help="also write the stage's JSON report to FILE")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in STAGE_MODULES:
        importlib.import_module(name).register(subparsers, common)
    return parser


def check_command_paths(args: argparse.Namespace) -> None:
    """Every output of the command writable and none of them an input, before any work starts.

    Stages declare what `--out` is with `out_kind` ("file" or "folder"; None when it names an
    input) and may list further outputs with `writes(args) -> (files, folders)`.
    """
    inputs = [getattr(args, key) for key in ("model", "data", "model_dir") if getattr(args, key, None)]
    files: dict[str, Any] = {"--report": getattr(args, "report", None), "--plot": getattr(args, "plot", None)}
    folders: dict = {}
    kind = getattr(args, "out_kind", None)
    if getattr(args, "out", None) is not None and kind is not None:
        (files if kind == "file" else folders)["--out"] = args.out
    writes = getattr(args, "writes", None)
    if writes is not None:
        more_files, more_folders = writes(args)
        files.update(more_files)
        folders.update(more_folders)
    check_paths(inputs, files, folders)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    install_signal_handlers()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_command_paths(args)
        report = args.func(args)
        if getattr(args, "report", None) and report is not None:
            write_json_report(args.report, report)
    except TinyrankError as exc:
        print(f"tinyrank: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"tinyrank: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tinyrank: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
