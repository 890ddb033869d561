"""Stage 2: Keras -> full-int8 TFLite, checked, with float and int8 accuracy side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli import main
from toolchain.convert import check_full_int8, convert_file, find_non_int8
from toolchain.errors import UnsupportedError


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, digits_mlp: Path, digits_npz: Path) -> dict:
    out = tmp_path_factory.mktemp("convert") / "mlp.tflite"
    return convert_file(digits_mlp, digits_npz, out)


def test_every_tensor_is_int8_or_int32(converted: dict) -> None:
    import tflite

    flatbuffer = Path(converted["tflite"]).read_bytes()
    assert find_non_int8(flatbuffer) == []
    graph = tflite.Model.GetRootAsModel(flatbuffer, 0).Subgraphs(0)
    io_types = {graph.Tensors(graph.Inputs(0)).Type(), graph.Tensors(graph.Outputs(0)).Type()}
    assert io_types == {tflite.TensorType.INT8}


def test_int8_accuracy_close_to_float(converted: dict) -> None:
    assert converted["split"] == "test" and converted["samples"] == 360
    float_acc, int8_acc = converted["float"]["accuracy"], converted["int8"]["accuracy"]
    assert float_acc > 0.9
    assert abs(float_acc - int8_acc) <= 0.02


def test_host_int8_quantizes_inputs_as_the_device_does(converted: dict) -> None:
    """Ties round half away from zero (TFLite Micro's QUANTIZE), not to even as numpy does."""
    from toolchain.codegen.quant import tflm_quantize
    from toolchain.convert.convert import Int8Model

    model = Int8Model(Path(converted["tflite"]).read_bytes())
    scale, zero_point = model.input["quantization"]
    halves = np.arange(6, dtype=np.float32) + np.float32(0.5)  # 0.5, 1.5, ... 5.5 steps above zero
    got = model.quantize(halves * np.float32(scale))
    assert np.array_equal(got, tflm_quantize(halves * np.float32(scale), scale, zero_point))
    assert (got.astype(np.int64) - zero_point).tolist() == [1, 2, 3, 4, 5, 6]  # np.round: 0, 2, 2, 4, 4, 6


def test_float_model_is_refused_naming_the_op() -> None:
    import keras
    import tensorflow as tf

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2, activation="softmax")]
    )
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(UnsupportedError) as info:
        check_full_int8(flatbuffer)
    message = str(info.value)  # every float op at once, each with its index
    assert message.startswith("3 ops kept non-int8 tensors"), message
    for op in ("op 0 (FULLY_CONNECTED): ", "op 1 (FULLY_CONNECTED): ", "op 2 (SOFTMAX): "):
        assert op in message and "FLOAT32" in message.split(op)[1].split(" | ")[0]


def test_cli_writes_tflite_and_report(tmp_path: Path, digits_mlp: Path, digits_npz: Path) -> None:
    out, report = tmp_path / "m.tflite", tmp_path / "r.json"
    assert (
        main(
            [
                "convert",
                str(digits_mlp),
                "--data",
                str(digits_npz),
                "--out",
                str(out),
                "--samples",
                "50",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    assert out.read_bytes()[4:8] == b"TFL3"
    assert data["tflite_bytes"] == out.stat().st_size and data["calibration_samples"] == 50


def test_cli_refuses_wrong_shape(tmp_path: Path, digits_mlp: Path, capsys: pytest.CaptureFixture) -> None:
    from toolchain.data import save_dataset

    bad = save_dataset(
        tmp_path / "bad.npz", x_train=np.zeros((4, 8, 8), np.float32), y_train=np.zeros(4, int)
    )
    assert main(["convert", str(digits_mlp), "--data", str(bad), "--out", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'x_train' has samples of shape (8, 8)" in err and "(64,)" in err
    assert not (tmp_path / "m.tflite").exists()


def test_cli_corrupt_model(tmp_path: Path, digits_npz: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["convert", str(bad), "--data", str(digits_npz), "--out", str(tmp_path / "m.tflite")]) == 2
    assert f"model file {bad}: not a .keras archive" in capsys.readouterr().err


def test_cli_never_writes_over_its_input(
    tmp_path: Path, digits_npz: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"keep me")
    assert main(["convert", str(model), "--data", str(digits_npz), "--out", str(model)]) == 2
    assert model.read_bytes() == b"keep me"
