"""Device benchmark: the demo model measured over the serial harness, per op.

Runs the same path as `make demo` (digits MLP, compressed, int8, generated C, firmware)
and measures it on `board`: in QEMU by default, or on a real board at `port`. Prints the
harness table, saves the per-op bar chart, and returns the harness report.

`python -m benchmarks.bench_device --out build/bench/bench_device [--board nano33 --port /dev/ttyACM0]`
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(
    out_dir: Path, quick: bool = False, board: str = "qemu_m4", port: str | None = None
) -> dict[str, Any]:
    from toolchain.bench.measure import run_benchmark
    from toolchain.bench.report import plot_per_op, print_report
    from toolchain.deploy import deploy
    from toolchain.deploy.demo import DEMO_COMPRESSION, prepare

    out_dir = Path(out_dir)
    model_path, data_path = prepare(out_dir / "demo", epochs=10 if quick else 40)
    deployed = deploy(
        model_path,
        data_path,
        board,
        out_dir / board,
        compress_options=DEMO_COMPRESSION,
        runs=3,
        port=port,
        flash=port is not None,
    )
    report = run_benchmark(
        out_dir / board / "gen", board, port=port, runs=5 if quick else 20, dataset=data_path, per_op=True
    )
    report["compress"] = {key: deployed["compress"].get(key) for key in ("params", "macs", "accuracy")}
    print_report(report)
    report["per_op_plot"] = str(plot_per_op(report, out_dir / "per_op.png"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_device"))
    parser.add_argument("--board", default="qemu_m4")
    parser.add_argument("--port", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from toolchain.fileio import write_json_report

    report = run(args.out, args.quick, args.board, args.port)
    print(f"report: {write_json_report(args.out / 'bench_device.json', report)}")


if __name__ == "__main__":
    main()
