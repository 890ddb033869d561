"""`make demo-kws`: keyword spotting from synthesized speech to a measured, compressed Cortex-M model.

1. The data set (cached): espeak-ng speech with noise -> 49x10 MFCCs (see `dataset.py`).
2. The model (cached): MLPerf Tiny's DS-CNN, trained briefly on the fixed training voices.
3. The compressed model: the budget search factors the pointwise convolutions (SVD) and the first
   convolution (Tucker-2) to a parameter budget, fine-tunes, then convert -> codegen -> build ->
   bench on the board; the original int8 model goes through the same stages beside it.
4. A before/after table (and `OUT/kws_report.json`), and the compressed model as an Arduino
   library zip (`OUT/tinyrank_kws.zip`).

One call of `toolchain.deploy.deploy`, the pipeline `tinyrank deploy` runs, measures both
models on the same board in the same run, so the two columns are measured the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from examples.kws.dataset import LABELS, Settings, load_or_generate
from toolchain.errors import TinyrankError

# Half the parameters, chosen per layer by the budget search; Tucker-2 for the first (10x4)
# convolution, SVD for the 1x1 ones (the depthwise and Dense layers have nothing to factor).
KWS_COMPRESSION = {"method": "tucker", "target_params": 0.5, "finetune_epochs": 12, "verbose": 1}


def _say(text: str) -> None:
    print(f"demo-kws: {text}", flush=True)


def dataset(out: Path, per_class: int) -> tuple[Path, dict]:
    from toolchain.console import progress_bar

    _say("keyword data set: espeak-ng speech, noise, MFCC features (cached after the first run)")
    with progress_bar() as progress:
        task = progress.add_task("synthesizing clips", total=None)
        steps: list[int] = []

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            if not progress.console.is_terminal and done * 10 // total > len(steps):
                steps.append(done)
                _say(f"  {done}/{total} clips")

        path, facts = load_or_generate(out / "kws.npz", Settings(per_class=per_class), progress=report)
    _say(
        f"  {facts['train']} training and {facts['test']} test clips of {len(LABELS)} classes, "
        f"{'cached' if facts['cached'] else 'made'} ({facts['seconds']} s to generate)"
    )
    return path, facts


def trained_model(out: Path, data_path: Path, facts: dict, epochs: int) -> Path:
    """The DS-CNN, trained once per data set and epoch count (cached beside the data)."""
    from examples.kws.model import train
    from toolchain.data import load_dataset
    from toolchain.fileio import atomic_write_text
    from toolchain.models import load_keras_model, save_keras_model

    model_path, stamp_path = out / "ds_cnn.keras", out / "ds_cnn.json"
    stamp = {"data": facts["settings"], "epochs": epochs}
    if model_path.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        load_keras_model(model_path)  # fails clearly if the cache is corrupt
        _say(f"using the DS-CNN trained earlier ({model_path})")
        return model_path
    _say(f"training the DS-CNN for {epochs} epochs")
    save_keras_model(train(load_dataset(data_path), len(LABELS), epochs), model_path)
    atomic_write_text(stamp_path, json.dumps(stamp) + "\n")
    return model_path


def measured(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of one deploy report that the before/after table compares."""
    bench, build, codegen = report.get("bench") or {}, report.get("build") or {}, report["codegen"]
    return {
        "accuracy_float": report["convert"]["float"]["accuracy"],
        "accuracy_int8": report["convert"]["int8"]["accuracy"],
        "accuracy_device": bench.get("accuracy"),
        "macs": codegen["macs"],
        "weights_bytes": codegen["weights_bytes"],
        "flash_bytes": build.get("flash_bytes"),
        "ram_bytes": bench.get("ram_bytes", build.get("static_ram_bytes")),
        "instructions": (bench.get("latency") or {}).get("median"),
        "matches": f"{bench.get('matches')}/{bench.get('samples')}",
    }


def comparison(original: dict, compressed: dict) -> dict[str, Any]:
    params = compressed["compress"]["params"]
    before, after = measured(original), measured(compressed)
    before["params"], after["params"] = params["before"], params["after"]
    return {"original": before, "compressed": after}


def print_table(result: dict[str, Any], board: str) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    before, after = result["original"], result["compressed"]
    table = Table(title=f"keyword spotting (DS-CNN) on {board}: original int8 vs compressed int8")
    for column, justify in (
        ("", "left"),
        ("original", "right"),
        ("compressed", "right"),
        ("change", "right"),
    ):
        table.add_column(column, justify=justify)

    def percent(key: str, label: str) -> None:
        a, b = before[key], after[key]
        if a is None or b is None:
            return
        table.add_row(label, f"{a:.2%}", f"{b:.2%}", f"{(b - a) * 100:+.2f} pt")

    def count(key: str, label: str) -> None:
        a, b = before[key], after[key]
        if a is None or b is None:
            return
        table.add_row(label, f"{a:,}", f"{b:,}", f"{b / a:.2f}x")

    percent("accuracy_float", "accuracy, float (Keras)")
    percent("accuracy_int8", "accuracy, int8 (host)")
    percent("accuracy_device", "accuracy, int8 (on device)")
    count("params", "parameters (Keras, batch norm included before folding)")
    count("weights_bytes", "int8 weights + int32 biases (bytes)")
    count("macs", "MACs per inference")
    count("flash_bytes", "flash (bytes)")
    count("ram_bytes", "RAM: static + stack high-water (bytes)")
    count("instructions", "instructions per inference (median)")
    table.add_row("outputs match the host reference", before["matches"], after["matches"], "")
    make_console().print(table)


def export_library(gen_dir: Path, data_path: Path, out_zip: Path) -> None:
    from toolchain.export import export_arduino, model_library

    lib = model_library(gen_dir, name="tinyrank_kws", data=data_path, labels=",".join(LABELS))
    export_arduino(lib, out_zip)
    _say(f"Arduino library of the compressed model: {out_zip}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.kws.demo", description=__doc__)
    parser.add_argument("--board", default="qemu_m4", help="board id (default qemu_m4, emulated)")
    parser.add_argument(
        "--out", type=Path, default=Path("build/kws"), help="working folder (default build/kws)"
    )
    parser.add_argument("--epochs", type=int, default=25, help="training epochs of the DS-CNN (default 25)")
    parser.add_argument("--per-class", type=int, default=400, help="clips per class (default 400)")
    args = parser.parse_args(argv)
    try:
        from toolchain.deploy.pipeline import deploy
        from toolchain.fileio import write_json_report

        started = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        data_path, facts = dataset(args.out, args.per_class)
        model_path = trained_model(args.out, data_path, facts, args.epochs)
        _say("compressed model: budget search, fine-tuning, then convert, codegen, build, bench;")
        _say("the original int8 model is built and measured beside it on the same board")
        compressed = deploy(
            model_path,
            data_path,
            args.board,
            args.out / "compressed",
            compress_options=KWS_COMPRESSION,
            prefix="kws",
        )
        original = compressed["original"]
        result = comparison(original, compressed)
        export_library(args.out / "compressed" / "gen", data_path, args.out / "tinyrank_kws.zip")
        result.update(board=args.board, dataset=facts, seconds=round(time.perf_counter() - started, 1))
        write_json_report(args.out / "kws_report.json", result)
        print_table(result, args.board)
    except TinyrankError as exc:
        print(f"tinyrank: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # espeak-ng missing or failing
        print(f"demo-kws: error: {exc}", file=sys.stderr)
        return 2
    bench = compressed.get("bench") or {}
    return 0 if bench.get("matches") == bench.get("samples") else 1


if __name__ == "__main__":
    sys.exit(main())
