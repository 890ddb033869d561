"""Fused kernels and the fast depthwise path: the Tucker chain (1x1 -> kxk -> 1x1) as one
call, in place, bit-exact with TFLite Micro on the host (ASan/UBSan too) and in QEMU on the
Cortex-M4 (DSP) and Cortex-M3 (generic); the doubled-accumulator requantization's guards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.helpers.int8_models import convert_each, int8_samples
from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.ops.depthwise_conv import doubled_weights
from toolchain.codegen.ops.fully_connected import doubled_requant
from toolchain.codegen.verify import verify

# name: (input H, W, C), rank_in, rank_out, kernel, strides, padding, dilation, output channels
# (Keras turns a dilated convolution into SPACE_TO_BATCH_ND, so dilation is left to the C kernel)
CHAINS = {
    "same_3x3": ((12, 10, 16), 4, 6, (3, 3), 1, "same", 1, 16),
    "stride2_5x3": ((13, 11, 12), 5, 3, (5, 3), 2, "same", 1, 20),
    "valid_stride1x2": ((12, 12, 8), 3, 4, (3, 3), (1, 2), "valid", 1, 8),
    "widening": ((8, 8, 4), 2, 2, (3, 3), 1, "same", 1, 48),
    # a 3x3 core over 16 channels: 144 values per column, more than a thin stream holds
    "wide_core": ((6, 7, 20), 16, 8, (3, 3), 1, "same", 1, 12),
    # ranks in whole words: on the DSP path the window is kept widened (tr_tucker_wide)
    "words_stride2": ((11, 9, 12), 8, 4, (3, 3), 2, "same", 1, 16),
    # the same with a five-row ring, runs of six words (the copy's LDRD tail), C_in not a multiple
    # of four (the widening's tail) and C_out not a multiple of four (the partial group)
    "words_5x3": ((10, 9, 6), 4, 8, (5, 3), 1, "same", 1, 10),
    # an image of fewer rows than the kernel: every output row reads padding above and below
    "words_short": ((3, 6, 8), 4, 4, (5, 3), 1, "same", 1, 8),
}
# Which steps (reduce, core, expand) run from a thin int16 stream: at most 128 inputs per output
# and the doubled full-range requantization (the expand step's ReLU has zero point -128: full range).
THIN = {
    "same_3x3": (True, True, True),
    "stride2_5x3": (True, True, True),
    "valid_stride1x2": (True, True, True),
    "widening": (True, True, True),
    "wide_core": (True, False, True),
    "words_stride2": (True, True, True),
    "words_5x3": (True, True, True),
    "words_short": (True, True, True),
}


def _tucker_model(shape, rank_in, rank_out, kernel, strides, padding, dilation, out_c):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input(shape)
    x = L.Conv2D(rank_in, 1, use_bias=False)(inp)
    x = L.Conv2D(rank_out, kernel, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False)(
        x
    )
    x = L.Conv2D(out_c, 1, activation="relu")(x)
    return keras.Model(inp, x)


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(tmp_path_factory.mktemp("tucker"), CHAINS, _tucker_model)


@pytest.mark.parametrize("name", list(CHAINS))
def test_fused_tucker_chain_is_bit_exact(chains: dict[str, Path], name: str) -> None:
    report = verify(
        chains[name],
        int8_samples(CHAINS[name][0], 4),
        fuse=True,
        tflm_arena=False,
        sanitize=name == "stride2_5x3",
    )
    assert report["kernels"] == ["tr_conv_tucker_int8"]
    assert report["bit_exact"], report["first_mismatch"]


def test_tucker_steps_run_from_thin_streams_where_they_fit(chains: dict[str, Path], tmp_path: Path) -> None:
    for name, expected in THIN.items():
        generate(chains[name], tmp_path / name, tflm_arena=False, fuse=True)
        source = (tmp_path / name / "model.c").read_text()
        thin = tuple(f".{step}_thin = NULL" not in source for step in ("reduce", "core", "expand"))
        assert thin == expected, name


def test_fused_tucker_runs_in_place_and_beats_the_unfused_arena(
    chains: dict[str, Path], tmp_path: Path
) -> None:
    fused = generate(chains["same_3x3"], tmp_path / "fused", tflm_arena=False, fuse=True)
    unfused = generate(chains["same_3x3"], tmp_path / "unfused", tflm_arena=False, fuse=False)
    image = 12 * 10 * 16
    # input and output share one buffer, plus scratch: 3 narrow rows (3 x 10 x 4), one middle row
    # (10 x 6), two im2col columns (2 x 9 x 4), each rounded up to 16 bytes, and the matmul loops'
    # widened pairs of two 36-value rows (2 x 2 x 9 words)
    assert fused["arena_bytes"] <= image + 128 + 64 + 80 + 144
    assert fused["arena_bytes"] < unfused["arena_bytes"]
    assert (
        generate(chains["same_3x3"], tmp_path / "auto", tflm_arena=False)["arena_bytes"]
        == fused["arena_bytes"]
    )


def test_wider_output_is_not_written_over_unread_input(chains: dict[str, Path], tmp_path: Path) -> None:
    from toolchain.codegen.fusion import runs_in_place, schedule
    from toolchain.codegen.graph import parse

    def chain(name: str) -> list:
        groups = [g for g in schedule(parse(chains[name])) if len(g) == 3]
        assert len(groups) == 1
        return groups[0]

    assert runs_in_place(
        chain("stride2_5x3")
    )  # output row oy (6 x 20) fits in the 3 + 2 oy rows read (11 x 12)
    assert not runs_in_place(chain("widening"))  # output row 0 (8 x 48) > the two input rows read (8 x 4)
    info = generate(chains["widening"], tmp_path / "gen", tflm_arena=False, fuse=True)
    assert [op["kernel"] for op in info["ops"]] == ["tr_conv_tucker_int8"]
    assert info["arena_bytes"] >= 8 * 8 * 4 + 8 * 8 * 48


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3"])  # the DSP path, the generic path
# ranks in whole words (the widened window on the DSP path) or not
@pytest.mark.parametrize("name", ["stride2_5x3", "words_stride2", "words_5x3", "words_short"])
def test_fused_tucker_is_bit_exact_in_qemu(
    chains: dict[str, Path], tmp_path: Path, board: str, name: str, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples

    x = int8_samples(CHAINS[name][0], 2, seed=1)
    gen = tmp_path / "gen"
    info = generate(chains[name], gen, tflm_arena=False, fuse=True)
    assert [op["kernel"] for op in info["ops"]] == ["tr_conv_tucker_int8"]
    # whole-word ranks: the widened window on the DSP path (the generic path falls back to the narrow one)
    assert (".wide_window = 1" in (gen / "model.c").read_text()) == (name != "stride2_5x3")
    build_checked(gen, board)
    run = run_samples(gen, board, x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(chains[name], x)[0])


def test_doubled_requant_is_refused_outside_its_exact_range() -> None:
    bias = np.array([100, -50, 0, 7], np.int32)
    sums = np.full(4, 9)  # nine taps of weight 1
    mults = np.full(4, 1 << 30, np.int32)
    right, round_ = doubled_requant(bias, sums, mults, np.array([-8, -1, -22, -3]), output_offset=-5)
    assert list(right) == [8, 1, 22, 3]
    assert list(round_) == [(1 << 7) - (5 << 8), 1 - (5 << 1), (1 << 21) - (5 << 22), 4 - (5 << 3)]
    assert doubled_requant(bias, sums, mults, np.array([-8, 0, -2, -3]), 0) is None  # shift 0: no right shift
    assert (
        doubled_requant(bias, sums, mults, np.array([-8, -23, -2, -3]), 0) is None
    )  # rounding could overflow
    huge = np.array([2**30 - 100, 0, 0, 0], np.int32)
    assert doubled_requant(huge, sums, mults, np.full(4, -8), 0) is None  # |acc| could reach 2**30


def test_doubled_weights_layout() -> None:
    w = np.arange(2 * 8, dtype=np.int8).reshape(2, 8)  # 2 taps, 8 channels
    packed = doubled_weights(w).reshape(2, 2, 4)  # group, tap, (c0, c2, c1, c3)
    assert packed.dtype == np.int16
    assert list(packed[0, 1]) == [2 * 8, 2 * 10, 2 * 9, 2 * 11]
    assert list(packed[1, 0]) == [2 * 4, 2 * 6, 2 * 5, 2 * 7]
