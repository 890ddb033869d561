"""bench's host reference on a model with float input and output (QUANTIZE/DEQUANTIZE edges).

The firmware takes and returns int8 codes; the reference must be TFLite Micro run on the
float samples, its float outputs turned back into codes, so that a correct device matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain.bench.reference import host_reference, output_codes
from toolchain.codegen import generate
from toolchain.codegen.quant import tflm_dequantize
from toolchain.codegen.verify import build_host, run_host
from toolchain.errors import DataError


@pytest.fixture(scope="module")
def float_edge_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    x = np.random.default_rng(3).normal(size=(48, 10)).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(12, activation="relu"), keras.layers.Dense(6)]
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("float_edges") / "float_edges.tflite"
    path.write_bytes(converter.convert())
    return path


def test_reference_codes_match_the_generated_c_on_float_samples(
    float_edge_model: Path, tmp_path: Path
) -> None:
    from toolchain.bench.measure import quantized_samples

    info = generate(float_edge_model, tmp_path / "gen")
    assert info["inputs"][0]["tflite_dtype"] == info["outputs"][0]["tflite_dtype"] == "float32"
    x = np.random.default_rng(4).normal(size=(40, 10)).astype(np.float32) * 2
    device = run_host(
        build_host(tmp_path / "gen", info, tmp_path / "host"), quantized_samples(x, info["inputs"][0]), info
    )
    reference = host_reference(float_edge_model, x, info)
    assert reference[0].dtype == np.int8
    np.testing.assert_array_equal(device[0], reference[0])
    assert len(np.unique(reference[0])) > 20  # the outputs really vary, so equality means something


def test_output_codes_invert_dequantize_for_every_code() -> None:
    codes = np.arange(-128, 128, dtype=np.int8)
    for scale, zero_point in [(0.0123, -7), (3.7e-5, 100), (0.5, 0), (0.0917, -128)]:
        edge = {"scale": scale, "zero_point": zero_point}
        np.testing.assert_array_equal(output_codes(tflm_dequantize(codes, scale, zero_point), edge), codes)


def test_int8_samples_for_a_float_input_are_refused(float_edge_model: Path, tmp_path: Path) -> None:
    info = generate(float_edge_model, tmp_path / "gen")
    with pytest.raises(DataError, match="takes float input"):
        host_reference(float_edge_model, np.zeros((2, 10), np.int8), info)
