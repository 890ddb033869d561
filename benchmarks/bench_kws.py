"""Benchmark of compression on keyword spotting: MLPerf Tiny's DS-CNN on the synthetic speech set.

Beside the digits models of `bench_compress`, a model of the size and shape a Nano 33 BLE
Sense runs: at several parameter budgets (Tucker-2 on the first convolution, SVD on the
pointwise ones, fine-tuned), parameters, MACs, int8 accuracy on the host and on the device,
the accuracy lost against the uncompressed int8 model, and instructions per inference on the
board (QEMU counts instructions deterministically). Every model goes through the same
`deploy` pipeline; the data set and the trained model are shared with `make demo-kws`
(cached in build/kws).

    python -m benchmarks.bench_kws --out build/bench/bench_kws [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BUDGETS = (0.7, 0.5, 0.35)
CACHE = Path("build/kws")


def _row(name: str, budget: float | None, report: dict, original: dict | None) -> dict[str, Any]:
    from examples.kws.demo import measured

    row = {"model": name, "target_params": budget, **measured(report)}
    comp = report.get("compress") or {}
    row["params"] = (comp.get("params") or {}).get("after")
    row["ranks"] = {r["name"]: r["ranks"] for r in comp.get("layers", []) if r.get("status") == "factored"}
    if original is not None:
        for key in ("accuracy_int8", "accuracy_device"):
            if row[key] is not None and original[key] is not None:
                row[f"{key}_lost_pt"] = round((original[key] - row[key]) * 100, 2)
    return row


def run(out_dir: Path, quick: bool = False, board: str = "qemu_m4") -> dict:
    from examples.kws.demo import KWS_COMPRESSION, dataset, trained_model
    from toolchain.deploy.pipeline import deploy
    from toolchain.fileio import write_json_report

    out_dir = Path(out_dir)
    data_path, facts = dataset(CACHE, 400)
    model_path = trained_model(CACHE, data_path, facts, 25)
    rows: list[dict[str, Any]] = []
    for budget in BUDGETS[1:2] if quick else BUDGETS:
        options = {**KWS_COMPRESSION, "target_params": budget, "verbose": 0}
        report = deploy(
            model_path, data_path, board, out_dir / f"budget_{budget}", compress_options=options, prefix="kws"
        )
        if not rows:  # deploy measures the original beside each compressed model: keep the first
            base = _row("ds_cnn", None, report["original"], None)
            base["params"] = report["compress"]["params"]["before"]
            rows.append(base)
        rows.append(_row("ds_cnn", budget, report, rows[0]))
    results = {"quick": quick, "board": board, "dataset": facts, "rows": rows}
    write_json_report(out_dir / "bench_kws.json", results)
    print_table(results)
    return results


def print_table(results: dict) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    table = Table(title=f"tinyrank compress on keyword spotting (DS-CNN, {results['board']})")
    columns = (
        "budget",
        "params",
        "MACs",
        "int8 host",
        "int8 device",
        "device lost (pt)",
        "instructions",
        "flash",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for r in results["rows"]:
        table.add_row(
            "original" if r["target_params"] is None else f"{r['target_params']:.2f}",
            f"{r['params']:,}" if r["params"] else "-",
            f"{r['macs']:,}",
            f"{r['accuracy_int8']:.2%}",
            f"{r['accuracy_device']:.2%}" if r["accuracy_device"] is not None else "-",
            f"{r.get('accuracy_device_lost_pt', 0.0):+.2f}",
            f"{r['instructions']:,}" if r["instructions"] is not None else "-",
            f"{r['flash_bytes']:,}" if r["flash_bytes"] is not None else "-",
        )
    make_console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_kws",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_kws"))
    parser.add_argument("--board", default="qemu_m4")
    parser.add_argument("--quick", action="store_true", help="one budget")
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, board=args.board)
    return 0


if __name__ == "__main__":
    sys.exit(main())
