"""In-place row kernels (issue 13): the 3x3 depthwise and the matmul rows (pointwise CONV_2D,
FULLY_CONNECTED; a wider output with its input towards its end) write their output over their
input where the input dies with them. The plans
asserted here share the buffer, so a kernel that overwrote an input byte it still had to read
would give wrong bytes: each model is compared with TFLite Micro on the host (plain C, the copy
into scratch), in QEMU on the Cortex-M4 (DSP path, rows widened into scratch) and the Cortex-M3
(plain C). DS-CNN's and MobileNet's arenas fall to about their first convolution's input and
output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_arena import shares_buffer
from tests.helpers.budget import build_checked
from tests.helpers.int8_models import convert_each, int8_samples
from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.generator import LoweredModel, lower_graph
from toolchain.codegen.graph import parse
from toolchain.codegen.inplace import output_trails_input
from toolchain.codegen.verify import verify

# name: input (H, W, C), depthwise kernel, strides, padding, pointwise output channels, dense units
MODELS = {
    # SAME, stride 1: output row oy lands on input row oy, rows oy + 1 still to read
    "same_stride1": ((9, 8, 8), 3, 1, "same", 8, 24),
    # 7 channels (a partial group), VALID: 7 x 5 = 35 pixels (row pairs and an odd last row),
    # pointwise 7 -> 5 narrower, RELU6
    "valid_odd_channels": ((9, 7, 7), 3, 1, "valid", 5, 12),
    # stride 2 across and down: output rows trail further behind
    "stride2_same": ((12, 10, 12), 3, 2, "same", 12, 16),
    # pointwise 6 -> 20 over 9 x 7 pixels: the input sits (63 - 1) x 14 bytes (rounded up to 16)
    # into the output, so output row r ends before input row r + 1 starts
    "widening": ((9, 7, 6), 3, 1, "same", 20, 20),
    # tall (13 x 5, SAME, stride 1) before a pointwise to 64 channels, whose output is the arena's
    # peak: the depthwise runs by columns (its ring of 13-column rows costs no arena), in place
    "tall_by_columns": ((13, 5, 8), 3, 1, "same", 64, 24),
    # 5x5 depthwise: the generic kernel reads its input pixel by pixel, not in place
    "generic_5x5": ((9, 8, 8), 5, 1, "same", 8, 24),
}


def _separable(shape, kernel, strides, padding, pointwise, units):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(5)
    act = "relu6" if shape[2] % 4 else "relu"
    inp = keras.Input(shape)
    x = L.Conv2D(shape[2], 1, activation=act)(inp)  # the depthwise input is no model input
    x = L.DepthwiseConv2D(kernel, strides=strides, padding=padding, activation=act)(x)
    x = L.Conv2D(pointwise, 1, activation=act)(x)
    x = L.Flatten()(x)
    x = L.Dense(units, activation="relu")(x)  # FULLY_CONNECTED in place: units <= its input
    return keras.Model(inp, L.Dense(4)(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(tmp_path_factory.mktemp("inplace"), MODELS, _separable)


def _in_place(model: LoweredModel) -> list[str]:
    """The opcodes of the kernel calls whose output overlaps their input in the arena."""
    return [item.op.opcode for item in model.ops if item.call is not None and shares_buffer(model, item.op)]


@pytest.mark.parametrize(
    "name", ["same_stride1", "valid_odd_channels", "stride2_same", "widening", "tall_by_columns"]
)
def test_separable_block_runs_in_place_and_is_bit_exact(models: dict[str, Path], name: str) -> None:
    model = lower_graph(parse(models[name]), in_place=True)
    # depthwise, pointwise and the first dense; the first 1x1 reads the model input, the last
    # dense writes the model output: those keep their own buffers
    assert _in_place(model) == ["DEPTHWISE_CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    assert model.ops[1].call is not None and model.ops[1].call.function.startswith("tr_depthwise_conv_3x3")
    if name == "tall_by_columns":  # by columns: its ring costs no arena (the pointwise sets the peak)
        assert model.ops[1].call.params.fields["transposed"] == 1
    if name == "widening":  # the input (62 x 14 = 868 bytes, 880 aligned) into the output
        pointwise = model.ops[2].op
        assert model.offsets[pointwise.input(0).index] - model.offsets[pointwise.outputs[0].index] == 880
    report = verify(
        models[name], int8_samples(MODELS[name][0], 4), tflm_arena=False, sanitize=name == "stride2_same"
    )
    assert report["bit_exact"], report["first_mismatch"]


def test_in_place_plan_is_smaller_and_kept(models: dict[str, Path]) -> None:
    graph = parse(models["same_stride1"])
    apart = lower_graph(graph, in_place=False)
    assert _in_place(apart) == []
    chosen = lower_graph(graph)
    assert chosen.arena_bytes < apart.arena_bytes
    assert chosen.arena_bytes == lower_graph(graph, in_place=True).arena_bytes


def test_generic_depthwise_and_widening_rows_stay_apart(models: dict[str, Path]) -> None:
    model = lower_graph(parse(models["generic_5x5"]), in_place=True)
    assert (
        model.ops[1].call is not None and model.ops[1].call.function == "tr_depthwise_conv_dm1_doubled_int8"
    )
    assert "DEPTHWISE_CONV_2D" not in _in_place(model)
    # a wider output row than the input row already read would overwrite the next input row
    assert output_trails_input((1, 10, 1, 16), (1, 10, 1, 16), 1, 1, 1, 0)
    assert not output_trails_input((1, 10, 1, 16), (1, 10, 1, 17), 1, 1, 1, 0)
    # 3x3 SAME stride 1: output row oy is written once input row oy + 1 is read; 4 rows of 8 fit
    assert output_trails_input((1, 4, 8, 8), (1, 4, 8, 8), 3, 1, 1, 1)
    assert not output_trails_input((2, 4, 8, 8), (2, 4, 8, 8), 3, 1, 1, 1)  # batch 1 only


# model: (its first convolution's input and output bytes, scratch bound)
def _conv_scratch(depth: int) -> int:
    """Scratch of one CONV_2D call (tr_conv.c; tr_conv_first.c keeps its columns in whole words):
    two im2col columns and the matmul loops' widened pairs of two columns (8 bytes per word of
    each), plus alignment slack."""
    return 2 * depth + 2 * 8 * -(-depth // 4) + 64


FIRST_CONVOLUTION = {
    "ds_cnn": (496 + 25 * 5 * 64, _conv_scratch(10 * 4)),  # 49 x 10 x 1 (aligned) -> 25 x 5 x 64
    "mobilenet_v1_025": (96 * 96 * 3 + 48 * 48 * 8, _conv_scratch(3 * 3 * 3)),  # 96 x 96 x 3 -> 48 x 48 x 8
}


@pytest.mark.parametrize("name", list(FIRST_CONVOLUTION))
def test_separable_model_arena_falls_to_the_first_convolution(name: str, tmp_path: Path) -> None:
    from benchmarks.mlperf_tiny import build_tflite

    tflite = tmp_path / f"{name}.tflite"
    tflite.write_bytes(build_tflite(name, samples=8)[0])
    graph = parse(tflite)
    before = lower_graph(graph, in_place=False).arena_bytes
    model = lower_graph(graph)
    assert _in_place(model).count("DEPTHWISE_CONV_2D") >= 4
    tensors, scratch = FIRST_CONVOLUTION[name]
    assert tensors <= model.arena_bytes <= tensors + scratch < before
    assert model.arena_bytes <= oracle.arena_usage(tflite).total


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3"])  # the DSP path, the generic path
def test_separable_block_in_place_is_bit_exact_in_qemu(
    models: dict[str, Path], tmp_path: Path, board: str, pio_build_cache: Path
) -> None:
    from toolchain.bench.measure import run_samples

    for name in ("same_stride1", "valid_odd_channels", "stride2_same", "widening", "tall_by_columns"):
        x = int8_samples(MODELS[name][0], 2, seed=1)
        gen = tmp_path / name
        info = generate(models[name], gen, tflm_arena=False)
        assert info["arena_bytes"] == lower_graph(parse(models[name]), in_place=True).arena_bytes
        build_checked(gen, board)
        run = run_samples(gen, board, x)
        np.testing.assert_array_equal(run["outputs"][0], oracle.run(models[name], x)[0])
