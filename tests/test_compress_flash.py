"""Compress's flash estimate of a factored layer against the constants codegen really stores:
int8 weights for steps run as calls of their own, int16 thin streams for the steps of a fused
pair (two bytes a weight), so a `--board` budget holds whichever plan codegen picks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.int8_models import convert_each
from toolchain.codegen import generate
from toolchain.compress.costs import flash_bytes, flash_bytes_apart, layer_shapes
from toolchain.compress.layers import describe_layer

# name: (inputs, rank, outputs): the digits MLP's first pair (28 -> 256: thin), a pair whose first
# step is deeper than the plain C path's thin limit (256 inputs), and ranks not a multiple of four
PAIRS = {"demo_first": (64, 28, 256), "deep_first": (256, 11, 128), "odd": (40, 7, 30)}


def _pair_model(inputs: tuple[int], rank: int, outputs: int):
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input(inputs)
    x = keras.layers.Dense(rank)(inp)
    return keras.Model(inp, keras.layers.Dense(outputs, activation="relu")(x))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    specs = {name: ((m,), r, n) for name, (m, r, n) in PAIRS.items()}
    return convert_each(tmp_path_factory.mktemp("pairs"), specs, _pair_model)


def _weights_bytes(tflite: Path, out: Path, fuse: bool, dsp: bool) -> int:
    generate(tflite, out, tflm_arena=False, fuse=fuse, dsp=dsp)
    return int(json.loads((out / "model_info.json").read_text())["weights_bytes"])


def _dense_shapes(m: int, r: int, n: int):
    import keras

    model = keras.Sequential([keras.Input((m,)), keras.layers.Dense(n, name="whole")])
    return layer_shapes(describe_layer(0, model.layers[0]), "svd", (r,))


@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "plain"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_flash_estimate_is_what_codegen_stores(pairs, tmp_path, name, dsp):
    shapes = _dense_shapes(*PAIRS[name])
    fused = _weights_bytes(pairs[name], tmp_path / "fused", True, dsp)
    apart = _weights_bytes(pairs[name], tmp_path / "apart", False, dsp)
    assert flash_bytes_apart(shapes) == apart
    assert flash_bytes(shapes, dsp=dsp) == max(fused, apart)


def test_compress_checks_the_generated_model_against_the_board():
    import dataclasses
    from types import SimpleNamespace

    import numpy as np

    from toolchain.compress.pipeline import _as_generated
    from toolchain.firmware.boards import load_board

    model = _pair_model((64,), 28, 256)
    x = np.random.default_rng(0).normal(size=(16, 64)).astype(np.float32)
    board = load_board("qemu_m4")
    fits = _as_generated(model, x, SimpleNamespace(baseline=SimpleNamespace(board=board)), {})
    assert "warning" not in fits
    assert flash_bytes_apart(_dense_shapes(64, 28, 256)) < fits["generated_flash_bytes"] < board.flash_bytes
    assert 0 < fits["generated_ram_bytes"] < board.ram_bytes
    small = dataclasses.replace(board, flash_bytes=fits["generated_flash_bytes"] - 1)
    over = _as_generated(model, x, SimpleNamespace(baseline=SimpleNamespace(board=small)), {})
    assert over["generated_flash_bytes"] == fits["generated_flash_bytes"]
    assert "flash" in over["warning"] and "RAM" not in over["warning"] and "qemu_m4" in over["warning"]
