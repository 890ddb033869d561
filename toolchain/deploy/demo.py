"""`make demo`: the whole pipeline on real data, from a fresh machine, in one command.

scikit-learn ships the UCI handwritten digits (1,797 8x8 images) inside its wheel, so the
demo trains on real data without downloading anything. The trained model is cached, so a
second run goes straight to compression and deployment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.data import Dataset, load_dataset, save_dataset
from toolchain.errors import TinyrankError

HIDDEN_UNITS = (256, 128)
# 30% of the Dense weights, chosen per layer by the budget search, then fine-tuned.
DEMO_COMPRESSION = {"method": "svd", "target_params": 0.3, "finetune_epochs": 20}


def make_digits_dataset(path: Path, seed: int = 0) -> Dataset:
    """Write the digits data set as the tinyrank `.npz` contract (pixels scaled to 0..1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    train, test = order[:split], order[split:]
    save_dataset(path, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    return load_dataset(path)


def build_mlp(inputs: int, classes: int, hidden: tuple[int, ...] = HIDDEN_UNITS, seed: int = 0) -> Any:
    """A plain Dense MLP: the kind of model whose weight matrices SVD shrinks well."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,), name="pixels")]
    for i, units in enumerate(hidden):
        layers.append(keras.layers.Dense(units, activation="relu", name=f"dense_{i + 1}"))
    layers.append(keras.layers.Dense(classes, activation="softmax", name="classes"))
    model = keras.Sequential(layers, name="digits_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def train_mlp(dataset: Dataset, epochs: int = 40, seed: int = 0) -> Any:
    model = build_mlp(dataset.x_train.shape[1], int(dataset.y_train.max()) + 1, seed=seed)
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=32, verbose=0, validation_split=0.1)
    return model


def prepare(out_dir: Path, epochs: int = 40) -> tuple[Path, Path]:
    """Data set and trained model in `out_dir`, reusing both when they are already there."""
    from toolchain.models import load_keras_model, save_keras_model

    data_path, model_path = out_dir / "digits.npz", out_dir / "model.keras"
    dataset = load_dataset(data_path) if data_path.exists() else make_digits_dataset(data_path)
    if model_path.exists():
        load_keras_model(model_path)  # fails clearly if the cache is corrupt
        print(f"demo: using the trained model cached at {model_path}")
    else:
        print(f"demo: training a {'-'.join(map(str, (64, *HIDDEN_UNITS, 10)))} MLP on scikit-learn's digits")
        save_keras_model(train_mlp(dataset, epochs), model_path)
    return model_path, data_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.deploy.demo", description=__doc__)
    parser.add_argument("--board", default="qemu_m4", help="board id (default qemu_m4, emulated)")
    parser.add_argument("--out", default="build/demo", type=Path, help="working folder (default build/demo)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs for the original model")
    parser.add_argument("--no-bench", action="store_true", help="stop after training (used by `make run`)")
    args = parser.parse_args(argv)
    try:
        model_path, data_path = prepare(args.out, args.epochs)
        if args.no_bench:
            return 0
        from toolchain.deploy.cli import print_deploy_summary
        from toolchain.deploy.pipeline import deploy

        report = deploy(
            model_path,
            data_path,
            args.board,
            args.out / args.board,
            compress_options={**DEMO_COMPRESSION, "board": args.board},
        )
        print_deploy_summary(report)
    except TinyrankError as exc:
        print(f"tinyrank: error: {exc}", file=sys.stderr)
        return 2
    return 0 if report["bench"]["matches"] == report["bench"]["samples"] else 1


if __name__ == "__main__":
    sys.exit(main())
