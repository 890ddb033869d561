"""Keras models that used to crash TensorFlow or mislead: NaN weights, a fixed-batch LSTM, labels
outside the model's classes. Each is refused with one line before the converter runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import bad_inputs
from toolchain.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_keras")
    bad_inputs.keras_inputs(root)
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
