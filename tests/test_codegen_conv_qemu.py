"""CONV_2D through the matmul loops (im2col columns as matmul rows) stays bit-exact on Cortex-M.

One model chains the geometries the column gather handles differently: a first layer over one
channel (10x4, stride 2), a 3x3 over three channels with an odd pixel count (the last pixel
runs alone; edge pixels gather tap by tap, inner ones a kernel row per copy), a 5x5 with a
clamped activation (ReLU6, not the full int8 range), a VALID 2x3 stride 2 over channels that
are not a multiple of four, and a strided 1x1 (not pointwise: it takes the im2col
path); the first two run the first-layer kernel (tr_conv_first_int8: one and three input
channels). (TF's converter turns a dilated Conv2D into SPACE_TO_BATCH_ND around a plain one; CONV_2D's
own dilation factors are tested on the host by the random-graph test.) It is built for the
Cortex-M4 (DSP path), M3 and M0 (plain C path) QEMU boards, and every test sample's output
must equal TFLite Micro's on the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.helpers.int8_models import generated_with_dataset

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(600)]


def _conv_model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(11)
    x = keras.Input((13, 9, 1))
    a = layers.Conv2D(6, (10, 4), strides=2, padding="same", activation="relu")(x)  # 7x5x6
    b = layers.Conv2D(5, 3, padding="same")(layers.Conv2D(3, 1)(a))  # 7x5: 35 pixels, 3 channels in
    c = layers.Conv2D(7, 5, padding="same", activation="relu6")(b)
    d = layers.Conv2D(9, (2, 3), strides=2, padding="valid", activation="relu")(c)  # 3x2x9
    e = layers.Conv2D(4, 1, strides=2)(d)  # 2x1x4
    return keras.Model(x, layers.Flatten()(e))


@pytest.fixture(scope="module")
def conv_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(codegen folder, data set) of the convolution chain."""
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse

    out = tmp_path_factory.mktemp("conv_qemu")
    x = np.random.default_rng(3).normal(0.2, 1.2, size=(70, 13, 9, 1)).astype(np.float32)
    gen, data = generated_with_dataset(out, _conv_model(), x, classes=4)
    kernels = [op.call.function for op in lower_graph(parse(out / "model.tflite")).ops if op.call]
    # the 1x1 stride-1 one is a FULLY_CONNECTED; those over one and three channels run the first-layer kernel
    assert kernels.count("tr_conv_int8") == 3 and kernels.count("tr_conv_first_int8") == 2, kernels
    return gen, data


@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3", "qemu_m0"])  # DSP path; plain C on M3 and M0
def test_conv_geometries_are_bit_exact_in_qemu(conv_chain: tuple[Path, Path], board: str) -> None:
    from toolchain.bench.measure import run_benchmark

    gen, data = conv_chain
    build_checked(gen, board)
    report = run_benchmark(gen, board, runs=1, dataset=data)
    assert report["samples"] == 20
    assert report["matches"] == 20 and report["mismatches"] == []
