"""`tinyrank deploy`: every stage in order, one folder of inspectable files, one report.

    OUT/compressed.keras -> OUT/model.tflite -> OUT/gen/ (C) -> OUT/gen/firmware_<board>/ -> OUT/report.json

Each stage is the same function its own sub-command runs, so `deploy` is only the
composition; a user who wants to stop after any stage and look can run the stages one by one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError
from toolchain.fileio import write_json_report

STAGES = ("compress", "convert", "codegen", "build", "bench")


def _timed(report: dict, name: str, start: float) -> None:
    report.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 2)


def _announce(name: str, detail: str) -> float:
    """One line per stage, so a long deploy shows where it is; returns the stage's start time."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold]\\[{STAGES.index(name) + 1}/{len(STAGES)}] {name}[/bold] {detail}")
    return time.perf_counter()


def compress_stage(model_path: Path, data_path: Path, out_dir: Path, options: dict | None) -> tuple[Path, dict]:
    """Factorize (unless `options` is None) and save `compressed.keras`; the input is never touched."""
    if options is None:
        return model_path, {"skipped": True}
    import toolchain
    from toolchain.data import load_dataset
    from toolchain.models import load_keras_model, save_keras_model

    model = load_keras_model(model_path)
    small, report = toolchain.compress(model, load_dataset(data_path), **options)
    out = save_keras_model(small, out_dir / "compressed.keras", source=model_path)
    return out, report


def deploy(model_path: str | Path, data_path: str | Path, board_id: str, out_dir: str | Path, *,
           compress_options: dict | None = None, runs: int = 10, port: str | None = None,
           flash: bool = False, prefix: str = "tr") -> dict[str, Any]:
    """Run compress -> convert -> codegen -> build -> bench (or flash) and write OUT/report.json."""
    from toolchain import build, codegen
    from toolchain.bench.measure import run_benchmark
    from toolchain.boards import load_board
    from toolchain.convert import convert_file
    from toolchain.data import load_dataset

    model_path, data_path, out_dir = Path(model_path), Path(data_path), Path(out_dir)
    board = load_board(board_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"stage": "deploy", "board": board.id, "model": str(model_path), "data": str(data_path)}

    start = _announce("compress", f"{model_path} -> {out_dir / 'compressed.keras'}"
                      if compress_options is not None else "skipped (--no-compress)")
    keras_path, report["compress"] = compress_stage(model_path, data_path, out_dir, compress_options)
    _timed(report, "compress", start)
    if compress_options is not None:
        from toolchain.lowrank.report import print_report

        print_report(report["compress"])

    tflite_path = out_dir / "model.tflite"
    start = _announce("convert", f"full int8 -> {tflite_path}")
    report["convert"] = convert_file(keras_path, data_path, tflite_path)
    _timed(report, "convert", start)

    gen_dir = out_dir / "gen"
    start = _announce("codegen", f"C sources -> {gen_dir}")
    report["codegen"] = codegen.generate(tflite_path, gen_dir, prefix=prefix)
    _timed(report, "codegen", start)

    start = _announce("build", f"PlatformIO firmware for {board.id}")
    report["build"] = build.build(gen_dir, board)
    _timed(report, "build", start)

    where = "in QEMU" if board.is_emulated else f"on {port or 'the board'}"
    start = _announce("bench", f"{where}: latency, RAM, every test sample against TFLite Micro")
    if flash and not board.is_emulated:
        report["flash"] = build.flash(gen_dir, board, port=port)
        _timed(report, "flash", start)
        if port is None:
            report["bench"] = None
            write_json_report(out_dir / "report.json", report)
            return report
        start = time.perf_counter()
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("checking samples on the device", total=None)
        report["bench"] = run_benchmark(
            gen_dir, board, port=port, runs=runs, dataset=load_dataset(data_path),
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    _timed(report, "bench", start)
    write_json_report(out_dir / "report.json", report)
    return report


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
    from rich.console import Console
    from rich.table import Table

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
        table.add_row("parameters, original -> compressed", f"{comp['params']['before']:,} -> {comp['params']['after']:,}")
    table.add_row("flash (bytes)", f"{build_report.get('flash_bytes', 0):,}")
    ram = bench_report.get("ram_bytes", build_report.get("static_ram_bytes", 0))
    table.add_row("RAM: static + stack high-water (bytes)", f"{ram:,}")
    latency = bench_report.get("latency") or {}
    if latency:
        table.add_row(f"{latency.get('unit', 'units')} per inference (median)", f"{latency.get('median', 0):,}")
    if bench_report:
        table.add_row("outputs match the host reference", f"{bench_report['matches']}/{bench_report['samples']}")
    Console().print(table)


def run_deploy(args: argparse.Namespace) -> dict[str, Any]:
    options = None if args.no_compress else {
        key: value for key, value in (("method", args.method), ("energy", args.energy),
                                      ("target_params", args.target_params),
                                      ("finetune_epochs", args.finetune_epochs)) if value is not None
    }
    if options is not None and "energy" not in options and "target_params" not in options:
        options["energy"] = 0.95
    report = deploy(args.model, args.data, args.board, args.out or Path("build") / args.board,
                    compress_options=options, runs=args.runs, port=args.port, flash=args.flash, prefix=args.prefix)
    print_deploy_summary(report)
    bench_report = report.get("bench")
    if bench_report and bench_report["matches"] != bench_report["samples"]:
        raise TinyrankError(f"{bench_report['samples'] - bench_report['matches']} of {bench_report['samples']} "
                            f"outputs differ from the host reference (see {args.out}/report.json)")
    return report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "deploy", parents=[common], help="all stages: compress, convert, codegen, build, bench",
        description="Run every stage on a Keras model and measure it on the board (QEMU boards run in the emulator).",
        epilog="example: tinyrank deploy model.keras --data digits.npz --board qemu_m4 --out build/qemu_m4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the trained .keras model (never modified)")
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train and optional x_test, y_test")
    parser.add_argument("--board", default="qemu_m4", help="board id (see `tinyrank boards`)")
    parser.add_argument("--out", type=Path, help="output folder (default build/BOARD)")
    parser.add_argument("--method", default=None, help="compression method (default svd)")
    parser.add_argument("--energy", type=float, default=None,
                        help="fraction of singular-value energy kept (the default, 0.95, unless --target-params)")
    parser.add_argument("--target-params", type=float, default=None,
                        help="keep this fraction of the factorable layers' parameters (budget search)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs after factorizing")
    parser.add_argument("--no-compress", action="store_true", help="deploy the model as it is")
    parser.add_argument("--runs", type=int, default=10, help="timed inferences (default 10)")
    parser.add_argument("--port", help="serial port or pyserial URL of a real board")
    parser.add_argument("--flash", action="store_true", help="upload to the connected board before benchmarking")
    parser.add_argument("--prefix", default="tr", help="C symbol prefix of the generated model (default tr)")
    parser.set_defaults(func=run_deploy)
