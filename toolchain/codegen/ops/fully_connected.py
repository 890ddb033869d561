"""FULLY_CONNECTED: int8 input x int8 weights (per-tensor or per-channel) + int32 bias.

The input zero point is folded into the bias at generation time
(sum_i w[o,i] * (x[i] - zp) = sum_i w[o,i] * x[i] - zp * sum_i w[o,i]), so the kernel's
inner loop is a plain int8 dot product, the shape the Cortex-M4 SIMD MAC wants. Weights
are stored in the matmul layout (packing.pack_matmul: packed by four rows, padded to whole
words and groups) so four outputs share each input load, with one per-channel table
(`channel_table`) beside them. `matmul_fields` is also what pointwise CONV_2D and the fused
factored pairs (fusion.py) use.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import (
    FieldValue,
    KernelCall,
    LoweringContext,
    layer_name,
    quant_text,
    shape_text,
)
from toolchain.codegen.ops._common import check_int8_activation, require_fused_activation
from toolchain.codegen.packing import pack_matmul, pack_row_stream, pack_thin
from toolchain.codegen.quant import activation_range_int8, conv_multipliers
from toolchain.errors import UnsupportedError

OPCODES = ("FULLY_CONNECTED",)
# tr_requantize_doubled (tr_requantize.h) is exact for right shifts in this range and |acc| below 2**30.
DOUBLED_RIGHT_SHIFTS = range(1, 23)
DOUBLED_ACC_LIMIT = 2**30


def _fail(op: Op, what: str) -> UnsupportedError:
    return UnsupportedError(f"op {op.index} (FULLY_CONNECTED): {what}")


def check_weights(op: Op, filt: Tensor | None, bias: Tensor | None, channels: int) -> None:
    """Constant int8 symmetric weights (zero point 0) and an optional constant int32 bias."""
    if filt is None or filt.data is None or filt.dtype != "int8":
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights must be a constant int8 tensor; "
            "supported: int8 per-tensor or per-channel"
        )
    if np.any(filt.zero_point != 0):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights '{filt.name}' have a non-zero zero point; "
            "supported: symmetric int8"
        )
    if filt.scale.size not in (1, channels):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights '{filt.name}' have {filt.scale.size} scales "
            f"for {channels} channels"
        )
    if bias is not None and (bias.data is None or bias.dtype != "int32"):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): bias '{bias.name}' is {bias.dtype}; supported: constant int32"
        )


def check(op: Op) -> None:
    inp, filt = op.input(0), op.inputs[1] if len(op.inputs) > 1 else None
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    check_int8_activation(op, inp, "input")
    check_int8_activation(op, op.outputs[0], "output")
    if filt is None or len(filt.shape) != 2:
        raise _fail(op, "weights must be a 2-D [outputs, inputs] tensor")
    check_weights(op, filt, bias, filt.shape[0])
    if inp.size % filt.shape[1]:
        raise _fail(op, f"input of {inp.size} values is not a multiple of the weights' depth {filt.shape[1]}")
    if op.options.get("weights_format", 0) != 0:
        raise _fail(op, "shuffled weights format; supported: DEFAULT")
    require_fused_activation(op)


def requant_arrays(
    op: Op, inp: Tensor, filt: Tensor, out: Tensor, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) arrays, computed the way TFLM computes them for this op.

    Per-tensor FULLY_CONNECTED weights included: TFLite Micro's kernel multiplies the scales
    in double there too (checked against the interpreter on rounding-sensitive scales).
    """
    return conv_multipliers(float(inp.scale[0]), filt.scale, float(out.scale[0]), channels)


def folded_bias(bias: Tensor | None, weight_sums: np.ndarray, input_zero_point: int, op: Op) -> np.ndarray:
    """bias - input_zero_point * sum(weights of the channel), checked to fit int32."""
    b = np.zeros(weight_sums.shape, np.int64) if bias is None else bias.values.astype(np.int64).reshape(-1)
    folded = b - int(input_zero_point) * weight_sums.astype(np.int64)
    if folded.min(initial=0) < -(2**31) or folded.max(initial=0) >= 2**31:
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): bias with folded input zero point overflows int32"
        )
    return folded.astype(np.int32)


def doubled_requant(
    bias: np.ndarray, weight_abs_sums: np.ndarray, mults: np.ndarray, shifts: np.ndarray, output_offset: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(right shifts, rounding constants) for tr_requantize_doubled, or None where it would not be exact.

    `bias` is the folded int32 bias and `weight_abs_sums` the per-channel sum of |weights|:
    the accumulator of channel c stays within |bias[c]| + 128 * weight_abs_sums[c] for any
    int8 input, which must be below 2**30 (the doubled accumulator then fits int32 and the
    rounding additions cannot overflow).
    """
    right = -shifts.astype(np.int64)
    reach = np.abs(bias.astype(np.int64)) + 128 * weight_abs_sums.astype(np.int64)
    if (
        np.any(mults <= 0)
        or right.min() < DOUBLED_RIGHT_SHIFTS.start
        or right.max() >= DOUBLED_RIGHT_SHIFTS.stop
        or reach.max() >= DOUBLED_ACC_LIMIT
    ):
        return None
    round_ = (1 << (right - 1)) + (int(output_offset) << right)
    return right.astype(np.int32), round_.astype(np.int32)


def requant_fields(
    ctx: LoweringContext,
    name: str,
    bias: np.ndarray,
    weight_abs_sums: np.ndarray,
    mults: np.ndarray,
    shifts: np.ndarray,
    out: Tensor,
    act: str,
) -> dict[str, FieldValue]:
    """The `tr_requant_params` of a FULLY_CONNECTED or CONV_2D layer: TFLM's general form
    (`shift` set) unless the doubled form is exact for this layer (`doubled` set: pairs of right
    shift and rounding constant)."""
    offset = int(out.zero_point[0])
    lo, hi = activation_range_int8(act, float(out.scale[0]), offset)
    doubled = doubled_requant(bias, weight_abs_sums, mults, shifts, offset)
    if doubled is None:
        shift_c, doubled_c = ctx.constant(f"{name}_shift", shifts, "int32_t"), "NULL"
    else:
        pairs = np.stack(doubled, axis=1).reshape(-1)
        shift_c, doubled_c = "NULL", ctx.constant(f"{name}_doubled", pairs, "int32_t")
    return {
        "multiplier": ctx.constant(f"{name}_multiplier", mults, "int32_t"),
        "shift": shift_c,
        "doubled": doubled_c,
        "output_offset": offset,
        "act_min": lo,
        "act_max": hi,
    }


def channel_table(
    bias: np.ndarray, weight_abs_sums: np.ndarray, mults: np.ndarray, shifts: np.ndarray, output_offset: int
) -> tuple[np.ndarray, bool]:
    """The matmul kernels' per-channel table (tr_matmul.h: folded bias, multiplier, shift, rounding
    per output channel, one row each) and whether it holds the doubled requantization, which the
    kernels use only where every multiplier is above 2**30 (their high product then has the sign
    of the accumulator) and which doubles the bias (the accumulators are kept doubled)."""
    doubled = doubled_requant(bias, weight_abs_sums, mults, shifts, output_offset)
    if doubled is None or np.any(mults <= 2**30):
        table = np.stack([bias, mults, shifts, np.zeros_like(shifts)], axis=1).astype(np.int64)
        return table.astype(np.int32), False
    shift, round_ = doubled
    table = np.stack([2 * bias.astype(np.int64), mults, shift, round_], axis=1).astype(np.int64)
    return table.astype(np.int32), True


def layer_table(op: Op) -> tuple[np.ndarray, np.ndarray, bool, int, int, int]:
    """One FULLY_CONNECTED or pointwise CONV_2D as the matmul kernels see it: its (channels, depth)
    int8 weights, its per-channel table (`channel_table`), whether the table is doubled, the output
    zero point and the fused activation's int8 range."""
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    channels = filt.shape[0]
    mults, shifts = requant_arrays(op, inp, filt, out, channels)
    rows = filt.values.reshape(channels, -1)
    weights = rows.astype(np.int64)
    folded = folded_bias(bias, weights.sum(axis=1), int(inp.zero_point[0]), op)
    offset = int(out.zero_point[0])
    table, doubled = channel_table(folded, np.abs(weights).sum(axis=1), mults, shifts, offset)
    lo, hi = activation_range_int8(
        op.options.get("fused_activation_function", "NONE"), float(out.scale[0]), offset
    )
    return rows, table, doubled, offset, lo, hi


def row_stream_table(rows: np.ndarray, table: np.ndarray, doubled: bool) -> np.ndarray:
    """The channel table of tr_fully_connected_row_int8: its accumulators end at minus the sum
    (the stream's arithmetic, tr_fully_connected.c), so the bias field is -bias (never doubled:
    the kernel doubles after negating) less the 127 (w0 + w2) that each weight word's
    (w0, w2) x (127 - x0, 127 - x2) adds, summed over the output's row. Wrapped to int32 like
    the kernel's sums: the final sum fits, the intermediate need not."""
    weights = np.asarray(rows, dtype=np.int64)
    bias = table[:, 0].astype(np.int64) >> int(doubled)  # a doubled table holds 2 x bias exactly
    stream = table.astype(np.int64)
    stream[:, 0] = -bias - 127 * (weights[:, 0::4].sum(axis=1) + weights[:, 2::4].sum(axis=1))
    return ((stream + 2**31) % 2**32 - 2**31).astype(np.int32)


def matmul_fields(op: Op, ctx: LoweringContext, name: str, row_stream: bool = False) -> dict[str, FieldValue]:
    """The `tr_matmul_layer` (tr_fully_connected.h) of one FULLY_CONNECTED or pointwise CONV_2D,
    plain or fused: weights in the matmul layout and the per-channel table padded to whole groups
    of four; arrays named `name`_*. `row_stream`: the same bytes and table rows in the form of
    tr_fully_connected_row_int8 (`pack_row_stream`, `row_stream_table`)."""
    filt = op.input(1)
    rows, table, doubled, offset, lo, hi = layer_table(op)
    if row_stream:
        table = row_stream_table(rows, table, doubled)
    table = np.concatenate([table, np.repeat(table[-1:], -rows.shape[0] % 4, axis=0)])  # whole groups of four
    layout = "row stream (matmul layout, bytes w1^0x80 w0 w3^0x80 w2)" if row_stream else "matmul layout"
    bias = "-bias - 127 sum(w0 + w2)" if row_stream else "bias"
    return {
        "filter": ctx.constant(
            f"{name}_filter",
            pack_row_stream(rows) if row_stream else pack_matmul(rows),
            "int8_t",
            f"weights '{filt.name}' {shape_text(filt)}, {layout} (groups of four rows, zero-padded)",
        ),
        "channels": ctx.constant(
            f"{name}_channels", table, "int32_t", f"per channel: {bias}, multiplier, shift, rounding"
        ),
        "doubled": int(doubled),
        "output_offset": offset,
        "act_min": lo,
        "act_max": hi,
    }


# Inputs per row of a thin stream (packing.pack_thin) that tr_thin_groups takes: thirty-two
# straight steps of four inputs. Its deep forms (tr_thin_deep.c, shipped only with a model that
# needs them: `THIN_DEEP_SOURCE`) have sixty-four, for a factored pair's layers on a DSP target.
THIN_MAX_DEPTH = 128
THIN_DEEP_MAX_DEPTH = 256
THIN_DEEP_SOURCE = "tr_thin_deep.c"


def thin_max_depth(pair: bool, dsp: bool) -> int:
    """The most inputs a layer may have to run from a thin stream: `THIN_DEEP_MAX_DEPTH` for a
    layer of a factored pair on a DSP target, where it beats the row stream per MAC and per group
    at any depth (bench_factored: the digits MLP's 256-11 layer about 500 instructions faster, for
    the deep forms' 2.9 KB of code); `THIN_MAX_DEPTH` for the steps of a spatial pair or a Tucker
    chain (run per pixel, each widening its row again) and on the plain C path (Cortex-M0/M3),
    which keep the choice measured before the deep forms existed."""
    return THIN_DEEP_MAX_DEPTH if pair and dsp else THIN_MAX_DEPTH


def thin_fields(
    op: Op, ctx: LoweringContext, name: str, max_depth: int = THIN_MAX_DEPTH
) -> tuple[dict[str, FieldValue], str] | None:
    """A layer of a factored pair as a thin int16 stream (tr_fully_connected_factored_int8): the
    `tr_matmul_layer` without weights or table (the stream holds both) and the stream's array
    name; None where the layer does not qualify (more than `max_depth` inputs, `thin_max_depth`,
    or a requantization other than the doubled one over the full int8 range). Short rows are where
    int8 weights cost most (two SXTB16 per word and output, per-group setup over few MACs); the
    stream costs twice their flash."""
    filt = op.input(1)
    rows, table, doubled, offset, lo, hi = layer_table(op)
    if rows.shape[1] > max_depth or not doubled or (lo, hi) != (-128, 127):
        return None
    stream = ctx.constant(
        f"{name}_thin",
        pack_thin(rows, table),
        "int32_t",
        f"weights '{filt.name}' {shape_text(filt)} as int16 pairs with the per-channel biases and "
        "requantization, per group of four rows (packing.pack_thin)",
    )
    fields: dict[str, FieldValue] = {
        "filter": "NULL",
        "channels": "NULL",
        "doubled": 1,
        "output_offset": offset,
        "act_min": lo,
        "act_max": hi,
    }
    return fields, stream


def reads_row_in_place(batches: int, out_depth: int) -> bool:
    """tr_fully_connected_int8 reads one row into one group of at most four outputs in place: a
    widened copy (2 x depth bytes of scratch) would be read only once, by that group."""
    return batches == 1 and out_depth <= 4


def takes_row_stream(batches: int, out_depth: int, dsp: bool) -> bool:
    """Whether a FULLY_CONNECTED runs tr_fully_connected_row_int8: one row on a DSP target, where
    it costs 14 instructions per 16 MACs against 18. Not where tr_fully_connected_int8 reads the
    row in place (no scratch to prepare it in), nor on the plain C path (Cortex-M0/M3), whose
    loop reads the plain layout with one LDRSB a weight."""
    return dsp and batches == 1 and not reads_row_in_place(batches, out_depth)


def wide_scratch_bytes(depth: int, rows: int) -> int:
    """Bytes of the matmul loops' widened-input scratch (TR_MATMUL_WIDE_WORDS in tr_matmul.h) for
    `rows` input rows at a time (2 when there are two or more, else 1) of `depth` values."""
    return 8 * min(rows, 2) * -(-depth // 4)


def wide_argument(ctx: LoweringContext, depth: int, batches: int, out_depth: int) -> str:
    """The `wide` argument of tr_fully_connected_int8: its scratch, or NULL where it reads the row
    in place."""
    if reads_row_in_place(batches, out_depth):
        return "NULL"
    return ctx.scratch(wide_scratch_bytes(depth, batches))


def describe(op: Op) -> str:
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    act = op.options.get("fused_activation_function", "NONE")
    return (
        f"FULLY_CONNECTED {shape_text(inp)} ({quant_text(inp)}) x {shape_text(filt)} ({quant_text(filt)})"
        f" -> {shape_text(out)} ({quant_text(out)}), {act}"
    )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    out_depth, in_depth = filt.shape
    batches = inp.size // in_depth
    name = ctx.unique_name(f"fc_{layer_name(filt, f'op{op.index}')}")
    stream = takes_row_stream(batches, out_depth, ctx.dsp)
    fields: dict[str, FieldValue] = {
        "batches": batches,
        "input_depth": in_depth,
        "output_depth": out_depth,
        "layer": matmul_fields(op, ctx, name, row_stream=stream),
    }
    return KernelCall(
        "tr_fully_connected.c",
        "tr_fully_connected_row_int8" if stream else "tr_fully_connected_int8",
        ctx.params("tr_fc_params", name, fields),
        [ctx.tensor(inp), ctx.tensor(out), wide_argument(ctx, in_depth, batches, out_depth)],
        describe(op),
        macs=batches * in_depth * out_depth,
    )
