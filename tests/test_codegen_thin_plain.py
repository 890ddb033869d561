"""The plain C path's thin loop (tr_thin.h, tr_thin_pairs_plain): two groups of four outputs at a
time, in assembly on a Cortex-M3 (tr_thin_pairs_asm) and in C elsewhere, bit-exact with TFLite
Micro at the edges of its shapes: inputs not a multiple of four (the short last word), a last pair
of five to seven outputs, a single last group, and fewer than eight outputs in all. Rows that come
several at a time (here a spatial pair's 1 x k pixels and its im2col columns) run two rows against
one group on a Cortex-M3 (tr_thin_two_rows_asm), an odd last row through the one-row loops.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.int8_models import convert_each, int8_samples
from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.verify import verify

# name: (inputs, rank, outputs): per layer, inputs % 4 and outputs % 8 cover every case
PAIRS = {
    "tails": ((42,), 13, 23),  # 42 % 4 = 2, 13 outputs: a pair of 8 and one of 5; 13 % 4 = 1; 23: 8, 8, 7
    "short": ((7,), 6, 30),  # no whole word in the first layer; 6 outputs: one pair of 6; 30: 8, 8, 8, 6
    "groups": ((64,), 12, 36),  # 12: a pair and a single group; 36: four pairs and a single group
}
# name: (input H, W, C), rank, output channels of a spatial pair (3 x 1 then 1 x 3, "same"): seven
# pixels a row (three pairs of rows and one left); the 1 x 3 step's outputs in whole pairs or not
ROWS = {
    "rows_pairs": ((5, 7, 8), 8, 16),  # the odd row through tr_thin_pairs_asm
    "rows_groups": ((5, 7, 8), 8, 12),  # the odd row through the C loop's pair and single group
}


def _pair_model(inputs: tuple[int], rank: int, outputs: int):
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input(inputs)
    narrow = keras.layers.Dense(rank, use_bias=False)(inp)
    return keras.Model(inp, keras.layers.Dense(outputs, activation="relu")(narrow))


def _spatial_model(shape: tuple[int, int, int], rank: int, outputs: int):
    import keras

    keras.utils.set_random_seed(7)
    inp = keras.Input(shape)
    narrow = keras.layers.Conv2D(rank, (3, 1), padding="same", use_bias=False)(inp)
    return keras.Model(inp, keras.layers.Conv2D(outputs, (1, 3), padding="same", activation="relu")(narrow))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(tmp_path_factory.mktemp("thin_plain"), PAIRS, _pair_model)


@pytest.fixture(scope="module")
def spatial_rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(tmp_path_factory.mktemp("thin_rows"), ROWS, _spatial_model)


def _linked(gen: Path) -> set[str]:
    """The symbols of the firmware built in `gen`."""
    elf = next(gen.rglob("firmware.elf"))
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}


def _generate(path: Path, gen: Path) -> None:
    info = generate(path, gen, tflm_arena=False, fuse=True, dsp=False)
    assert [op["kernel"] for op in info["ops"]] == ["tr_fully_connected_factored_thin_int8"]


@pytest.mark.parametrize("name", list(PAIRS))
def test_plain_thin_pairs_are_bit_exact_on_the_host(pairs, name):
    """The host build has no DSP: every thin layer runs the C form of the plain loop (sanitized)."""
    x = int8_samples(PAIRS[name][0], 8, seed=1)
    report = verify(pairs[name], x, fuse=True, tflm_arena=False, sanitize=True)
    assert report["kernels"] == ["tr_fully_connected_factored_thin_int8"]
    assert report["bit_exact"], report["first_mismatch"]


@pytest.mark.qemu
@pytest.mark.parametrize("name", list(PAIRS))
def test_plain_thin_pairs_are_bit_exact_on_a_cortex_m3(pairs, tmp_path, name, pio_build_cache):
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    _generate(pairs[name], tmp_path / "gen")
    x = int8_samples(PAIRS[name][0], 3, seed=2)
    build(tmp_path / "gen", "qemu_m3")
    run = run_samples(tmp_path / "gen", "qemu_m3", x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(pairs[name], x)[0])
    assert "tr_thin_pairs_asm" in _linked(tmp_path / "gen")  # one row at a time: no two-row form
    assert "tr_thin_two_rows_asm" not in _linked(tmp_path / "gen")


@pytest.mark.qemu
@pytest.mark.parametrize("name", list(ROWS))
def test_plain_thin_rows_run_two_at_a_time_on_a_cortex_m3(spatial_rows, tmp_path, name, pio_build_cache):
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    gen = tmp_path / "gen"
    info = generate(spatial_rows[name], gen, tflm_arena=False, fuse=True, dsp=False)
    assert [op["kernel"] for op in info["ops"]] == ["tr_conv_spatial_int8"]
    model_c = (gen / "model.c").read_text()
    assert ".first_thin = NULL" not in model_c and ".second_thin = NULL" not in model_c
    x = int8_samples(ROWS[name][0], 3, seed=4)
    build(gen, "qemu_m3")
    run = run_samples(gen, "qemu_m3", x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(spatial_rows[name], x)[0])
    assert "tr_thin_two_rows_asm" in _linked(gen)
