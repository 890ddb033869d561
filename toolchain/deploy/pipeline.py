"""`tinyrank deploy`: every stage in order, one folder of inspectable files, one report.

    OUT/compressed.keras -> OUT/model.tflite -> OUT/gen/ (C) -> OUT/gen/firmware_<board>/ -> OUT/report.json

Each stage is the same function its own sub-command runs, so `deploy` is only the
composition; a user who wants to stop after any stage and look can run the stages one by one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from toolchain.fileio import write_json_report

STAGES = ("compress", "convert", "codegen", "build", "bench")


def _timed(report: dict, name: str, start: float) -> None:
    report.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 2)


def _announce(name: str, detail: str) -> float:
    """One line per stage, so a long deploy shows where it is; returns the stage's start time."""
    from toolchain.console import make_console

    make_console(stderr=True).print(
        f"[bold]\\[{STAGES.index(name) + 1}/{len(STAGES)}] {name}[/bold] {detail}"
    )
    return time.perf_counter()


def compress_stage(
    model_path: Path, data_path: Path, out_dir: Path, options: dict | None
) -> tuple[Path, dict]:
    """Factorize (unless `options` is None) and save `compressed.keras`; the input is never touched."""
    if options is None:
        return model_path, {"skipped": True}
    from toolchain.compress import compress
    from toolchain.data import load_dataset
    from toolchain.models import load_keras_model, save_keras_model

    model = load_keras_model(model_path)
    small, report = compress(model, load_dataset(data_path), **options)
    out = save_keras_model(small, out_dir / "compressed.keras", source=model_path)
    return out, report


def deploy(
    model_path: str | Path,
    data_path: str | Path,
    board_id: str,
    out_dir: str | Path,
    *,
    compress_options: dict | None = None,
    runs: int = 10,
    port: str | None = None,
    flash: bool = False,
    prefix: str = "tr",
) -> dict[str, Any]:
    """Run compress -> convert -> codegen -> build -> bench (or flash) and write OUT/report.json."""
    from toolchain import codegen, firmware
    from toolchain.bench.measure import run_benchmark
    from toolchain.convert import convert_file
    from toolchain.data import load_dataset
    from toolchain.firmware.boards import load_board

    model_path, data_path, out_dir = Path(model_path), Path(data_path), Path(out_dir)
    board = load_board(board_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "stage": "deploy",
        "board": board.id,
        "model": str(model_path),
        "data": str(data_path),
    }

    start = _announce(
        "compress",
        f"{model_path} -> {out_dir / 'compressed.keras'}"
        if compress_options is not None
        else "skipped (--no-compress)",
    )
    keras_path, report["compress"] = compress_stage(model_path, data_path, out_dir, compress_options)
    _timed(report, "compress", start)
    if compress_options is not None:
        from toolchain.compress.report import print_report

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
    report["build"] = firmware.build(gen_dir, board)
    _timed(report, "build", start)

    where = "in QEMU" if board.is_emulated else f"on {port or 'the board'}"
    start = _announce("bench", f"{where}: latency, RAM, every test sample against TFLite Micro")
    if flash and not board.is_emulated:
        report["flash"] = firmware.flash(gen_dir, board, port=port)
        _timed(report, "flash", start)
        if port is None:
            report["bench"] = None
            write_json_report(out_dir / "report.json", report)
            return report
        start = time.perf_counter()
    from toolchain.console import progress_bar

    with progress_bar() as progress:
        task = progress.add_task("checking samples on the device", total=None)
        report["bench"] = run_benchmark(
            gen_dir,
            board,
            port=port,
            runs=runs,
            dataset=load_dataset(data_path),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    _timed(report, "bench", start)
    write_json_report(out_dir / "report.json", report)
    return report
