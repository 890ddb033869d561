"""A fused factored FULLY_CONNECTED pair of one row (batches 1) on a DSP target runs each layer that
has no thin stream from the row stream (tr_fully_connected_row_int8's layout and loop, inside
tr_fully_connected_factored_row_int8: the generator picks that form for such a pair, so the
two-row tr_fully_connected_factored_int8 checks no flags), and stays bit-exact with TFLite Micro:
on the host (the stream's plain C form), in QEMU on the Cortex-M4 (the assembly loop) and on the
Cortex-M3 (generated with the plain layouts; and a DSP generation built for it anyway, the stream's
plain C form). The weights
keep their bytes: a plain generation takes the same flash.

Three pairs (a first layer without bias, as compress writes it):
- `first`: 300 -> 10 -> 40, ReLU: the first layer's 300 inputs are more than a thin stream holds
  (256 on a DSP target: row stream, into 10 outputs: two groups and a partial one), the second is
  thin;
- `second`: 40 -> 9 -> 22, ReLU: the first layer is thin, the second (a ragged depth of 9) is
  refused its thin stream (`_refuse_second_thin`): the generator never gives this combination
  itself with the doubled requantization (a thin first layer has at most 256 inputs, so the rank is
  below 256 and the second layer fits a thin stream too), only where the second layer alone has
  TFLite Micro's general form or a clamped range;
- `both`: 280 -> 260 -> 290, ReLU: neither layer fits a thin stream (260 inputs).
Each again with TFLite Micro's general requantization forced (`doubled_requant` patched to refuse),
which has no thin stream either: then every layer of the three runs from the row stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.ops import fully_connected
from toolchain.codegen.verify import verify

PAIRS = {  # seed, inputs, rank, outputs, the second layer's activation
    "first": (31, 300, 10, 40, "relu"),
    "second": (32, 40, 9, 22, "relu"),
    "both": (33, 280, 260, 290, "relu"),
}
# (first, second) layer from the row stream with the doubled requantization the scales give
STREAMS = {"first": (1, 0), "second": (0, 1), "both": (1, 1)}
FACTORED = "tr_fully_connected_factored_int8"
FACTORED_ROW = "tr_fully_connected_factored_row_int8"  # a pair of one row with a row-stream layer


def _pair_model(seed: int, inputs: int, rank: int, outputs: int, activation: str):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((inputs,))
    narrow = L.Dense(rank, use_bias=False)(inp)
    return keras.Model(inp, L.Dense(outputs, activation=activation)(narrow))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from toolchain.convert import convert_model

    folder = tmp_path_factory.mktemp("factored_row")
    paths = {}
    for name, spec in PAIRS.items():
        model = _pair_model(*spec)
        x = np.random.default_rng(4).normal(0.3, 1.0, size=(32, spec[1])).astype(np.float32)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert_model(model, x, samples=32))
    return paths


def _refuse_second_thin(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """For the `second` pair: no thin stream for its second layer (see the module docstring)."""
    if name != "second":
        return
    thin_fields = fully_connected.thin_fields

    def first_only(op, ctx, array_name, max_depth=fully_connected.THIN_MAX_DEPTH):  # noqa: ANN001, ANN202
        return None if array_name.endswith("_second") else thin_fields(op, ctx, array_name, max_depth)

    monkeypatch.setattr(fully_connected, "thin_fields", first_only)


def _expected_streams(name: str, requant: str) -> tuple[int, int]:
    return STREAMS[name] if requant == "doubled" else (1, 1)


def _streams(gen: Path) -> tuple[int, int]:
    text = (gen / "model.c").read_text()
    flags = []
    for layer in ("first", "second"):
        on, off = f".{layer}_stream = 1," in text, f".{layer}_stream = 0," in text
        assert on != off, text
        flags.append(int(on))
    return flags[0], flags[1]


def _samples(path: Path, n: int, seed: int) -> np.ndarray:
    from toolchain.codegen.graph import parse

    depth = parse(path).inputs[0].shape[1]
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, depth), dtype=np.int8)
    x[0] = -128  # the extremes of the prepared words (127 - x0, 256 x1)
    x[1] = 127
    return x


@pytest.mark.parametrize("name", list(PAIRS))
def test_one_row_pair_takes_the_row_stream_and_is_bit_exact_on_the_host(
    pairs: dict[str, Path], requant: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_second_thin(name, monkeypatch)
    report = verify(pairs[name], _samples(pairs[name], 6, 0), fuse=True, tflm_arena=False, sanitize=True)
    assert report["kernels"] == [FACTORED_ROW]
    assert report["bit_exact"], report["first_mismatch"]
    generate(pairs[name], tmp_path / "gen", tflm_arena=False, fuse=True)
    assert _streams(tmp_path / "gen") == _expected_streams(name, requant)


@pytest.mark.parametrize("name", list(PAIRS))
def test_plain_targets_keep_the_matmul_layout_and_the_same_flash(
    pairs: dict[str, Path], tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """...and the arena without the pair's `wide` scratch (the plain loops read their rows in
    place): the pair, reading the model's input, sets the peak; its C refuses a DSP build."""
    from toolchain.codegen.planner import align

    _refuse_second_thin(name, monkeypatch)
    dsp = generate(pairs[name], tmp_path / "dsp", tflm_arena=False, fuse=True)
    plain = generate(pairs[name], tmp_path / "plain", tflm_arena=False, fuse=True, dsp=False)
    assert _streams(tmp_path / "plain") == (0, 0)
    sizes = lambda info: {c["c_name"]: c["bytes"] for c in info["constants"]}  # noqa: E731
    assert sizes(dsp) == sizes(plain)
    _, inputs, rank, _, _ = PAIRS[name]
    wide = max(fully_connected.wide_scratch_bytes(inputs, 1), fully_connected.wide_scratch_bytes(rank, 1))
    assert dsp["arena_bytes"] - plain["arena_bytes"] == align(wide)
    assert ", NULL);" in (tmp_path / "plain" / "model.c").read_text()
    assert "#error" in (tmp_path / "plain" / "model.c").read_text()
    assert "#error" not in (tmp_path / "dsp" / "model.c").read_text()


def test_pairs_of_two_rows_keep_the_matmul_loops(tmp_path: Path) -> None:
    """The row stream holds one row: a pair over two rows (a pointwise pair on 1 x 2 pixels) does
    not take it, on a DSP target too."""
    import keras

    from toolchain.convert import convert_model

    keras.utils.set_random_seed(34)
    inp = keras.Input((1, 2, 300))
    narrow = keras.layers.Conv2D(10, 1, use_bias=False)(inp)
    model = keras.Model(inp, keras.layers.Conv2D(40, 1, activation="relu")(narrow))
    x = np.random.default_rng(5).normal(0.3, 1.0, size=(32, 1, 2, 300)).astype(np.float32)
    path = tmp_path / "pointwise.tflite"
    path.write_bytes(convert_model(model, x, samples=32))
    info = generate(path, tmp_path / "gen", tflm_arena=False, fuse=True)
    assert [op["kernel"] for op in info["ops"]] == [FACTORED]
    assert _streams(tmp_path / "gen") == (0, 0)


def _run_in_qemu(path: Path, gen: Path, board: str, dsp: bool, seed: int) -> None:
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    x = _samples(path, 3, seed)
    info = generate(path, gen, tflm_arena=False, fuse=True, dsp=dsp)
    assert [op["kernel"] for op in info["ops"]] == [FACTORED_ROW if dsp else FACTORED]
    build(gen, board)
    run = run_samples(gen, board, x)
    np.testing.assert_array_equal(run["outputs"][0], oracle.run(path, x)[0])


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3"])  # the DSP path, the generic path
@pytest.mark.parametrize("name", list(PAIRS))
def test_one_row_pair_is_bit_exact_in_qemu(
    pairs: dict[str, Path],
    requant: str,
    tmp_path: Path,
    name: str,
    board: str,
    pio_build_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refuse_second_thin(name, monkeypatch)
    dsp = board != "qemu_m3"
    _run_in_qemu(pairs[name], tmp_path / "gen", board, dsp, seed=2)
    assert _streams(tmp_path / "gen") == (_expected_streams(name, requant) if dsp else (0, 0))


@pytest.mark.qemu
def test_stream_layout_is_bit_exact_on_a_core_without_dsp(
    pairs: dict[str, Path], tmp_path: Path, pio_build_cache: Path
) -> None:
    """A DSP generation built for a Cortex-M3 anyway runs the stream's plain C form in both layers."""
    _run_in_qemu(pairs["both"], tmp_path / "gen", "qemu_m3", True, seed=3)
    assert _streams(tmp_path / "gen") == (1, 1)
