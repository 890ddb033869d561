"""toolchain.oracle: TFLite Micro outputs and arena size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.errors import DataError, ModelError


@pytest.fixture(scope="module")
def mlp_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    from toolchain.convert import convert_model

    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]
    )
    x = np.random.default_rng(2).normal(size=(64, 16)).astype(np.float32)
    path = tmp_path_factory.mktemp("oracle") / "mlp.tflite"
    path.write_bytes(convert_model(model, x, samples=64))
    return path


def test_outputs_are_close_to_litert_and_deterministic(mlp_tflite: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(3).integers(-128, 128, size=(20, 16), dtype=np.int8)
    (ours,) = oracle.run(mlp_tflite, x)
    assert ours.shape == (20, 4) and ours.dtype == np.int8
    np.testing.assert_array_equal(ours, oracle.run(mlp_tflite.read_bytes(), x)[0])
    lite = Interpreter(model_path=str(mlp_tflite))
    lite.allocate_tensors()
    inp, out = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]
    ref = []
    for sample in x:
        lite.set_tensor(inp, sample[np.newaxis])
        lite.invoke()
        ref.append(lite.get_tensor(out)[0])
    # LiteRT rounds once, TFLM twice: they may differ by a step on ties, never more.
    assert np.abs(ours.astype(int) - np.array(ref, int)).max() <= 2
    assert len({row.tobytes() for row in ours}) > 1


def test_float_samples_are_quantized_with_the_input_parameters(mlp_tflite: Path) -> None:
    x = np.random.default_rng(4).normal(size=(5, 16)).astype(np.float32)
    from toolchain.codegen.graph import parse

    t = parse(mlp_tflite).inputs[0]
    q = oracle.quantize_input(x, float(t.scale[0]), int(t.zero_point[0]))
    np.testing.assert_array_equal(oracle.run(mlp_tflite, x)[0], oracle.run(mlp_tflite, q)[0])


def test_arena_usage_is_reported(mlp_tflite: Path) -> None:
    usage = oracle.arena_usage(mlp_tflite)
    assert usage.total == usage.head + usage.tail
    assert usage.head >= 16 + 32  # input and hidden activations live at the same time
    assert usage.tail > 0


def test_errors_name_the_problem(mlp_tflite: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        oracle.run(tmp_path / "missing.tflite", np.zeros((1, 16), np.int8))
    with pytest.raises(DataError, match=r"samples have shape \(3,\); the model's input 0 expects \(16,\)"):
        oracle.run(mlp_tflite, np.zeros((1, 3), np.int8))
