"""`tinyrank deploy`: every stage in order, one folder of inspectable files, one report.

    OUT/compressed.keras -> OUT/model.tflite -> OUT/gen/ (C) -> OUT/gen/firmware_<board>/ -> OUT/report.json

Each stage is the same function its own sub-command runs, so `deploy` is only the
composition; a user who wants to stop after any stage and look can run the stages one by one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from toolchain.errors import ModelError
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


def _say_sizes(build: dict) -> None:
    """The budget's prediction beside the ELF's sizes, as `tinyrank build` shows them."""
    from rich.console import Console

    predicted = build["predicted"]
    Console(stderr=True).print(
        f"      flash {build['flash_bytes']:,} B (predicted {predicted['flash_bytes']:,}), "
        f"static RAM {build['static_ram_bytes']:,} B (predicted {predicted['static_ram_bytes']:,})"
    )


def compress_stage(
    model: Any, model_path: Path, dataset: Any, out_dir: Path, options: dict | None
) -> tuple[Path, dict]:
    """Factorize (unless `options` is None) and save `compressed.keras`; the input is never touched."""
    if options is None:
        return model_path, {"skipped": True}
    from toolchain.compress import compress
    from toolchain.models import save_keras_model

    small, report = compress(model, dataset, **options)
    out = save_keras_model(small, out_dir / "compressed.keras", source=model_path)
    return out, report


def model_kind(path: Path) -> str:
    """'keras', 'tflite' or 'savedmodel': what `deploy` was given, checked before any work."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(
            f"model {path}: is a folder without saved_model.pb; give a .keras, .h5 or .tflite file "
            "or a SavedModel folder"
        )
    if not path.is_file():
        raise ModelError(f"model file {path}: no such file")
    if path.suffix == ".tflite":
        return "tflite"
    if path.suffix in (".keras", ".h5"):
        return "keras"
    raise ModelError(f"model file {path}: expected a .keras, .h5 or .tflite file, or a SavedModel folder")


def _measure(
    gen_dir: Path, board: Any, data_path: Path, *, runs: int, port: str | None, flash: bool, label: str
) -> dict[str, Any]:
    """Flash (real boards, when asked) and benchmark one generated model; the stage reports."""
    from toolchain import firmware
    from toolchain.bench.measure import run_benchmark
    from toolchain.data import load_dataset

    result: dict[str, Any] = {}
    if flash and not board.is_emulated:
        result["flash"] = firmware.flash(gen_dir, board, port=port)
        if port is None:
            result["bench"] = None
            return result
    from toolchain.console import progress_bar

    with progress_bar() as progress:
        task = progress.add_task(f"checking samples on the device ({label})", total=None)
        result["bench"] = run_benchmark(
            gen_dir,
            board,
            port=port,
            runs=runs,
            dataset=load_dataset(data_path),
            per_op=True,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    return result


def _original_stages(
    model_path: Path, data_path: Path, board: Any, out_dir: Path, prefix: str, measure: dict
) -> dict[str, Any]:
    """The original model through convert, codegen, build and bench: the 'before' of the report.
    A model that does not fit the board is reported as such, not raised: that is why one compresses."""
    from toolchain import codegen, firmware
    from toolchain.convert import convert_file
    from toolchain.errors import BudgetError, BuildError

    report: dict[str, Any] = {"model": str(model_path)}
    report["convert"] = convert_file(model_path, data_path, out_dir / "model.tflite")
    report["codegen"] = codegen.generate(
        out_dir / "model.tflite", out_dir / "gen", prefix=prefix, dsp=board.has_dsp
    )
    try:
        report["build"] = firmware.build(out_dir / "gen", board)
    except (BudgetError, BuildError) as err:
        report["build"] = None
        report["does_not_fit"] = str(err)
        return report
    report.update(_measure(out_dir / "gen", board, data_path, label="original", **measure))
    return report


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
    """Run compress -> convert -> codegen -> build -> bench (or flash) and write OUT/report.json.

    When it compresses, the original int8 model is built and measured on the same board in
    the same run (OUT/original/), so the report holds both side by side (`original`, `comparison`).
    """
    from toolchain import codegen, firmware
    from toolchain.convert import convert_file
    from toolchain.convert.convert import check_convertible
    from toolchain.data import load_dataset
    from toolchain.deploy.compare import comparison
    from toolchain.firmware.boards import load_board
    from toolchain.models import load_keras_model

    model_path, data_path, out_dir = Path(model_path), Path(data_path), Path(out_dir)
    given = model_kind(model_path)
    board = load_board(board_id)
    # The model and data are read and checked before the output folder exists: a bad one leaves nothing.
    dataset = load_dataset(data_path)
    model = load_keras_model(model_path)
    check_convertible(model, dataset, model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "stage": "deploy",
        "board": board.id,
        "model": str(model_path),
        "data": str(data_path),
    }
    measure: dict[str, Any] = {"runs": runs, "port": port, "flash": flash}

    if given != "keras" and compress_options is not None:
        compress_options = None  # nothing Keras to factorize in a .tflite or a SavedModel
        skipped = f"skipped ({'a .tflite' if given == 'tflite' else 'a SavedModel'} has no Keras layers)"
    else:
        skipped = "skipped (--no-compress)"
    start = _announce(
        "compress",
        f"{model_path} -> {out_dir / 'compressed.keras'}" if compress_options is not None else skipped,
    )
    keras_path, report["compress"] = compress_stage(model, model_path, dataset, out_dir, compress_options)
    _timed(report, "compress", start)
    if compress_options is not None:
        from toolchain.compress.report import print_report

        print_report(report["compress"])

    if given == "tflite":
        tflite_path = model_path
        _announce("convert", f"skipped ({model_path} is already a .tflite)")
        report["convert"] = {"skipped": True, "tflite": str(model_path)}
    else:
        tflite_path = out_dir / "model.tflite"
        start = _announce("convert", f"full int8 -> {tflite_path}")
        report["convert"] = convert_file(keras_path, data_path, tflite_path)
        _timed(report, "convert", start)

    gen_dir = out_dir / "gen"
    start = _announce("codegen", f"C sources -> {gen_dir}")
    report["codegen"] = codegen.generate(tflite_path, gen_dir, prefix=prefix, dsp=board.has_dsp)
    _timed(report, "codegen", start)

    start = _announce("build", f"PlatformIO firmware for {board.id}")
    report["build"] = firmware.build(gen_dir, board)
    _timed(report, "build", start)
    _say_sizes(report["build"])

    where = "in QEMU" if board.is_emulated else f"on {port or 'the board'}"
    start = _announce("bench", f"{where}: latency, RAM, every test sample against TFLite Micro")
    measured = _measure(gen_dir, board, data_path, label="compressed", **measure)
    report.update(measured)
    _timed(report, "bench", start)
    if compress_options is not None:
        start = _announce("bench", f"the original int8 model on {board.id}, for the side-by-side report")
        report["original"] = _original_stages(
            model_path, data_path, board, out_dir / "original", prefix, measure
        )
        report["comparison"] = comparison(report)
        _timed(report, "original", start)
    write_json_report(out_dir / "report.json", report)
    return report
