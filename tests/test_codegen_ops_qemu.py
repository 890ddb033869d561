"""The non-matmul kernels stay bit-exact on Cortex-M: one model chaining them, in QEMU.

The model strings PAD, AVERAGE_POOL_2D, MAX_POOL_2D, TANH, ADD (fused RELU), MEAN,
SUB and MUL (broadcast), HARD_SWISH, CONCATENATION, LOGISTIC, LEAKY_RELU, RELU6 and
SOFTMAX together. It is generated
once, built for the Cortex-M4 (DSP path), the Cortex-M3 and the Cortex-M0 (no DSP) QEMU boards, and
every test sample's output must equal TFLite Micro's on the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.helpers.int8_models import generated_with_dataset

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(600)]

CHAIN_OPS = {
    "PAD",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "TANH",
    "ADD",
    "MEAN",
    "SUB",
    "MUL",
    "HARD_SWISH",
    "CONCATENATION",
    "LOGISTIC",
    "LEAKY_RELU",
    "RELU6",
    "SOFTMAX",
}


def _chain_model():
    import keras
    from keras import layers

    x = keras.Input((8, 8, 3))
    a = layers.AveragePooling2D(2, 1, padding="same")(layers.ZeroPadding2D(1)(x))
    b = layers.MaxPooling2D(2)(a)
    d = layers.ReLU()(layers.Add()([b, layers.Activation("tanh")(b)]))
    mean = layers.GlobalAveragePooling2D(keepdims=True)(d)
    e = layers.Activation("hard_swish")(layers.Multiply()([layers.Subtract()([d, mean]), mean]))
    f = layers.Concatenate()([e, layers.MaxPooling2D(2, 1, padding="same")(e)])
    g = layers.LeakyReLU(negative_slope=0.2)(layers.Activation("sigmoid")(f))
    g = layers.ReLU(6.0)(layers.GlobalAveragePooling2D()(g))
    return keras.Model(x, layers.Softmax()(g))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(codegen folder, data set) of the op chain."""
    from toolchain.codegen.graph import parse

    out = tmp_path_factory.mktemp("ops_qemu")
    x = np.random.default_rng(5).normal(0.3, 1.5, size=(80, 8, 8, 3)).astype(np.float32)
    gen, data = generated_with_dataset(out, _chain_model(), x, classes=6)
    assert CHAIN_OPS <= {op.opcode for op in parse(out / "model.tflite").ops}
    return gen, data


@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3", "qemu_m0"])  # DSP path; generic on M3 and M0
def test_op_chain_is_bit_exact_in_qemu(chain, board, tmp_path):
    from toolchain.bench.measure import run_benchmark

    gen, data = chain
    build_checked(gen, board)
    report = run_benchmark(gen, board, runs=2, dataset=data)
    assert report["samples"] == 20
    assert report["matches"] == 20 and report["mismatches"] == []
