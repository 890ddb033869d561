"""Small int8 models for the codegen tests: converted with TF's converter, then generated, with the
random inputs the tests feed them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def int8_samples(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """n random int8 inputs of `shape` (no batch dimension)."""
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape), dtype=np.int8)


def convert_each(folder: Path, specs: dict[str, tuple], build: Callable[..., Any]) -> dict[str, Path]:
    """`build(*spec)` for every spec (spec[0] is the input shape), converted to full int8 in
    `folder` with 16 normal calibration samples: {name: .tflite path}."""
    from benchmarks.mlperf_tiny import convert

    rng = np.random.default_rng(0)
    paths = {}
    for name, spec in specs.items():
        x = rng.normal(size=(16, *spec[0])).astype(np.float32)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert(build(*spec), x))
    return paths


def generated_with_dataset(
    out: Path, model: Any, x: np.ndarray, classes: int, test: int = 20
) -> tuple[Path, Path]:
    """`model` converted (calibrated on x) and generated into out/gen, with x as a data set whose
    last `test` samples are the test split (random labels: the tests compare outputs, not
    accuracy): (codegen folder, data set)."""
    from toolchain import codegen
    from toolchain.convert import convert_model
    from toolchain.data import save_dataset

    (out / "model.tflite").write_bytes(convert_model(model, x, samples=64))
    codegen.generate(out / "model.tflite", out / "gen")
    y = np.random.default_rng(1).integers(0, classes, size=len(x))
    train = len(x) - test
    data = save_dataset(
        out / "data.npz", x_train=x[:train], y_train=y[:train], x_test=x[train:], y_test=y[train:]
    )
    return out / "gen", data
