"""The generated C (model and kernels) compiles without a single warning under strict flags,
on the host gcc and with arm-none-eabi-gcc for the Cortex-M4 (DSP path) and the Cortex-M3
(plain C path): an MLP, a CNN (convolution, depthwise, pool, ADD, MEAN), fused factored
FULLY_CONNECTED pairs (one with a thin layer of 160 inputs: tr_thin_deep.c) and a fused Tucker
chain, which together use every kernel family the MLPerf Tiny models need.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from toolchain.codegen import generate

STRICT = [
    "-std=c99",
    "-O2",
    "-pedantic",
    "-Wall",
    "-Wextra",
    "-Wmissing-prototypes",
    "-Wconversion",
    "-Werror",
]
TARGETS = {
    "host": ["gcc"],
    "cortex-m4": ["arm-none-eabi-gcc", "-mthumb", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m3": ["arm-none-eabi-gcc", "-mthumb", "-mcpu=cortex-m3"],
}


def _mlp():
    import keras

    inp = keras.Input((20,))
    x = keras.layers.Dense(16, activation="relu")(inp)
    x = keras.layers.Dense(8)(x)
    return keras.Model(inp, keras.layers.Softmax()(x)), (20,)


def _cnn():
    import keras

    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Add()([x, y])
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(12, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(4)(x)), (12, 12, 3)


def _factored_pair():
    import keras

    inp = keras.Input((48,))
    x = keras.layers.Dense(6, use_bias=False)(inp)  # rank 6 between 48 and 40
    return keras.Model(inp, keras.layers.Dense(40, activation="relu")(x)), (48,)


def _deep_pair():
    import keras

    inp = keras.Input((160,))
    x = keras.layers.Dense(12, use_bias=False)(inp)  # 160 inputs: the thin loop's deep forms
    return keras.Model(inp, keras.layers.Dense(40, activation="relu")(x)), (160,)


def _tucker_chain():
    import keras

    L = keras.layers
    inp = keras.Input((8, 8, 16))
    x = L.Conv2D(4, 1, use_bias=False)(inp)
    x = L.Conv2D(4, 3, padding="same", use_bias=False)(x)
    return keras.Model(inp, L.Conv2D(16, 1, activation="relu")(x)), (8, 8, 16)


def _pointwise_pair():
    import keras

    inp = keras.Input((5, 3, 13))
    x = keras.layers.Conv2D(5, 1, use_bias=False)(inp)  # rank 5 between 13 and 10
    return keras.Model(inp, keras.layers.Conv2D(10, 1, activation="relu")(x)), (5, 3, 13)


def _spatial_pair():
    import keras

    L = keras.layers
    inp = keras.Input((9, 7, 6))
    x = L.Conv2D(3, (3, 1), padding="same", use_bias=False)(inp)
    return keras.Model(inp, L.Conv2D(8, (1, 3), padding="same", activation="relu")(x)), (9, 7, 6)


MODELS = {
    "mlp": _mlp,
    "cnn": _cnn,
    "factored_pair": _factored_pair,
    "deep_pair": _deep_pair,
    "pointwise_pair": _pointwise_pair,
    "spatial_pair": _spatial_pair,
    "tucker_chain": _tucker_chain,
}
PAIR_FORMS = {f"tr_fully_connected_factored{form}_int8" for form in ("", "_row", "_thin")}
FUSED_KERNEL = {
    "factored_pair": PAIR_FORMS,
    "deep_pair": PAIR_FORMS,
    "pointwise_pair": PAIR_FORMS,
    "spatial_pair": {"tr_conv_spatial_int8"},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    from benchmarks.mlperf_tiny import convert

    folder = tmp_path_factory.mktemp("strict")
    out = {}
    for name, build in MODELS.items():
        keras.utils.set_random_seed(1)
        model, shape = build()
        x = np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
        tflite = folder / f"{name}.tflite"
        tflite.write_bytes(convert(model, x))
        info = generate(tflite, folder / name, fuse=name != "mlp", tflm_arena=False)
        out[name] = folder / name
        kernels = {op["kernel"] for op in info["ops"]}
        if name in FUSED_KERNEL:
            assert FUSED_KERNEL[name] & kernels
        if name == "tucker_chain":
            assert kernels == {"tr_conv_tucker_int8"}
        assert ("tr_thin_deep.c" in info["kernels"]) == (name == "deep_pair")
    return out


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_c_compiles_without_warnings(generated: dict[str, Path], name: str, target: str) -> None:
    compiler = TARGETS[target]
    if shutil.which(compiler[0]) is None:
        pytest.skip(f"{compiler[0]} is not installed")
    gen = generated[name]
    sources = sorted(str(p) for p in gen.glob("*.c"))
    work = gen / f"objects_{target}"
    work.mkdir(exist_ok=True)
    result = subprocess.run(
        [*compiler, *STRICT, f"-I{gen}", "-c", *sources],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert len(list(work.glob("*.o"))) == len(sources)


def test_only_the_headers_a_model_needs_are_shipped(generated: dict[str, Path]) -> None:
    mlp = {p.name for p in generated["mlp"].glob("tr_*")}
    assert "tr_conv_core.h" not in mlp and "tr_conv.h" not in mlp and "tr_elementwise.h" not in mlp
    assert {"tr_fully_connected.h", "tr_matmul.h", "tr_requantize.h", "tr_dot.h"} <= mlp
    model_c = (generated["mlp"] / "model.c").read_text()
    assert '#include "tr_fully_connected.h"' in model_c and "static const tr_fc_params fc_" in model_c
