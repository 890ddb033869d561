"""The 3x3 depthwise kernel of depth multiplier 1 (tr_depthwise_conv_3x3_int8, MobileNet / DS-CNN) is
bit-exact with TFLite Micro on the host (plain C), on the Cortex-M4 and M33 (DSP path: SMLAD on widened
rows, inline assembly) and on the Cortex-M3 (plain C): strides 1 and 2, SAME and VALID padding, channel
counts below four, odd and not a multiple of four (the last group zero-padded), a taller stride down,
both requantization forms (doubled where exact, TFLM's general form elsewhere) and every activation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.test_codegen_random_graphs import DEPTHWISE_QUANT, _check, build_conv
from toolchain.codegen.graph import parse
from toolchain.codegen.ops.depthwise_conv import (
    must_run_by_columns,
    runs_three_by_three,
    three_by_three_group_constants,
    three_by_three_weights,
)

BASE = {
    "depthwise": True,
    "h": 9,
    "w": 8,
    "c": 8,
    "k_h": 3,
    "k_w": 3,
    "stride_h": 1,
    "stride_w": 1,
    "dil_h": 1,
    "dil_w": 1,
    "padding": "SAME",
    "multiplier": 1,
    **DEPTHWISE_QUANT,
}
# name -> changes to BASE; each runs tr_depthwise_conv_3x3_int8 or its doubled form
CASES = {
    "stride1_same_8": {},
    "stride2_same_16": {"c": 16, "stride_h": 2, "stride_w": 2, "h": 12, "w": 12},
    "stride2_same_odd_width": {
        "c": 12,
        "stride_h": 2,
        "stride_w": 2,
        "w": 7,
        "act": "RELU6",
        "out_scale": 0.02,
    },
    "stride1_valid_odd_7": {"c": 7, "padding": "VALID"},
    "stride2_valid_13_stride_down_3": {
        "c": 13,
        "stride_h": 3,
        "stride_w": 2,
        "h": 10,
        "w": 11,
        "padding": "VALID",
    },
    "three_channels": {"c": 3, "stride_w": 2, "w": 7, "act": "NONE"},
    "one_channel": {"c": 1, "act": "RELU_N1_TO_1"},
    "one_pixel": {"c": 5, "h": 1, "w": 1},
    "general_requantization": {"out_scale": 0.0001, "act": "NONE", "in_zp": 127},
    "narrow_rows": {"c": 9, "w": 2, "h": 3, "stride_w": 2, "in_zp": -128},
    # the assembly row loop (doubled form, clamp range all of int8): ReLU at zero point -128 ...
    "relu_low_zero_point_stride2_odd": {"c": 12, "stride_h": 2, "stride_w": 2, "w": 9, "out_zp": -128},
    "relu_low_zero_point_13_valid": {"c": 13, "w": 7, "padding": "VALID", "out_zp": -128},
    # ... and any other zero point, rounding half away from zero kept
    "linear_full_range_stride1": {"c": 8, "w": 11, "act": "NONE"},
    "linear_full_range_stride2_valid": {
        "c": 16,
        "stride_h": 2,
        "stride_w": 2,
        "w": 10,
        "h": 7,
        "padding": "VALID",
        "act": "NONE",
        "out_zp": -3,
    },
    # the assembly widening's edges: no stored column inside the row (the tail alone: the C
    # widening then, tr_dw3_slides declines), a tail that starts inside a stored column (stride 2,
    # SAME, even width), rows skipped by a stride down (a stride down of 3 keeps a tall image in
    # its rows); the cases of the loop enter its unrolled widening at each of its five entries
    "one_column_row_loop": {"c": 8, "w": 1, "h": 7, "stride_h": 3, "act": "NONE"},
    "two_columns_stride2_row_loop": {"c": 8, "w": 2, "h": 7, "stride_h": 3, "stride_w": 2, "out_zp": -128},
    "even_width_stride2_row_loop": {"c": 12, "w": 10, "h": 9, "stride_h": 2, "stride_w": 2, "act": "NONE"},
    "stride_down_4_row_loop": {"c": 8, "w": 6, "h": 11, "stride_h": 4, "act": "NONE"},
    # a stride across of 3 runs by columns (the frame's rows are the image's columns; the image's
    # stride down is the frame's stride across, 1 or 2); a tall image alone keeps its rows
    "tall_row_loop": {"c": 8, "h": 13, "w": 5, "out_zp": -128},
    "stride_2_down_3_across_by_columns_row_loop": {
        "c": 12,
        "h": 12,
        "w": 10,
        "stride_h": 2,
        "stride_w": 3,
        "act": "NONE",
    },
    "stride_across_3_by_columns": {"c": 8, "h": 6, "w": 10, "stride_w": 3, "act": "NONE"},
    # one call of the loop per group runs the whole image, its window starting below the rows of
    # padding (MobileNet's last maps: 3x3, and 6x6 -> 3x3 at stride 2, no padding above), past the
    # image from its first rows (one row: the second of the first three is already padding), and a
    # whole group before a partial one (the partial one in C, from the same table)
    "tiny_3x3_row_loop": {"c": 16, "h": 3, "w": 3, "out_zp": -128},
    "six_to_three_stride2_row_loop": {"c": 8, "h": 6, "w": 6, "stride_h": 2, "stride_w": 2, "act": "NONE"},
    "one_row_row_loop": {"c": 8, "h": 1, "w": 6, "out_zp": -128},
    "whole_and_partial_group_row_loop": {"c": 6, "h": 5, "w": 4, "act": "NONE", "out_zp": 5},
}
# the cases run by columns (`must_run_by_columns`); the others keep the image's rows
BY_COLUMNS = {"stride_2_down_3_across_by_columns_row_loop", "stride_across_3_by_columns"}
# the cases of the assembly row loop: (ReLU form, zero point -128) or not
ROW_LOOP_CASES = {
    "relu_low_zero_point_stride2_odd": True,
    "relu_low_zero_point_13_valid": True,
    "linear_full_range_stride1": False,
    "linear_full_range_stride2_valid": False,
    "one_column_row_loop": False,
    "two_columns_stride2_row_loop": True,
    "even_width_stride2_row_loop": False,
    "stride_down_4_row_loop": False,
    "tall_row_loop": True,
    "stride_2_down_3_across_by_columns_row_loop": False,
    "tiny_3x3_row_loop": True,
    "six_to_three_stride2_row_loop": False,
    "one_row_row_loop": True,
    "whole_and_partial_group_row_loop": False,
}
QEMU_CASES = (
    "stride1_same_8",
    "stride2_same_odd_width",
    "stride2_valid_13_stride_down_3",
    "general_requantization",
    "narrow_rows",
    "stride_across_3_by_columns",
    *ROW_LOOP_CASES,
)


def _params(case: str) -> dict:
    return {**BASE, **CASES[case]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_three_by_three_kernel_is_bit_exact_on_the_host(tmp_path: Path, case: str) -> None:
    p = _params(case)
    path = build_conv(p, tmp_path / "dw.tflite")
    assert runs_three_by_three(parse(path).ops[0])
    report = _check(path, p["seed"])
    assert report["kernels"] in (["tr_depthwise_conv_3x3_int8"], ["tr_depthwise_conv_3x3_doubled_int8"])


def test_general_requantization_case_does_not_take_the_doubled_form(tmp_path: Path) -> None:
    """The case meant for TFLM's general form really gets it (else it would test nothing new)."""
    from toolchain.codegen import generate

    info = generate(build_conv(_params("general_requantization"), tmp_path / "dw.tflite"), tmp_path / "gen")
    assert info["ops"][0]["kernel"] == "tr_depthwise_conv_3x3_int8"
    doubled = generate(build_conv(_params("stride1_same_8"), tmp_path / "d.tflite"), tmp_path / "gen_d")
    assert doubled["ops"][0]["kernel"] == "tr_depthwise_conv_3x3_doubled_int8"
    assert "_shift[" in (tmp_path / "gen" / "model_weights.c").read_text()


@pytest.mark.parametrize("case", sorted(ROW_LOOP_CASES))
def test_row_loop_cases_take_the_doubled_form_over_all_of_int8(tmp_path: Path, case: str) -> None:
    """The cases meant for the assembly row loop meet its conditions (doubled form, act_min -128,
    act_max 127; the ReLU form at output zero point -128), else the QEMU test would miss it."""
    from toolchain.codegen import generate

    info = generate(build_conv(_params(case), tmp_path / "dw.tflite"), tmp_path / "gen")
    assert info["ops"][0]["kernel"] == "tr_depthwise_conv_3x3_doubled_int8"
    text = " ".join((tmp_path / "gen" / "model.c").read_text().split())
    assert ".act_min = -128, .act_max = 127" in text
    assert (".output_offset = -128," in text) == ROW_LOOP_CASES[case]
    assert ".group_constants = tr_" in text  # the loop's constants laid out, or it would not run


def test_group_constants_only_where_the_row_loop_reads_them(tmp_path: Path) -> None:
    """No table for TFLM's general form, a clamp narrower than int8, or a core without DSP (whose
    plain C reads the requant arrays): it would only take flash."""
    from toolchain.codegen import generate

    for case, dsp in (("general_requantization", True), ("stride1_same_8", True), ("tall_row_loop", False)):
        generate(build_conv(_params(case), tmp_path / f"{case}.tflite"), tmp_path / case, dsp=dsp)
        text = " ".join((tmp_path / case / "model.c").read_text().split())
        assert ".group_constants = NULL" in text, case


def test_group_constants_are_laid_out_as_the_row_loop_reads_them() -> None:
    """Per group of four: (multiplier, rounding constant, right shift) per channel, then the doubled
    biases; a partial last group padded with zeros (it runs in C, from the table too)."""
    from toolchain.codegen.ops.fully_connected import doubled_requant

    bias = np.array([100, -200, 300, -400, 500, 600], np.int64)
    abs_sums = np.full(6, 50, np.int64)
    mults = np.array([1 << 30 | k for k in range(6)], np.int64) + (1 << 29)
    shifts = np.array([-1, -2, -3, -4, -5, -6], np.int64)
    doubled = doubled_requant(bias, abs_sums, mults, shifts, -3)
    assert doubled is not None
    right, rounding = doubled
    table = three_by_three_group_constants(bias, mults, doubled)
    assert table.shape == (32,)
    for c in range(6):
        group = table[16 * (c // 4) :]
        k = c % 4
        assert list(group[3 * k : 3 * k + 3]) == [mults[c], rounding[c], right[c]]
        assert group[12 + k] == 2 * bias[c]
    assert list(table[16 + 6 : 16 + 12]) == [0] * 6  # channels 6 and 7: nothing
    assert list(table[16 + 14 :]) == [0, 0]


# cases whose 3x3 call takes the table on a DSP target: whole groups then a partial one (the
# assembly loop, then C), a partial group alone (three channels), whole groups in C (no stored
# column inside the row: the assembly widening declines)
TABLE_CASES = (
    "whole_and_partial_group_row_loop",
    "relu_low_zero_point_13_valid",
    "one_column_row_loop",
    "three_channels",
)


@pytest.mark.parametrize("case", TABLE_CASES)
def test_the_table_is_the_only_copy_of_its_calls_constants(tmp_path: Path, case: str) -> None:
    """Generated for a DSP target, a call with `group_constants` keeps no per-channel arrays (bias,
    multipliers, doubled pairs: the 16 bytes per channel the table holds), and the table covers
    every channel (the last group zero-padded); for a core without DSP the arrays and no table."""
    from toolchain.codegen import generate

    path = build_conv(_params(case), tmp_path / "dw.tflite")
    channels = _params(case)["c"]
    tables = {}
    for dsp in (True, False):
        gen = tmp_path / f"gen_{dsp}"
        info = generate(path, gen, dsp=dsp)
        assert info["ops"][0]["kernel"] == "tr_depthwise_conv_3x3_doubled_int8"
        tables[dsp] = {c["c_name"].rsplit("_", 2)[-1]: c for c in info["constants"]}
        text = " ".join((gen / "model.c").read_text().split())
        arrays = [f".{field} = NULL" in text for field in ("bias", "multiplier", "doubled")]
        assert arrays == [dsp] * 3, (case, dsp)
        assert (".group_constants = NULL" in text) != dsp
    groups = -(-channels // 4)
    assert sorted(tables[True]) == ["constants", "words"]  # group_constants, filter_words
    assert tables[True]["constants"]["count"] == 16 * groups
    assert sorted(tables[False]) == ["bias", "doubled", "multiplier", "words"]
    assert tables[False]["doubled"]["count"] == 2 * channels


@pytest.mark.parametrize("case", TABLE_CASES)
def test_the_table_alone_is_exact_in_plain_c_under_the_sanitizers(tmp_path: Path, case: str) -> None:
    """DSP-generated C built for the host takes the kernel's plain C form, which must find every
    group's constants in the table (the per-channel arrays are NULL); C generated for a core
    without DSP reads the arrays. Both bit-exact with TFLM, with no NULL pointer arithmetic or
    out-of-bounds read (-fsanitize=address,undefined)."""
    from toolchain import oracle
    from toolchain.codegen import generate
    from toolchain.codegen.verify import build_host, run_host

    path = build_conv(_params(case), tmp_path / "dw.tflite")
    x = np.random.default_rng(5).integers(-128, 128, size=(4, *parse(path).inputs[0].shape), dtype=np.int8)
    expected = oracle.run(path, x)[0].reshape(len(x), -1)
    for dsp in (True, False):
        gen = tmp_path / f"gen_{dsp}"
        info = generate(path, gen, tflm_arena=False, dsp=dsp)
        exe = build_host(gen, info, tmp_path / f"host_{dsp}", sanitize=True)
        ours = run_host(exe, x.reshape(len(x), -1), info)[0]
        np.testing.assert_array_equal(ours, expected, err_msg=f"{case}, dsp={dsp}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stride_across_of_3_runs_by_columns_and_a_lone_tall_image_by_rows(
    tmp_path: Path, case: str
) -> None:
    """A stride across of 3 (down 1 or 2): the generated call runs the image by columns, its
    geometry and weights given transposed. Anything else by rows, a tall image included: alone in
    its model, its input and output buffers plus the ring are the arena's peak, which the longer
    rows of its columns would raise (tests/test_codegen_inplace.py has one that runs by columns)."""
    from toolchain.codegen import generate

    p = _params(case)
    path = build_conv(p, tmp_path / "dw.tflite")
    assert must_run_by_columns(parse(path).ops[0]) == (case in BY_COLUMNS)
    generate(path, tmp_path / "gen")
    text = " ".join((tmp_path / "gen" / "model.c").read_text().split())
    assert f".transposed = {int(case in BY_COLUMNS)}," in text
    if case in BY_COLUMNS:  # the frame's input height is the image's width
        assert f".in_h = {p['w']}, .in_w = {p['h']}," in text


def test_dilated_or_wider_kernels_keep_their_kernels(tmp_path: Path) -> None:
    dilated = build_conv({**BASE, "dil_h": 2}, tmp_path / "dilated.tflite")
    stride3 = build_conv({**BASE, "stride_h": 3, "stride_w": 3}, tmp_path / "stride3.tflite")
    five = build_conv({**BASE, "k_w": 5}, tmp_path / "five.tflite")
    for path in (dilated, stride3, five):
        assert not runs_three_by_three(parse(path).ops[0])
        assert _check(path, 3)["kernels"] == ["tr_depthwise_conv_dm1_doubled_int8"]


def test_weight_words_pair_taps_as_the_kernel_reads_them() -> None:
    """Group 0, kernel row 1 of five channels (the second group zero-padded): the six words."""
    taps = np.arange(45, dtype=np.int64).reshape(9, 5) - 20  # taps[t][c] = 5 t + c - 20
    words = three_by_three_weights(taps.astype(np.int8), 2).view(np.uint32)
    assert words.size == 2 * 3 * 6
    row = words[6:12]
    low, high = (row & 0xFFFF).astype(np.int16), (row >> 16).astype(np.int16)
    w = lambda t, c: 2 * int(taps[t, c])  # noqa: E731 - doubled weight of tap t (row-major), channel c
    assert list(low) == [w(3, 0), w(3, 1), w(3, 2), w(3, 3), w(5, 0), w(5, 1)]
    assert list(high) == [w(4, 0), w(4, 1), w(4, 2), w(4, 3), w(5, 2), w(5, 3)]
    padded = words[18:].view(np.uint32) >> 16  # channels 5..7 of the second group weigh 0
    assert list(padded[[1, 2, 3, 7, 8, 9]]) == [0] * 6


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m33", "qemu_m3"])  # DSP paths; generic on the M3
def test_three_by_three_kernel_is_bit_exact_in_qemu(
    tmp_path: Path, pio_build_cache: Path, board: str
) -> None:
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate

    for case in QEMU_CASES:
        path = build_conv(_params(case), tmp_path / f"{case}.tflite")
        x = np.random.default_rng(3).integers(
            -128, 128, size=(2, *parse(path).inputs[0].shape), dtype=np.int8
        )
        gen = tmp_path / case
        generate(path, gen, tflm_arena=False)
        build_checked(gen, board)
        outputs = run_samples(gen, board, x)["outputs"][0]
        np.testing.assert_array_equal(outputs, oracle.run(path, x)[0], err_msg=f"{case} on {board}")
