"""The budget's flash and RAM predictions against the linked ELF: within 5% on every QEMU board.

Three shapes of model stress different parts: an MLP is mostly weights, a CNN mostly kernel
code and arena, and a model with a large input mostly the benchmark app's input buffer
(the part a prediction from the model alone would miss).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from toolchain.errors import BuildError
from toolchain.firmware import build, predict_usage
from toolchain.firmware.boards import list_boards

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def _mlp(keras):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(96, activation="relu"),
            keras.layers.Dense(48, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def _cnn(keras):
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, activation="relu"),
            keras.layers.Conv2D(16, 1, activation="relu"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )


def _large_input(keras):
    """A 96x96x3 image (27 KB of int8 input) through a strided convolution."""
    return keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            keras.layers.Conv2D(4, 4, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )


MODELS = {"mlp": _mlp, "cnn": _cnn, "large_input": _large_input}


@pytest.fixture(scope="module", params=sorted(MODELS))
def generated(request, tmp_path_factory) -> Path:
    import keras

    from toolchain.codegen import generate
    from toolchain.convert import convert_model

    keras.utils.set_random_seed(0)
    model = MODELS[request.param](keras)
    x = np.random.default_rng(0).normal(size=(16, *model.input_shape[1:])).astype("float32")
    root = tmp_path_factory.mktemp(request.param)
    (root / "model.tflite").write_bytes(convert_model(model, x, samples=16))
    generate(root / "model.tflite", root / "gen", tflm_arena=False)
    return root / "gen"


@pytest.mark.parametrize("board", [b.id for b in list_boards() if b.is_emulated])
def test_prediction_within_five_percent_of_the_elf(generated, board):
    usage = predict_usage(generated, board)
    if usage["flash_bytes"] > usage["flash_limit"] or usage["ram_bytes"] > usage["ram_limit"]:
        # Too big for this board (qemu_m0 has 16 KB of RAM): the linker script, which holds the
        # board's limits, must refuse the firmware the budget refuses.
        with pytest.raises(BuildError, match=r"exceed the (RAM|flash) budget"):
            build(generated, board, check=False, timeout_s=300)
        return
    report = build_checked(generated, board, timeout_s=300)
    # Shown with `pytest -s`: the measured errors, (predicted - actual) / actual.
    print(
        f"{generated.parent.name} {board}: flash {report['flash_prediction_error']:+.2%}, "
        f"static RAM {report['static_ram_prediction_error']:+.2%}"
    )
