"""Keras models that used to crash TensorFlow or mislead: NaN weights, a fixed-batch LSTM, labels
outside the model's classes. Each is refused with one line before the converter runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    root = tmp_path_factory.mktemp("bad_keras")
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    weights = dense.get_weights()
    weights[0][0, 0] = np.nan
    dense.set_weights(weights)
    dense.save(root / "nan.keras")
    lstm = keras.Sequential([keras.Input((5, 4), batch_size=1), keras.layers.LSTM(3), keras.layers.Dense(2)])
    lstm.save(root / "lstm.keras")
    ok = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    ok.save(root / "ok.keras")
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.savez(root / "flat.npz", x_train=x, y_train=np.array([0, 1, 2, 0, 1, 7]))
    np.savez(root / "seq.npz", x_train=np.zeros((6, 5, 4), np.float32), y_train=np.zeros(6, int))
    return root


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("nan.keras", "flat.npz", "layer 'dense.*' weight '.*' holds 1 NaN or Inf values"),
        ("lstm.keras", "seq.npz", "recurrent layer 'lstm.*' with a fixed batch size of 1"),
        ("ok.keras", "flat.npz", "'y_train' holds class 7; the model ok.keras has 3 outputs"),
    ],
)
def test_convert_refuses_with_one_line(files: Path, model: str, data: str, message: str, capsys) -> None:
    out = files / f"{model}.tflite"
    status = main(["convert", str(files / model), "--data", str(files / data), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists()
