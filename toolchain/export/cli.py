"""`tinyrank export`: a generated model as an Arduino library zip and/or a PlatformIO/CMake library."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    from toolchain.console import make_console
    from toolchain.export import export_arduino, export_platformio, model_library
    from toolchain.fileio import check_distinct

    if not args.arduino and not args.platformio_lib:
        raise TinyrankError("export: give --arduino OUT.zip, --platformio-lib DIR, or both")
    if args.arduino and args.data:
        check_distinct(args.data, args.arduino)
    lib = model_library(
        args.gen_dir,
        name=args.name,
        version=args.lib_version,
        data=args.data,
        sample=args.sample,
        labels=args.labels,
    )
    report: dict[str, Any] = {"stage": "export", "model_dir": str(args.gen_dir), "name": lib.name}
    console = make_console()
    if args.arduino:
        report["arduino"] = export_arduino(lib, args.arduino)
        console.print(f"Arduino library {lib.name} {lib.version}: {args.arduino}")
        console.print(
            f"  example {report['arduino']['example']}; install: Sketch > Include Library > Add .ZIP Library"
        )
    if args.platformio_lib:
        report["platformio"] = export_platformio(lib, args.platformio_lib, Path(args.gen_dir))
        console.print(f"PlatformIO library {lib.name}: lib_deps = {report['platformio']['lib_deps']}")
        console.print(f"  CMake/Zephyr: include({report['platformio']['cmake_include']})")
    return report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "export",
        parents=[common],
        help="generated C -> Arduino library zip, PlatformIO library, CMake snippet",
        description="Package a codegen output folder as an Arduino library (1.5 format, with an example that "
        "runs a stored test sample) and/or a PlatformIO library that CMake and Zephyr projects can add.",
        epilog="example: tinyrank export build/kws/gen --arduino kws.zip --data kws.npz --labels labels.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("gen_dir", type=Path, help="output folder of `tinyrank codegen` (never modified)")
    parser.add_argument("--arduino", type=Path, metavar="OUT.zip", help="write the Arduino library zip here")
    parser.add_argument(
        "--platformio-lib", type=Path, metavar="DIR", help="write the PlatformIO library here"
    )
    parser.add_argument("--name", help="library name (default: tinyrank_<prefix or .tflite name>)")
    parser.add_argument(
        "--lib-version", default="1.0.0", help="library version, MAJOR.MINOR.PATCH (default 1.0.0)"
    )
    parser.add_argument("--data", type=Path, help=".npz whose test sample the example runs (default: zeros)")
    parser.add_argument("--sample", type=int, default=0, help="index of that sample in x_test (default 0)")
    parser.add_argument("--labels", help="class names of output 0: 'a,b,c' or a file with one per line")
    parser.set_defaults(func=run_export)
