"""FULLY_CONNECTED: int8 input x int8 weights (per-tensor or per-channel) + int32 bias.

The input zero point is folded into the bias at generation time
(sum_i w[o,i] * (x[i] - zp) = sum_i w[o,i] * x[i] - zp * sum_i w[o,i]), so the kernel's
inner loop is a plain int8 dot product, the shape the Cortex-M4 SIMD MAC wants. Weights
are stored packed by four rows (packing.py) so four outputs share each input load.
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
from toolchain.codegen.packing import pack_rows_by_four
from toolchain.codegen.quant import activation_range_int8, conv_multipliers, fc_multiplier
from toolchain.errors import UnsupportedError

OPCODES = ("FULLY_CONNECTED",)
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
# tr_requantize_doubled (tr_requantize.h) is exact for right shifts in this range and |acc| below 2**30.
DOUBLED_RIGHT_SHIFTS = range(1, 23)
DOUBLED_ACC_LIMIT = 2**30


def _fail(op: Op, what: str) -> UnsupportedError:
    return UnsupportedError(f"op {op.index} (FULLY_CONNECTED): {what}")


def check_int8_activation(op: Op, t: Tensor | None, role: str) -> None:
    """An int8 per-tensor quantized activation, or an UnsupportedError naming the op and role."""
    if t is None or t.dtype != "int8" or t.scale.size != 1:
        found = "missing" if t is None else f"{t.dtype} with {t.scale.size} scales"
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): {role} tensor is {found}; supported: int8 per-tensor quantized"
        )
    if t.data is not None and role != "filter":
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): constant {role} tensor '{t.name}' is not supported"
        )


def check_weights(op: Op, filt: Tensor | None, bias: Tensor | None, channels: int) -> None:
    """Constant int8 symmetric weights (zero point 0) and an optional constant int32 bias."""
    if filt is None or filt.data is None or filt.dtype != "int8":
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights must be a constant int8 tensor; supported: int8 per-tensor or per-channel"
        )
    if np.any(filt.zero_point != 0):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights '{filt.name}' have a non-zero zero point; supported: symmetric int8"
        )
    if filt.scale.size not in (1, channels):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): weights '{filt.name}' have {filt.scale.size} scales for {channels} channels"
        )
    if bias is not None and (bias.data is None or bias.dtype != "int32"):
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): bias '{bias.name}' is {bias.dtype}; supported: constant int32"
        )


def check_activation(op: Op) -> None:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATIONS:
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): fused activation {act}; supported: {', '.join(ACTIVATIONS)}"
        )


def check(op: Op) -> None:
    inp, filt = op.inputs[0], op.inputs[1] if len(op.inputs) > 1 else None
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
    check_activation(op)


def requant_arrays(
    op: Op, inp: Tensor, filt: Tensor, out: Tensor, channels: int, per_tensor_fc: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) arrays, computed the way TFLM computes them for this op."""
    if per_tensor_fc and filt.scale.size == 1:
        m, s = fc_multiplier(float(inp.scale[0]), float(filt.scale[0]), float(out.scale[0]))
        return np.full(channels, m, np.int32), np.full(channels, s, np.int32)
    return conv_multipliers(float(inp.scale[0]), filt.scale, float(out.scale[0]), channels)


def folded_bias(bias: Tensor | None, weight_sums: np.ndarray, input_zero_point: int, op: Op) -> np.ndarray:
    """bias - input_zero_point * sum(weights of the channel), checked to fit int32."""
    b = np.zeros(weight_sums.shape, np.int64) if bias is None else bias.data.astype(np.int64).reshape(-1)
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


def layer_fields(op: Op, ctx: LoweringContext, name: str) -> dict[str, FieldValue]:
    """Weights (packed by four rows), folded bias and requantization (`requant_fields`): the
    `tr_dense_layer` of one FULLY_CONNECTED layer, plain or fused; arrays named `name`_*."""
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    out_depth = filt.shape[0]
    mults, shifts = requant_arrays(op, inp, filt, out, out_depth, per_tensor_fc=True)
    weights = filt.data.astype(np.int64)
    folded = folded_bias(bias, weights.sum(axis=1), int(inp.zero_point[0]), op)
    return {
        "filter": ctx.constant(
            f"{name}_filter",
            pack_rows_by_four(filt.data),
            "int8_t",
            f"weights '{filt.name}' {shape_text(filt)}, rows packed by four",
        ),
        "bias": ctx.constant(f"{name}_bias", folded, "int32_t"),
        "requant": requant_fields(
            ctx,
            name,
            folded,
            np.abs(weights).sum(axis=1),
            mults,
            shifts,
            out,
            op.options.get("fused_activation_function", "NONE"),
        ),
    }


def describe(op: Op) -> str:
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    act = op.options.get("fused_activation_function", "NONE")
    return (
        f"FULLY_CONNECTED {shape_text(inp)} ({quant_text(inp)}) x {shape_text(filt)} ({quant_text(filt)})"
        f" -> {shape_text(out)} ({quant_text(out)}), {act}"
    )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    out_depth, in_depth = filt.shape
    batches = inp.size // in_depth
    name = ctx.unique_name(f"fc_{layer_name(filt, f'op{op.index}')}")
    fields: dict[str, FieldValue] = {
        "batches": batches,
        "input_depth": in_depth,
        "output_depth": out_depth,
        **layer_fields(op, ctx, name),
    }
    return KernelCall(
        "tr_fully_connected.c",
        "tr_fully_connected_int8",
        ctx.params("tr_fc_params", name, fields),
        [ctx.tensor(inp), ctx.tensor(out)],
        describe(op),
        macs=batches * in_depth * out_depth,
    )
