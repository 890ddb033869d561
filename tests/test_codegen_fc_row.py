"""The one-row FULLY_CONNECTED stream of DSP targets (tr_fully_connected_row_int8) is bit-exact with
TFLite Micro: on the host (its plain C form), in QEMU on the Cortex-M4 and M33 (the assembly loop),
and a Cortex-M3 generation keeps the plain layout and tr_fully_connected_int8. It stores the same
weight bytes as the plain layout, only permuted and XORed.

One chain of Dense layers covers the shapes: 99 -> 36 (ragged depth, ReLU), 36 -> 64, 64 -> 64,
64 -> 128 (ReLU), 128 -> 10 (a partial last group) and 10 -> 3 (at most four outputs: read in place
with no scratch, the old kernel). Each runs with the doubled requantization its scales give, and
again with TFLite Micro's general form forced (`doubled_requant` patched to refuse).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.ops import fully_connected
from toolchain.codegen.verify import verify

WIDTHS = [(36, "relu"), (64, None), (64, None), (128, "relu"), (10, None), (3, None)]
STREAM = "tr_fully_connected_row_int8"
PLAIN = "tr_fully_connected_int8"
DSP_KERNELS = [STREAM] * 5 + [PLAIN]


def _chain_model():
    import keras

    keras.utils.set_random_seed(21)
    inp = keras.Input((99,))
    x = inp
    for width, activation in WIDTHS:
        x = keras.layers.Dense(width, activation=activation)(x)
    return keras.Model(inp, x)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolchain.convert import convert_model

    model = _chain_model()
    x = np.random.default_rng(3).normal(0.2, 1.0, size=(32, 99)).astype(np.float32)
    path = tmp_path_factory.mktemp("fc_row") / "chain.tflite"
    path.write_bytes(convert_model(model, x, samples=32))
    return path


def _samples(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, 99), dtype=np.int8)
    x[0] = -128  # the extremes of the prepared words (127 - x0, 256 x1)
    x[1] = 127
    return x


def _doubled_flags(gen: Path) -> set[str]:
    text = (gen / "model.c").read_text()
    return {flag for flag in ("0", "1") if f".doubled = {flag}," in text}


def test_chain_takes_the_row_stream_and_is_bit_exact_on_the_host(chain: Path, requant: str) -> None:
    report = verify(chain, _samples(6, 0), tflm_arena=False, sanitize=True)
    assert report["kernels"] == DSP_KERNELS
    assert report["bit_exact"], report["first_mismatch"]


def test_both_requantizations_are_exercised(chain: Path, requant: str, tmp_path: Path) -> None:
    generate(chain, tmp_path / "gen", tflm_arena=False)
    assert _doubled_flags(tmp_path / "gen") == ({"1"} if requant == "doubled" else {"0"})


def test_plain_targets_keep_the_matmul_layout(chain: Path, tmp_path: Path) -> None:
    # unfused: 99 -> 36 -> 64 has the shape of a factored pair, which the plain path's cost model
    # fuses (a Cortex-M3 runs it 5% faster from thin streams); the layouts are the subject here
    info = generate(chain, tmp_path / "gen", tflm_arena=False, fuse=False, dsp=False)
    assert [op["kernel"] for op in info["ops"]] == [PLAIN] * len(WIDTHS)
    assert verify(chain, _samples(3, 1), tflm_arena=False)["bit_exact"]


def test_row_stream_weights_take_the_same_flash(chain: Path, tmp_path: Path) -> None:
    dsp = generate(chain, tmp_path / "dsp", tflm_arena=False, fuse=False)
    plain = generate(chain, tmp_path / "plain", tflm_arena=False, fuse=False, dsp=False)
    sizes = lambda info: {c["c_name"]: c["bytes"] for c in info["constants"]}  # noqa: E731
    assert sizes(dsp) == sizes(plain)
    assert dsp["weights_bytes"] == plain["weights_bytes"]
    assert dsp["arena_bytes"] == plain["arena_bytes"]


def test_row_stream_layout_permutes_and_flips_each_word() -> None:
    from toolchain.codegen.packing import pack_matmul, pack_row_stream

    rows = np.arange(-64, -64 + 5 * 6, dtype=np.int8).reshape(5, 6)
    plain, stream = pack_matmul(rows).reshape(-1, 4), pack_row_stream(rows).reshape(-1, 4)
    assert stream.shape == plain.shape
    assert list(plain[0]) == [-64, -63, -62, -61]
    assert list(stream[0]) == [-63 ^ -128, -64, -61 ^ -128, -62]
    # as int16 halves: 256 w0 + (w1 + 128) and 256 w2 + (w3 + 128)
    halves = stream.view("<i2").reshape(-1, 2).astype(np.int64)
    words = plain.astype(np.int64)
    np.testing.assert_array_equal(halves[:, 0], 256 * words[:, 0] + words[:, 1] + 128)
    np.testing.assert_array_equal(halves[:, 1], 256 * words[:, 2] + words[:, 3] + 128)


def test_row_stream_table_cancels_the_stream_constants() -> None:
    """-(bias + dot) from the table entry, the row constant and the stream's per-word sums."""
    rng = np.random.default_rng(9)
    rows = rng.integers(-128, 128, size=(3, 8))
    x = rng.integers(-128, 128, size=8)
    table = np.array([[1000, 1 << 30, 5, 0], [-7, 1 << 30, 5, 0], [2**31 - 1, 1 << 30, 5, 0]], np.int64)
    for doubled in (False, True):
        given = table.copy()
        given[:, 0] = given[:, 0] * 2 if doubled else given[:, 0]
        given = ((given + 2**31) % 2**32 - 2**31).astype(np.int32)
        stream = fully_connected.row_stream_table(rows, given, doubled)
        w = rows.reshape(3, 2, 4)
        xs = x.reshape(2, 4)
        per_word = (
            -(w * xs).sum(axis=2) + 127 * (w[:, :, 0] + w[:, :, 2]) - 128 * (xs[:, 1] + xs[:, 3])
        ).sum(axis=1)
        acc = stream[:, 0].astype(np.int64) + 128 * (xs[:, 1] + xs[:, 3]).sum() + per_word
        expected = -(given[:, 0].astype(np.int64) // (2 if doubled else 1) + rows @ x)
        np.testing.assert_array_equal((acc - expected) % 2**32, 0)
        np.testing.assert_array_equal(stream[:, 1:], given[:, 1:])


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m33", "qemu_m3"])  # DSP paths, the generic path
def test_chain_is_bit_exact_in_qemu(
    chain: Path, requant: str, tmp_path: Path, board: str, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    dsp = board != "qemu_m3"
    x = _samples(4, 2)
    info = generate(chain, tmp_path / "gen", tflm_arena=False, fuse=False, dsp=dsp)  # the layouts
    assert [op["kernel"] for op in info["ops"]] == (DSP_KERNELS if dsp else [PLAIN] * len(WIDTHS))
    build(tmp_path / "gen", board)
    run = run_samples(tmp_path / "gen", board, x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(chain, x)[0])


@pytest.mark.qemu
def test_stream_layout_is_bit_exact_on_a_core_without_dsp(
    chain: Path, tmp_path: Path, pio_build_cache: Path
) -> None:
    """A DSP generation built for a Cortex-M3 anyway runs the stream's plain C form."""
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    x = _samples(3, 5)
    generate(chain, tmp_path / "gen", tflm_arena=False)
    build(tmp_path / "gen", "qemu_m3")
    run = run_samples(tmp_path / "gen", "qemu_m3", x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(chain, x)[0])
