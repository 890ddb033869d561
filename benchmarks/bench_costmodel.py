"""Cost-model benchmark: what factored layers cost per MAC on each core, how well the cost
model predicts calls it was not fitted on, and latency budgets asked against measured.

Three tables, all measured in QEMU with `-icount shift=0` (instructions, exact to +-4):
1. per core (qemu_m4 DSP path, qemu_m3 plain C, qemu_m33): instructions per MAC of a dense
   layer and of its factored form, for the shapes of the digits MLP and of a DS-CNN's
   pointwise and 3x3 convolutions (target: factored <= 1.05x dense per MAC);
2. per core: the cost model's prediction against the measurement on the held-out models
   of `toolchain.firmware.costgrid` (targets: 10% per op, 5% per model);
3. the digits MLP and a depthwise-separable CNN trained on the digits, compressed with
   `--target-latency 0.5 --board qemu_m4` (0.6, then 0.7, where the search refuses a budget below
   what the layers it cannot factor cost): budget asked, predicted, measured.

`python -m benchmarks.bench_costmodel --out build/bench/costmodel [--quick]`
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.fileio import write_json_report
from toolchain.firmware.costfit import BOARDS, generate_model, measure_calls

# (name, dense layer, factored layer) as Keras layer builders on the same input.
SHAPES = (
    ("digits dense_1 64->256, rank 16", (64,), "dense", 256, 16),
    ("digits dense_2 256->128, rank 16", (256,), "dense", 128, 16),
    ("digits dense_2 256->128, rank 32", (256,), "dense", 128, 32),
    ("DS-CNN pointwise 64->64 on 25x5, rank 16", (25, 5, 64), "pointwise", 64, 16),
    ("3x3 conv 32->32 on 12x12, Tucker 8:8", (12, 12, 32), "conv", 32, 8),
)


def _layer_model(input_shape, kind: str, outputs: int, rank: int | None):
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input(input_shape)
    if kind == "dense":
        x = L.Dense(rank, use_bias=False)(inp) if rank else inp
        out = L.Dense(outputs, activation="relu")(x)
    elif kind == "pointwise":
        x = L.Conv2D(rank, 1, use_bias=False)(inp) if rank else inp
        out = L.Conv2D(outputs, 1, activation="relu")(x)
    elif rank:
        x = L.Conv2D(rank, 1, use_bias=False)(inp)
        x = L.Conv2D(rank, 3, padding="same", use_bias=False)(x)
        out = L.Conv2D(outputs, 1, activation="relu")(x)
    else:
        out = L.Conv2D(outputs, 3, padding="same", activation="relu")(inp)
    return keras.Model(inp, out, name=f"{kind}_{outputs}_{rank or 'dense'}")


def _per_mac(gen: Path, board: str) -> float:
    import json

    info = json.loads((gen / "model_info.json").read_text())
    return sum(call["count"] for call in measure_calls(gen, board)) / info["macs"]


def factored_per_mac(work: Path, cores) -> list[dict[str, Any]]:
    rows = []
    for name, shape, kind, outputs, rank in SHAPES:
        dense = generate_model(_layer_model(shape, kind, outputs, None), work, f"d{len(rows)}")
        factored = generate_model(_layer_model(shape, kind, outputs, rank), work, f"f{len(rows)}")
        row: dict[str, Any] = {"shape": name}
        for core in cores:
            d, f = _per_mac(dense, BOARDS[core]), _per_mac(factored, BOARDS[core])
            row[core] = {"dense": round(d, 3), "factored": round(f, 3), "ratio": round(f / d, 3)}
        rows.append(row)
    return rows


def prediction_accuracy(work: Path, cores) -> dict[str, Any]:
    from toolchain.firmware.costgrid import held_out
    from toolchain.firmware.costmodel import load_cost_model

    gens = [generate_model(model, work, model.name) for model in (build() for build in held_out())]
    result = {}
    for core in cores:
        model = load_cost_model(BOARDS[core])
        ops, totals = [], []
        for gen in gens:
            calls = measure_calls(gen, BOARDS[core])
            predicted = [model.predict_call(c["kernel"], c["shapes"])[0] for c in calls]
            ops += [abs(p - c["count"]) / c["count"] for p, c in zip(predicted, calls, strict=True)]
            measured = sum(c["count"] for c in calls)
            totals.append({"model": gen.name, "predicted": round(sum(predicted)), "measured": measured})
        for t in totals:
            t["error"] = round((t["predicted"] - t["measured"]) / t["measured"], 4)
        result[core] = {
            "ops": len(ops),
            "op_error_max": round(max(ops), 4),
            "op_error_mean": round(float(np.mean(ops)), 4),
            "models": totals,
        }
    return result


def _digits_cnn(classes: int = 10):
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="digits_ds_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def latency_budgets(work: Path, fractions: tuple[float, ...], epochs: int) -> list[dict[str, Any]]:
    """Each model compressed to the first of `fractions` of its predicted instructions that the
    search can reach (a budget below the cost of the layers it cannot factor, such as the CNN's
    depthwise ones, is refused with a BudgetError: recorded, then the next fraction is tried)."""
    from toolchain.compress import compress
    from toolchain.data import Dataset
    from toolchain.deploy.demo import make_digits_dataset, train_mlp
    from toolchain.errors import BudgetError

    digits = make_digits_dataset(work / "digits.npz")
    images = Dataset(
        digits.path,
        digits.x_train.reshape(-1, 8, 8, 1),
        digits.y_train,
        digits.x_test.reshape(-1, 8, 8, 1),
        digits.y_test,
    )
    cnn = _digits_cnn()
    cnn.fit(images.x_train, images.y_train, epochs=epochs, batch_size=32, verbose=0)
    rows = []
    for model, data in ((train_mlp(digits, epochs), digits), (cnn, images)):
        for fraction in fractions:
            try:
                small, report = compress(
                    model, data, board="qemu_m4", target_latency=fraction, finetune_epochs=max(1, epochs // 4)
                )
            except BudgetError as err:
                rows.append({"model": model.name, "fraction": fraction, "refused": str(err)})
                continue
            rows.append(
                {
                    "model": model.name,
                    "fraction": fraction,
                    **_measure_budget(work, model, small, report, data),
                }
            )
            break
    return rows


def _measure_budget(work: Path, model: Any, small: Any, report: dict[str, Any], data: Any) -> dict[str, Any]:
    """The compressed model built and run in QEMU beside what the budget asked and predicted."""
    from toolchain.bench.measure import run_benchmark
    from toolchain.codegen import generate
    from toolchain.convert import convert_model
    from toolchain.firmware import build

    gen = work / model.name
    (work / f"{model.name}.tflite").write_bytes(convert_model(small, data.x_train))
    generate(work / f"{model.name}.tflite", gen)
    build(gen, "qemu_m4")
    bench = run_benchmark(gen, "qemu_m4", runs=3, dataset=data, max_samples=100)
    budget = report["budget"]
    measured = bench["latency"]["median"]
    return {
        "original_predicted": budget["original_instructions"],
        "budget": budget["limits"]["instructions"],
        "predicted": budget["predicted_instructions"],
        "measured": measured,
        "measured_over_budget": round(measured / budget["limits"]["instructions"], 3),
        "predicted_error": round((budget["predicted_instructions"] - measured) / measured, 4),
        "accuracy_original": report["accuracy"]["original"],
        "accuracy_compressed_device": bench["accuracy"],
    }


def _print(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for core in results["cores"]:
        table = Table(
            title=f"instructions per MAC on {BOARDS[core]}: factored against dense (target <= 1.05x)"
        )
        for column in ("shape", "dense", "factored", "ratio"):
            table.add_column(column, justify="left" if column == "shape" else "right")
        for row in results["per_mac"]:
            cell = row[core]
            table.add_row(row["shape"], str(cell["dense"]), str(cell["factored"]), f"{cell['ratio']:.2f}x")
        console.print(table)
    table = Table(title="cost model on held-out shapes (targets: 10% per op, 5% per model)")
    for column in ("core", "ops", "max op error", "mean op error", "models: predicted / measured"):
        table.add_column(
            column, justify="left" if column in ("core", "models: predicted / measured") else "right"
        )
    for core, r in results["prediction"].items():
        models = "; ".join(
            f"{m['model']} {m['predicted']:,} / {m['measured']:,} ({m['error']:+.1%})" for m in r["models"]
        )
        table.add_row(core, str(r["ops"]), f"{r['op_error_max']:.1%}", f"{r['op_error_mean']:.1%}", models)
    console.print(table)
    table = Table(title="compressed to a latency budget on qemu_m4 (instructions)")
    for column in (
        "model",
        "asked",
        "original (predicted)",
        "budget",
        "predicted",
        "measured",
        "measured/budget",
        "accuracy",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results["budgets"]:
        if "refused" in r:
            table.add_row(r["model"], f"{r['fraction']:.0%}", r["refused"], *[""] * 5)
            continue
        table.add_row(
            r["model"],
            f"{r['fraction']:.0%}",
            f"{r['original_predicted']:,}",
            f"{r['budget']:,}",
            f"{r['predicted']:,}",
            f"{r['measured']:,}",
            f"{r['measured_over_budget']:.3f}",
            f"{r['accuracy_original']:.2%} -> {r['accuracy_compressed_device']:.2%}",
        )
    console.print(table)


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    """All three tables (`quick`: the M4 only, fewer training epochs); writes bench_costmodel.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cores = ("m4",) if quick else tuple(BOARDS)
    with tempfile.TemporaryDirectory(prefix="tinyrank-bench-costmodel-") as tmp:
        work = Path(tmp)
        results = {
            "cores": cores,
            "per_mac": factored_per_mac(work, cores),
            "prediction": prediction_accuracy(work, cores),
            "budgets": latency_budgets(work, fractions=(0.5, 0.6, 0.7), epochs=8 if quick else 30),
        }
    write_json_report(out / "bench_costmodel.json", results)
    _print(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/bench/costmodel")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
