"""A fused factored FULLY_CONNECTED pair of one row runs in place where its input dies with it
(issue 12): it computes its whole rank-r vector into scratch before it stores an output byte, so
its output may start on its input's first byte, whichever is wider (`inplace.PAIR_KERNELS`). Where
its first layer reads its whole input before it stores (a row stream prepares it into scratch, a
thin stream widens it), on a DSP target, the rank-r vector itself goes to the input's dead bytes
past the output (`inplace.narrow_in_input`): then fusing never holds more arena than the two calls
apart, and the fusion choice fuses the pair. The plain C path (Cortex-M0/M3) reads its rows in
place: its pair has no `wide` scratch at all and keeps the vector in scratch of its own (a copy of
the row to read would cost more bytes than the vector saves).

The plans asserted here overlap the buffers, so a kernel that stored a byte over one it still had
to read would give wrong outputs: each model is compared with TFLite Micro on the host (plain C,
sanitizers), in QEMU on the Cortex-M4 (DSP path) and the Cortex-M3 (plain generation, and the DSP
generation built for it anyway: the row stream's and the thin stream's plain C forms).

Models (dense 'head' -> pair -> dense 'tail' into 4 outputs, so the pair's input is no model input,
its output no model output, and the pair sets the arena's peak; a first factor without bias, as
compress writes it):
- `stream_first`: 40 -> 300 -> 11 -> 96 -> 4: 300 inputs are more than a thin stream holds, so the
  first layer is a row stream, the rank-11 vector sits at byte 96 of the input;
- `deep_first`: 40 -> 202 -> 11 -> 96 -> 4, the demo MLP's second pair in small: 202 inputs (51
  words, the last one short) take the thin loop's deep forms (tr_thin_deep.c) on a DSP target, and
  rank 11 a partial last group; the matmul loops on the plain path (Cortex-M3);
- `deep_relu_first`: the same with a ReLU rank-11 layer (the deep -128 floor form);
- `deep_rank`: 40 -> 200 -> 136 -> 144 -> 4: both layers deep, the second one of 136 inputs;
- `thin_first`: 40 -> 96 -> 8 -> 64 -> 4, both layers thin, the rank-8 vector at byte 64 of the input;
- `widening`: 40 -> 112 -> 8 -> 160 -> 4: the output is wider than the input and starts with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.generator import LoweredModel, lower_graph
from toolchain.codegen.graph import parse
from toolchain.codegen.inplace import narrow_in_input
from toolchain.codegen.ops.fully_connected import THIN_DEEP_SOURCE
from toolchain.codegen.planner import align, check_plan
from toolchain.codegen.verify import verify

MODELS = {  # seed, inputs, head units, rank, pair outputs, the rank layer's activation
    "stream_first": (41, 40, 300, 11, 96, None),
    "deep_first": (45, 40, 202, 11, 96, None),
    "deep_relu_first": (46, 40, 202, 11, 96, "relu"),
    "deep_rank": (47, 40, 200, 136, 144, None),
    "thin_first": (42, 40, 96, 8, 64, None),
    "widening": (43, 40, 112, 8, 160, None),
}
DEEP = ("deep_first", "deep_relu_first", "deep_rank")  # a thin layer of 129-256 inputs on a DSP target
FACTORED = (
    "tr_fully_connected_factored_int8",
    "tr_fully_connected_factored_row_int8",
    "tr_fully_connected_factored_thin_int8",
)


def _mlp(seed: int, inputs: int, head: int, rank: int, outputs: int, rank_activation: str | None):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((inputs,))
    x = L.Dense(head, activation="relu")(inp)
    x = L.Dense(rank, activation=rank_activation, use_bias=False)(x)
    x = L.Dense(outputs, activation="relu")(x)
    return keras.Model(inp, L.Dense(4)(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from toolchain.convert import convert_model

    folder = tmp_path_factory.mktemp("pair_in_place")
    paths = {}
    for name, spec in MODELS.items():
        x = np.random.default_rng(6).normal(0.3, 1.0, size=(32, spec[1])).astype(np.float32)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert_model(_mlp(*spec), x, samples=32))
    return paths


def _pair(model: LoweredModel):  # noqa: ANN202
    """The fused pair's lowered op (the model has one)."""
    pairs = [item for item in model.ops if item.fused]
    assert len(pairs) == 1 and pairs[0].call is not None and pairs[0].call.function in FACTORED
    return pairs[0]


def _runs_in_place(model: LoweredModel) -> bool:
    item = _pair(model)
    inp, out = item.op.input(0), item.fused[-1].outputs[0]
    return model.offsets[inp.index] == model.offsets[out.index]


def _samples(path: Path, n: int, seed: int) -> np.ndarray:
    depth = parse(path).inputs[0].shape[1]
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, depth), dtype=np.int8)
    x[0], x[1] = -128, 127
    return x


@pytest.mark.parametrize("name", list(MODELS))
def test_one_row_pair_runs_in_place_in_a_smaller_arena(models: dict[str, Path], name: str) -> None:
    graph = parse(models[name])
    apart = lower_graph(graph, fuse=True, in_place=False)
    model = lower_graph(graph, fuse=True)
    assert not _runs_in_place(apart) and _runs_in_place(model)
    assert model.arena_bytes < apart.arena_bytes
    check_plan(model.buffers)
    item = _pair(model)
    assert item.call is not None
    narrow = next(s for s in model.ctx.scratches if s.name == item.call.args[2])
    inp, out = item.op.input(0), item.fused[-1].outputs[0]
    fields = item.call.params.fields
    if name == "stream_first":
        assert fields["first_stream"] == 1
    else:  # thin up to 256 inputs on a DSP target
        assert fields["first_thin"] != "NULL" and fields["second_thin"] != "NULL"
    if align(out.nbytes) + narrow.nbytes <= inp.nbytes:  # the rank-r vector in the input past the output
        assert narrow.offset == model.offsets[inp.index] + align(out.nbytes)
        assert narrow_in_input(item.call, inp.nbytes, out.nbytes) == (narrow.name, align(out.nbytes))
    else:  # no room past the output: a scratch of its own
        assert name in ("deep_rank", "widening")
        assert narrow_in_input(item.call, inp.nbytes, out.nbytes) is None
        start, end = model.offsets[inp.index], model.offsets[inp.index] + max(inp.nbytes, out.nbytes)
        assert narrow.offset >= end or narrow.offset + narrow.nbytes <= start
    report = verify(models[name], _samples(models[name], 8, 0), fuse=True, tflm_arena=False, sanitize=True)
    assert report["bit_exact"], report["first_mismatch"]
    assert report["arena_bytes"] == model.arena_bytes


def test_fusing_the_stream_pair_no_longer_grows_the_arena(models: dict[str, Path]) -> None:
    """In place with its rank-r vector in the input, the fused pair's peak is the row-stream FC's
    apart (input and prepared row), so fusing costs no arena (whether the choice fuses it is then a
    matter of instructions and flash: fusion_choice); plain targets (no row stream) keep the vector
    in scratch."""
    graph = parse(models["stream_first"])
    unfused = lower_graph(graph, fuse=False)
    assert lower_graph(graph).arena_bytes <= unfused.arena_bytes
    assert lower_graph(graph, fuse=True, in_place=False).arena_bytes > unfused.arena_bytes
    fused = lower_graph(graph, fuse=True)
    assert fused.arena_bytes <= unfused.arena_bytes
    assert [item.call.function for item in fused.ops if item.call is not None][1] == FACTORED[1]
    plain = lower_graph(graph, fuse=True, dsp=False)
    assert _runs_in_place(plain)
    item = _pair(plain)
    assert item.call is not None and narrow_in_input(item.call, 300, 96) is None


@pytest.mark.parametrize("name", ["deep_first", "thin_first"])
def test_plain_pair_keeps_no_wide_scratch_and_is_fused_for_a_smaller_arena(
    models: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """The demo MLP's 256-11-128 pair in small (`deep_first`: an int8 first layer on the plain
    path, whose loop reads the input while it stores, so the vector cannot sit in it) and a pair of
    two thin layers: on the plain path in place, the vector in a scratch of its own, no `wide`; so
    fused it holds less arena than apart (where the rank-r tensor and the FULLY_CONNECTED's row
    copy are in the arena), and codegen's choice fuses it. Bit-exact on the host."""
    graph = parse(models[name])
    fused = lower_graph(graph, fuse=True, dsp=False)
    item = _pair(fused)
    assert item.call is not None and item.call.args[3] == "NULL" and fused.ctx.plain_scratch
    assert _runs_in_place(fused)
    inp, out = item.op.input(0), item.fused[-1].outputs[0]
    assert narrow_in_input(item.call, inp.nbytes, out.nbytes, dsp=False) is None
    narrow = next(s for s in fused.ctx.scratches if s.name == item.call.args[2])
    start = fused.offsets[inp.index]
    assert narrow.offset >= start + max(inp.nbytes, out.nbytes) or narrow.offset + narrow.nbytes <= start
    check_plan(fused.buffers)
    assert fused.arena_bytes < lower_graph(graph, fuse=False, dsp=False).arena_bytes
    chosen = lower_graph(graph, dsp=False)
    assert chosen.arena_bytes == fused.arena_bytes and any(i.fused for i in chosen.ops)
    report = verify(
        models[name], _samples(models[name], 8, 0), fuse=True, tflm_arena=False, sanitize=True, dsp=False
    )
    assert report["bit_exact"], report["first_mismatch"]
    assert report["arena_bytes"] == fused.arena_bytes


def test_only_a_deep_thin_layer_ships_the_deep_loop(models: dict[str, Path], tmp_path: Path) -> None:
    """The thin loop's deep forms (1.4 KB each) are in the generated folder only where a pair has
    a thin layer of more than 128 inputs: on a DSP target, never on the plain path, which keeps
    such a layer in the matmul layout."""
    for name in MODELS:
        for dsp in (True, False):
            gen = tmp_path / f"{name}_{dsp}"
            info = generate(models[name], gen, tflm_arena=False, fuse=True, dsp=dsp)
            deep = dsp and name in DEEP
            assert (THIN_DEEP_SOURCE in info["kernels"]) == deep, (name, dsp)
            assert (gen / THIN_DEEP_SOURCE).is_file() == deep, (name, dsp)
    fields = _pair(lower_graph(parse(models["deep_first"]), fuse=True, dsp=False)).call.params.fields
    assert fields["first_thin"] == "NULL" and fields["second_thin"] != "NULL"


def test_model_edges_keep_their_buffers(tmp_path: Path) -> None:
    """A pair reading the model input (the caller fills it through tr_input) stays apart."""
    import keras

    from toolchain.convert import convert_model

    keras.utils.set_random_seed(44)
    inp = keras.Input((200,))
    x = keras.layers.Dense(11, use_bias=False)(inp)
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Dense(96, activation="relu")(x)))
    path = tmp_path / "edge.tflite"
    path.write_bytes(convert_model(model, np.random.default_rng(7).normal(size=(32, 200)), samples=32))
    assert not _runs_in_place(lower_graph(parse(path), fuse=True))


@pytest.mark.qemu
@pytest.mark.parametrize(
    "board, dsp",
    [("qemu_m4", True), ("qemu_m3", False), ("qemu_m3", True)],
    ids=["m4", "m3-plain", "m3-dsp-generation"],
)
def test_pair_in_place_is_bit_exact_in_qemu(
    models: dict[str, Path], tmp_path: Path, board: str, dsp: bool, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    for name in MODELS:
        x = _samples(models[name], 3, seed=1)
        gen = tmp_path / name
        info = generate(models[name], gen, tflm_arena=False, fuse=True, dsp=dsp)
        assert info["arena_bytes"] == lower_graph(parse(models[name]), fuse=True, dsp=dsp).arena_bytes
        assert _runs_in_place(lower_graph(parse(models[name]), fuse=True, dsp=dsp))
        build(gen, board)
        run = run_samples(gen, board, x)
        np.testing.assert_array_equal(run["outputs"][0], oracle.run(models[name], x)[0])
