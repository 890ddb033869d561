"""The plain C path's thin loop (tr_thin.h, tr_thin_pairs_plain): two groups of four outputs at a
time, its Cortex-M3 assembly inner loop and its C form elsewhere, bit-exact with TFLite Micro at
the edges of its shapes: inputs not a multiple of four (the short last word), a last pair of
five to seven outputs, a single last group, and fewer than eight outputs in all.
"""

from __future__ import annotations

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


def _pair_model(inputs: tuple[int], rank: int, outputs: int):
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input(inputs)
    narrow = keras.layers.Dense(rank, use_bias=False)(inp)
    return keras.Model(inp, keras.layers.Dense(outputs, activation="relu")(narrow))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(tmp_path_factory.mktemp("thin_plain"), PAIRS, _pair_model)


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
