"""Benchmark of the compress stage on scikit-learn's digits (real data, bundled, no download).

For a Dense MLP and a small CNN, at several parameter budgets: parameters, MACs, int8
flash estimate, float and int8 test accuracy before and after fine-tuning, the weight
reduction of the layer kind that matters (Dense for the MLP, Conv2D for the CNN), and the
time the compression itself takes (fine-tuning excluded). Also the textbook check: a
1024->512 Dense at rank 64 holds (1024+512)*64 weights.

Targets (issue 3): MLP dense weights >= 4x smaller with <= 1 point of accuracy lost after
fine-tuning; CNN convolution weights >= 3x smaller with <= 1.5 points lost.

    python -m benchmarks.bench_compress --out build/bench/bench_compress [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

MLP_BUDGETS = (0.5, 0.25, 0.2)
CNN_BUDGETS = (0.5, 0.3, 0.25)
TARGETS = {"mlp": {"ratio": 4.0, "max_drop": 0.01}, "cnn": {"ratio": 3.0, "max_drop": 0.015}}


def _digits(out_dir: Path):
    from toolchain.deploy.demo import make_digits_dataset

    return make_digits_dataset(out_dir / "digits.npz")


def _as_images(dataset):
    from toolchain.data import Dataset

    return Dataset(
        dataset.path,
        dataset.x_train.reshape(-1, 8, 8, 1),
        dataset.y_train,
        dataset.x_test.reshape(-1, 8, 8, 1),
        dataset.y_test,
    )


def build_cnn(seed: int = 0) -> Any:
    """A small digits CNN: three 3x3 convolutions and a Dense classifier."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv_2"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv_3"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, activation="softmax", name="classes"),
        ],
        name="digits_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _train(model: Any, dataset, epochs: int) -> Any:
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=32, verbose=0, validation_split=0.1)
    return model


def _kind_weights(model: Any, class_name: str) -> int:
    return int(
        sum(layer.get_weights()[0].size for layer in model.layers if type(layer).__name__ == class_name)
    )


def _int8_accuracy(model: Any, dataset) -> float:
    from toolchain.convert import convert_model, evaluate

    flatbuffer = convert_model(model, dataset.x_train)
    return float(evaluate(model, flatbuffer, dataset)["int8"]["accuracy"]), len(flatbuffer)


def _measure(name, model, dataset, budgets, method, epochs, kind) -> list[dict]:
    from toolchain.compress import compress

    rows = []
    base_int8, base_tflite = _int8_accuracy(model, dataset)
    base_kind = _kind_weights(model, kind)
    for budget in budgets:
        small, report = compress(model, dataset, method=method, target_params=budget, finetune_epochs=epochs)
        int8_acc, tflite_bytes = _int8_accuracy(small, dataset)
        acc = report["accuracy"]
        rows.append(
            {
                "model": name,
                "method": method,
                "target_params": budget,
                "params_before": report["params"]["before"],
                "params_after": report["params"]["after"],
                "macs_before": report["macs"]["before"],
                "macs_after": report["macs"]["after"],
                "int8_flash_before": report["int8_flash_bytes"]["before"],
                "int8_flash_after": report["int8_flash_bytes"]["after"],
                "tflite_bytes_before": base_tflite,
                "tflite_bytes_after": tflite_bytes,
                f"{kind.lower()}_weights_before": base_kind,
                f"{kind.lower()}_weights_after": _kind_weights(small, kind),
                "weights_ratio": base_kind / max(_kind_weights(small, kind), 1),
                "float_before": acc["original"],
                "float_factored": acc["factored"],
                "float_finetuned": acc.get("finetuned"),
                "int8_before": base_int8,
                "int8_after": int8_acc,
                "ranks": {
                    row["name"]: row["ranks"] for row in report["layers"] if row["status"] == "factored"
                },
                "methods": {
                    row["name"]: row["method"] for row in report["layers"] if row["status"] == "factored"
                },
                "compress_seconds": report["compress_seconds"],
                "epochs_run": report.get("finetune", {}).get("epochs_run", 0),
            }
        )
    return rows


def _textbook() -> dict:
    import keras

    from toolchain.compress.layers import describe_layer, factorize

    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(512, name="big")])
    info = describe_layer(0, model.get_layer("big"))
    start = time.perf_counter()
    result = factorize(info, "svd", (64,))
    return {
        "params_before": info.params,
        "params_after": result.params,
        "weights_after": result.params - 512,
        "expected_weights": (1024 + 512) * 64,
        "seconds": time.perf_counter() - start,
    }


def _verdict(rows: list[dict], target: dict) -> dict:
    """The best row meeting the accuracy target, and whether it also meets the size target."""
    ok = [
        r
        for r in rows
        if r["float_finetuned"] is not None
        and r["float_before"] - r["float_finetuned"] <= target["max_drop"] + 1e-9
    ]
    best = max(ok, key=lambda r: r["weights_ratio"], default=None)
    return {
        "target_ratio": target["ratio"],
        "max_drop": target["max_drop"],
        "best_ratio_within_drop": best["weights_ratio"] if best else None,
        "met": bool(best and best["weights_ratio"] >= target["ratio"]),
    }


def run(out_dir: Path, quick: bool = False) -> dict:
    """Train both models, compress them at each budget, and write `out_dir/bench_compress.json`."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from toolchain.fileio import write_json_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = _digits(out_dir)
    images = _as_images(dataset)
    train_epochs, tune_epochs = (15, 8) if quick else (60, 40)
    from toolchain.deploy.demo import build_mlp

    mlp = _train(build_mlp(64, 10), dataset, train_epochs)
    cnn = _train(build_cnn(), images, train_epochs // 2 if quick else 40)
    mlp_budgets = MLP_BUDGETS[1:2] if quick else MLP_BUDGETS
    cnn_budgets = CNN_BUDGETS[1:2] if quick else CNN_BUDGETS
    mlp_rows = _measure("mlp", mlp, dataset, mlp_budgets, "svd", tune_epochs, "Dense")
    cnn_rows = _measure("cnn", cnn, images, cnn_budgets, "auto", tune_epochs, "Conv2D")
    results = {
        "quick": quick,
        "rows": mlp_rows + cnn_rows,
        "textbook_dense_1024x512_rank64": _textbook(),
        "targets": {"mlp": _verdict(mlp_rows, TARGETS["mlp"]), "cnn": _verdict(cnn_rows, TARGETS["cnn"])},
    }
    write_json_report(out_dir / "bench_compress.json", results)
    print_table(results)
    return results


def print_table(results: dict) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    table = Table(title="tinyrank compress on digits (float / int8 test accuracy)")
    for column in (
        "model",
        "budget",
        "params",
        "MACs",
        "weights x",
        "float before",
        "factored",
        "fine-tuned",
        "int8 before",
        "int8 after",
        "compress s",
    ):
        table.add_column(column, justify="right")
    for r in results["rows"]:
        table.add_row(
            f"{r['model']} ({r['method']})",
            f"{r['target_params']:.2f}",
            f"{r['params_before']:,} -> {r['params_after']:,}",
            f"{r['macs_before']:,} -> {r['macs_after']:,}",
            f"{r['weights_ratio']:.2f}",
            f"{r['float_before']:.2%}",
            f"{r['float_factored']:.2%}",
            f"{r['float_finetuned']:.2%}",
            f"{r['int8_before']:.2%}",
            f"{r['int8_after']:.2%}",
            f"{r['compress_seconds']:.2f}",
        )
    console = make_console()  # plain in logs and CI (no escapes), and wide enough for the table
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table)
    tb = results["textbook_dense_1024x512_rank64"]
    console.print(
        f"textbook: 1024->512 Dense at rank 64: {tb['weights_after']:,} weights "
        f"(expected {tb['expected_weights']:,})"
    )
    for name, verdict in results["targets"].items():
        console.print(
            f"{name}: best weight reduction within {verdict['max_drop']:.1%} accuracy loss: "
            f"{verdict['best_ratio_within_drop']}x (target {verdict['target_ratio']}x) -> "
            f"{'met' if verdict['met'] else 'NOT met'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_compress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_compress"))
    parser.add_argument("--quick", action="store_true", help="one budget per model, fewer epochs")
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
