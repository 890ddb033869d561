"""`make bench`: every benchmark in one run, a table each on the terminal and one JSON file.

Each `benchmarks/bench_*.py` module has `run(out_dir, quick=False, **options) -> dict`;
this script runs them in order and writes `OUT/bench.json` with all their results, so the
numbers of one run (including TFLite Micro's, measured in the same run) stay together.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
from pathlib import Path

from toolchain.fileio import write_json_report

BENCHMARKS = (
    "bench_compress",
    "bench_kws",
    "bench_codegen",
    "bench_factored",
    "bench_lstm",
    "bench_device",
    "bench_costmodel",
    "bench_robustness",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--board", default="qemu_m4")
    parser.add_argument("--port", default=None, help="serial port of a real board for the device benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps (a sanity run)")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these benchmarks")
    args = parser.parse_args(argv)
    # Benchmark tables are wide; in a file or CI log, rich would squeeze them to 80 columns.
    os.environ.setdefault("COLUMNS", "200")
    results: dict[str, object] = {}
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        options = {"board": args.board, "port": args.port}
        accepted = inspect.signature(module.run).parameters
        start = time.perf_counter()
        results[name] = module.run(
            args.out / name, quick=args.quick, **{k: v for k, v in options.items() if k in accepted}
        )
        print(f"{name}: {time.perf_counter() - start:.1f} s")
    path = write_json_report(args.out / "bench.json", results)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
