"""A spatially factored convolution (CONV_2D k x 1 -> 1 x k, as `compress --method spatial` writes
it) runs as one fused call with its narrow tensor in one row of scratch, bit-exact with TFLite
Micro on the host and in QEMU (Cortex-M4 DSP path, Cortex-M3 generic path). Fused, input and
output are alive together, so codegen picks it where the narrow tensor is the bigger cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.verify import verify

# name: input (H, W, C), rank, first kernel/stride/padding, second kernel/stride/padding, output channels
PAIRS = {
    "same_3": ((9, 7, 6), 12, ((3, 1), (1, 1), "same"), ((1, 3), (1, 1), "same"), 8),
    "strided_5x3": ((11, 10, 5), 4, ((5, 1), (2, 1), "valid"), ((1, 3), (1, 2), "same"), 5),
    # columns of 5 x 16 = 80 values (int8 matmul loops), then 3 x 7 = 21 (a thin int16 stream)
    "wide_5x1": ((6, 5, 32), 7, ((5, 1), (1, 1), "same"), ((1, 3), (1, 1), "same"), 10),
    # rank and outputs in whole words: the 1 x k step reads the widened narrow row (DSP path),
    # strided with "same" padding, and "valid" with a wider kernel
    "strided_rank_8": ((7, 9, 4), 8, ((3, 1), (1, 1), "same"), ((1, 3), (1, 2), "same"), 12),
    "valid_1x5": ((5, 8, 6), 4, ((3, 1), (1, 1), "valid"), ((1, 5), (1, 1), "valid"), 4),
    # input channels and rank in whole words: the k x 1 step widens straight from the image (DSP)
    "tall_strided": ((9, 6, 8), 4, ((3, 1), (2, 1), "valid"), ((1, 3), (1, 1), "same"), 6),
}
# Which steps (first, second) run from a thin int16 stream: columns of at most 128 values.
THIN = {
    "same_3": (True, True),
    "strided_5x3": (True, True),
    "wide_5x1": (False, True),
    "strided_rank_8": (True, True),
    "valid_1x5": (True, True),
    "tall_strided": (True, True),
}


def _spatial_model(shape, rank, first, second, out_c):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(5)
    inp = keras.Input(shape)
    x = L.Conv2D(rank, first[0], strides=first[1], padding=first[2], use_bias=False)(inp)
    return keras.Model(
        inp, L.Conv2D(out_c, second[0], strides=second[1], padding=second[2], activation="relu")(x)
    )


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from toolchain.convert import convert_model

    folder = tmp_path_factory.mktemp("spatial")
    paths = {}
    for name, spec in PAIRS.items():
        x = np.random.default_rng(3).normal(size=(24, *spec[0])).astype(np.float32)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert_model(_spatial_model(*spec), x, samples=24))
    return paths


def _samples(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape), dtype=np.int8)


@pytest.mark.parametrize("name", list(PAIRS))
def test_spatial_pair_is_fused_and_bit_exact(pairs: dict[str, Path], name: str) -> None:
    report = verify(pairs[name], _samples(PAIRS[name][0], 3, 0), fuse=True, tflm_arena=False, sanitize=True)
    assert report["kernels"] == ["tr_conv_spatial_int8"]
    assert report["bit_exact"], report["first_mismatch"]


@pytest.mark.parametrize("name", list(PAIRS))
def test_spatial_steps_of_short_columns_are_thin_streams(
    pairs: dict[str, Path], name: str, tmp_path: Path
) -> None:
    generate(pairs[name], tmp_path / "gen", tflm_arena=False, fuse=True)
    model_c = (tmp_path / "gen" / "model.c").read_text()
    for step, thin in zip(("first", "second"), THIN[name], strict=True):
        assert (f".{step}_thin = NULL" not in model_c) == thin


def test_spatial_pair_keeps_the_narrow_tensor_out_of_the_arena(
    pairs: dict[str, Path], tmp_path: Path
) -> None:
    fused = generate(pairs["same_3"], tmp_path / "fused", tflm_arena=False, fuse=True)
    unfused = generate(pairs["same_3"], tmp_path / "unfused", tflm_arena=False, fuse=False)
    assert fused["arena_bytes"] < unfused["arena_bytes"]
    # rank 12 above both channel counts (spatial SVD allows up to 3 x 6): the 9 x 7 x 12 narrow tensor
    # outweighs keeping input and output alive together
    assert fused["macs"] == unfused["macs"] == 9 * 7 * (3 * 6 * 12 + 3 * 12 * 8)
    assert (
        generate(pairs["same_3"], tmp_path / "auto", tflm_arena=False)["ops"][0]["kernel"]
        == "tr_conv_spatial_int8"
    )


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_spatial_pair_is_bit_exact_in_qemu(
    pairs: dict[str, Path], tmp_path: Path, board: str, name: str, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    x = _samples(PAIRS[name][0], 2, seed=1)
    info = generate(pairs[name], tmp_path / "gen", tflm_arena=False, fuse=True)
    assert [op["kernel"] for op in info["ops"]] == ["tr_conv_spatial_int8"]
    build(tmp_path / "gen", board)
    run = run_samples(tmp_path / "gen", board, x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(pairs[name], x)[0])
