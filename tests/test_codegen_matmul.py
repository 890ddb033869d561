"""The matmul loops of FULLY_CONNECTED, pointwise CONV_2D and their fused factored pairs stay
bit-exact with TFLite Micro: on the host (plain C path) and in QEMU on the Cortex-M4 and M33 (DSP path:
widened input, one- and two-row tiles, ragged depths, leftover rows, clamped and full-range
requantization) and the Cortex-M3 (plain C path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.verify import verify

# A factored layer as compress writes it (first layer without bias, then the second): seed, input
# shape (one axis: Dense; three: 1x1 Conv2D), rank, outputs, the second layer's activation.
PAIRS = {
    # odd pixel count and ragged depths
    "pointwise_pair": (11, (5, 3, 13), 5, 10, "relu6"),
    # rank 6 on a ragged input of 29 (eight words), partial last output groups on both sides
    "thin_dense_pair": (13, (29,), 6, 11, "relu"),
    # rank 2 over an odd pixel count, no activation: clamped and full-range requantization both appear
    "thin_pointwise_pair": (14, (3, 3, 7), 2, 9, None),
    # from a ragged 61 channels (sixteen words: the longest straight two-pixel group) to rank 6
    "deep_pointwise_pair": (15, (3, 3, 61), 6, 9, "relu"),
    # rank 125 (thirty-two words: every straight step of the thin stream) into 130 channels (a
    # partial last group), over an odd pixel count; its 132 channels take the deep forms on DSP targets
    "wide_thin_pointwise_pair": (17, (3, 5, 132), 125, 130, "relu"),
    # rank 129: one more than the short thin loop holds, one word into the deep forms (DSP targets;
    # the int8 matmul loops on the plain path)
    "rank_129_dense_pair": (18, (136,), 129, 140, "relu"),
    # rank 257: one more than the deep forms hold (the row stream on DSP targets)
    "rank_257_dense_pair": (19, (264,), 257, 270, "relu"),
}


def _pair_model(seed: int, shape: tuple[int, ...], rank: int, outputs: int, activation: str | None):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    layer = L.Dense if len(shape) == 1 else (lambda n, **kw: L.Conv2D(n, 1, **kw))
    inp = keras.Input(shape)
    x = layer(rank, use_bias=False)(inp)
    return keras.Model(inp, layer(outputs, activation=activation)(x))


def _dense_pair_model():
    """A factored Dense (rank 9, ragged input depth, leftover output rows) after a plain Dense."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(12)
    inp = keras.Input((37,))
    x = L.Dense(64)(inp)
    x = L.Dense(9, use_bias=False)(x)
    return keras.Model(inp, L.Dense(22, activation="relu")(x))


def _one_group_dense_model():
    """Single rows into at most four outputs (45 -> 4 with ReLU, then 4 -> 3): read in place, with
    no widened copy and no scratch, on both paths."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(16)
    inp = keras.Input((45,))
    x = L.Dense(4, activation="relu")(inp)
    return keras.Model(inp, L.Dense(3)(x))


MODELS = {
    **{name: (lambda spec=spec: _pair_model(*spec)) for name, spec in PAIRS.items()},
    "dense_pair": _dense_pair_model,
    "one_group_dense": _one_group_dense_model,
}
# a pair whose two layers are thin streams (THIN below) runs the thin-only form, without the matmul loops
KERNELS = {
    "pointwise_pair": ["tr_fully_connected_factored_thin_int8"],
    # the first Dense is one row into 64 outputs: the row stream of DSP targets (test_codegen_fc_row)
    "dense_pair": ["tr_fully_connected_row_int8", "tr_fully_connected_factored_thin_int8"],
    "thin_dense_pair": ["tr_fully_connected_factored_thin_int8"],
    "thin_pointwise_pair": ["tr_fully_connected_factored_thin_int8"],
    "deep_pointwise_pair": ["tr_fully_connected_factored_thin_int8"],
    "wide_thin_pointwise_pair": ["tr_fully_connected_factored_thin_int8"],
    "rank_129_dense_pair": ["tr_fully_connected_factored_thin_int8"],
    # one row, layers without thin streams: the row stream's one-row form on DSP targets
    "rank_257_dense_pair": ["tr_fully_connected_factored_row_int8"],
    "one_group_dense": ["tr_fully_connected_int8", "tr_fully_connected_int8"],
}

# Which layers of each factored pair (first, second) run from a thin int16 stream on a DSP target:
# at most 256 inputs and the doubled requantization over the full int8 range (rank 257 is too wide;
# the plain path keeps 128: `PLAIN_THIN`).
THIN = {
    "pointwise_pair": (True, True),
    "dense_pair": (True, True),
    "thin_dense_pair": (True, True),
    "thin_pointwise_pair": (True, True),
    "deep_pointwise_pair": (True, True),
    "wide_thin_pointwise_pair": (True, True),
    "rank_129_dense_pair": (True, True),
    "rank_257_dense_pair": (False, False),
}
# Where the plain path (Cortex-M0/M3) differs: no thin layer past 128 inputs, so the two-row pair
PLAIN_THIN = {"wide_thin_pointwise_pair": (False, True), "rank_129_dense_pair": (False, False)}
PLAIN_KERNELS = {name: ["tr_fully_connected_factored_int8"] for name in PLAIN_THIN}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from toolchain.convert import convert_model

    folder = tmp_path_factory.mktemp("matmul")
    paths = {}
    for name, build in MODELS.items():
        model = build()
        x = (
            np.random.default_rng(2)
            .normal(0.3, 1.0, size=(32, *model.inputs[0].shape[1:]))
            .astype(np.float32)
        )
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert_model(model, x, samples=32))
    return paths


def _samples(path: Path, n: int, seed: int) -> np.ndarray:
    from toolchain.codegen.graph import parse

    shape = parse(path).inputs[0].shape
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)


@pytest.mark.parametrize("name", list(MODELS))
def test_factored_pairs_fuse_and_are_bit_exact_on_the_host(models: dict[str, Path], name: str) -> None:
    report = verify(models[name], _samples(models[name], 4, 0), fuse=True, tflm_arena=False, sanitize=True)
    assert report["kernels"] == KERNELS[name]
    assert report["bit_exact"], report["first_mismatch"]


@pytest.mark.parametrize("name", list(THIN))
def test_thin_second_layers_are_packed_as_int16_streams(
    models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    generate(models[name], tmp_path / "gen", tflm_arena=False, fuse=True)
    model_c = (tmp_path / "gen" / "model.c").read_text()
    weights_c = (tmp_path / "gen" / "model_weights.c").read_text()
    generate(models[name], tmp_path / "plain", tflm_arena=False, fuse=True, dsp=False)
    plain_c = (tmp_path / "plain" / "model.c").read_text()
    for layer, thin, plain in zip(
        ("first", "second"), THIN[name], PLAIN_THIN.get(name, THIN[name]), strict=True
    ):
        assert (f".{layer}_thin = NULL" not in plain_c) == plain
        if thin:
            assert f".{layer}_thin = tr_" in model_c and f"_{layer}_thin[" in weights_c
            assert f"_{layer}_filter[" not in weights_c  # the stream replaces the int8 weights and table
        else:
            assert f".{layer}_thin = NULL" in model_c and f"_{layer}_filter[" in weights_c


def test_thin_stream_layout() -> None:
    from toolchain.codegen.packing import pack_thin

    rows = np.arange(1, 5 * 6 + 1).reshape(5, 6)  # 5 rows of 6 values: 2 groups of 2 words
    rows[0, 0] = -3
    table = np.array([[10 * k, 1000 + k, 7, 64 + k] for k in range(5)])
    stream = pack_thin(rows, table).reshape(2, 4 + 2 * 8 + 12)  # per group: biases, pairs, constants
    assert list(stream[0, :4]) == [0, 10, 20, 30] and list(stream[1, :4]) == [40, 40, 40, 40]
    pairs = stream[:, 4:20].reshape(2, 2, 2, 4)  # group, word, pair, row
    low, high = pairs.astype(np.int64) & 0xFFFF, pairs >> 16
    # weights doubled (the accumulators stay doubled without doubling the input)
    assert low[0, 0, 0, 0] == 0xFFFA and high[0, 0, 0, 0] == 6  # row 0: (x0, x2) pair of word 0
    assert (low[0, 0, 1, 1], high[0, 0, 1, 1]) == (16, 20)  # row 1: (x1, x3) pair of word 0
    assert (low[0, 1, 0, 2], high[0, 1, 0, 2]) == (34, 0)  # row 2, word 1: values 4 (17) and 6 (none)
    assert (low[0, 1, 1, 2], high[0, 1, 1, 2]) == (36, 0)
    assert not pairs[1, :, :, 1:].any()  # rows 5-7 of the padded last group are zero
    assert list(stream[0, 20:23]) == [1000, 7, 64] and list(stream[1, 29:32]) == [1004, 7, 68]


def test_pointwise_pair_keeps_the_narrow_tensor_out_of_the_arena(
    models: dict[str, Path], tmp_path: Path
) -> None:
    fused = generate(models["pointwise_pair"], tmp_path / "fused", tflm_arena=False, fuse=True)
    assert [op["kernel"] for op in fused["ops"]] == ["tr_fully_connected_factored_thin_int8"]
    assert fused["ops"][0]["macs"] == 15 * (5 * 13 + 5 * 10)
    # input (15 x 13) and output (15 x 10), then scratch: two pixels' rank-5 vectors and two
    # widened input rows (13 values padded to 4 words -> 2 x 2 x 4 words), each rounded up to 16
    # bytes; no 15 x 5 intermediate tensor
    assert fused["arena_bytes"] <= 208 + 160 + 16 + 64


def test_one_row_into_one_group_needs_no_scratch(models: dict[str, Path], tmp_path: Path) -> None:
    info = generate(models["one_group_dense"], tmp_path / "gen", tflm_arena=False)
    # the 45-value input and the 4-value middle only (16-byte aligned): no 2 x 12-word widened row
    assert info["arena_bytes"] == 48 + 16
    assert "tr_fully_connected_int8(&" in (tmp_path / "gen" / "model.c").read_text()
    assert ", NULL);" in (tmp_path / "gen" / "model.c").read_text()


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m33", "qemu_m3"])  # DSP paths, the generic path
@pytest.mark.parametrize("name", list(MODELS))
def test_matmul_kernels_are_bit_exact_in_qemu(
    models: dict[str, Path], tmp_path: Path, board: str, name: str, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    x = _samples(models[name], 3, seed=4)
    dsp = board != "qemu_m3"  # a core without DSP is generated with the plain layouts
    info = generate(models[name], tmp_path / "gen", tflm_arena=False, fuse=True, dsp=dsp)
    plain = {
        "tr_fully_connected_row_int8": "tr_fully_connected_int8",
        "tr_fully_connected_factored_row_int8": "tr_fully_connected_factored_int8",
    }
    expected = KERNELS[name] if dsp else PLAIN_KERNELS.get(name, [plain.get(k, k) for k in KERNELS[name]])
    assert [op["kernel"] for op in info["ops"]] == expected
    build(tmp_path / "gen", board)
    run = run_samples(tmp_path / "gen", board, x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(models[name], x)[0])


def test_channel_table_doubles_only_where_the_kernels_are_exact() -> None:
    from toolchain.codegen.ops.fully_connected import channel_table

    bias = np.array([100, -50], np.int32)
    sums = np.array([9, 9])
    shifts = np.array([-8, -3], np.int32)
    table, doubled = channel_table(bias, sums, np.array([(1 << 30) + 5, (1 << 31) - 1], np.int32), shifts, -5)
    assert doubled
    assert table.shape == (2, 4)
    assert list(table[:, 0]) == [200, -100]  # the accumulators are kept doubled
    assert list(table[:, 2]) == [8, 3] and table[0, 3] == (1 << 7) - (5 << 8)
    # a multiplier of exactly 2**30: the high product of -1 is 0, not negative: TFLM's general form
    table, doubled = channel_table(bias, sums, np.array([1 << 30, 1 << 30], np.int32), shifts, -5)
    assert not doubled
    assert list(table[:, 0]) == [100, -50] and list(table[:, 2]) == [-8, -3]


def test_matmul_layout_pads_to_whole_words_and_groups() -> None:
    from toolchain.codegen.packing import pack_matmul

    rows = np.arange(1, 5 * 6 + 1, dtype=np.int8).reshape(5, 6)  # 5 rows of 6: 2 groups of 2 words
    packed = pack_matmul(rows).reshape(2, 2, 4, 4)  # group, word, row, byte
    assert list(packed[0, 0, 1]) == [7, 8, 9, 10]  # row 1, word 0
    assert list(packed[0, 1, 2]) == [17, 18, 0, 0]  # row 2, word 1: two values, two zeros
    assert list(packed[1, 1, 0]) == [29, 30, 0, 0] and not packed[1, :, 1:].any()  # rows 5-7 are zeros
