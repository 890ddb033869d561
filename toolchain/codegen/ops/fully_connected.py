"""FULLY_CONNECTED: int8 input x int8 weights (per-tensor or per-channel) + int32 bias.

The input zero point is folded into the bias at generation time
(sum_i w[o,i] * (x[i] - zp) = sum_i w[o,i] * x[i] - zp * sum_i w[o,i]), so the kernel's
inner loop is a plain int8 dot product, the shape the Cortex-M4 SIMD MAC wants. Weights
are stored packed by four rows (packing.py) so four outputs share each input load.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.packing import pack_rows_by_four
from toolchain.codegen.quant import activation_range_int8, conv_multipliers, fc_multiplier
from toolchain.errors import UnsupportedError

OPCODES = ("FULLY_CONNECTED",)
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _fail(op: Op, what: str) -> UnsupportedError:
    return UnsupportedError(f"op {op.index} (FULLY_CONNECTED): {what}")


def check_int8_activation(op: Op, t: Tensor | None, role: str) -> None:
    """An int8 per-tensor quantized activation, or an UnsupportedError naming the op and role."""
    if t is None or t.dtype != "int8" or t.scale.size != 1:
        found = "missing" if t is None else f"{t.dtype} with {t.scale.size} scales"
        raise UnsupportedError(f"op {op.index} ({op.opcode}): {role} tensor is {found}; supported: int8 per-tensor quantized")
    if t.data is not None and role != "filter":
        raise UnsupportedError(f"op {op.index} ({op.opcode}): constant {role} tensor '{t.name}' is not supported")


def check_weights(op: Op, filt: Tensor | None, bias: Tensor | None, channels: int) -> None:
    """Constant int8 symmetric weights (zero point 0) and an optional constant int32 bias."""
    if filt is None or filt.data is None or filt.dtype != "int8":
        raise UnsupportedError(f"op {op.index} ({op.opcode}): weights must be a constant int8 tensor; supported: int8 per-tensor or per-channel")
    if np.any(filt.zero_point != 0):
        raise UnsupportedError(f"op {op.index} ({op.opcode}): weights '{filt.name}' have a non-zero zero point; supported: symmetric int8")
    if filt.scale.size not in (1, channels):
        raise UnsupportedError(f"op {op.index} ({op.opcode}): weights '{filt.name}' have {filt.scale.size} scales for {channels} channels")
    if bias is not None and (bias.data is None or bias.dtype != "int32"):
        raise UnsupportedError(f"op {op.index} ({op.opcode}): bias '{bias.name}' is {bias.dtype}; supported: constant int32")


def check_activation(op: Op) -> None:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATIONS:
        raise UnsupportedError(f"op {op.index} ({op.opcode}): fused activation {act}; supported: {', '.join(ACTIVATIONS)}")


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


def requant_arrays(op: Op, inp: Tensor, filt: Tensor, out: Tensor, channels: int, per_tensor_fc: bool
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
        raise UnsupportedError(f"op {op.index} ({op.opcode}): bias with folded input zero point overflows int32")
    return folded.astype(np.int32)


def layer_arguments(op: Op, ctx: LoweringContext) -> list[str]:
    """Weights, folded bias, per-channel multiplier and shift, output zero point and clamp bounds:
    the arguments one FULLY_CONNECTED layer adds to a kernel call (plain or fused)."""
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    out_depth = filt.shape[0]
    mults, shifts = requant_arrays(op, inp, filt, out, out_depth, per_tensor_fc=True)
    act = op.options.get("fused_activation_function", "NONE")
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    sums = filt.data.astype(np.int64).sum(axis=1)
    name = filt.name
    return [
        ctx.constant(f"{name}_weights", pack_rows_by_four(filt.data), "int8_t"),
        ctx.constant(f"{name}_bias", folded_bias(bias, sums, int(inp.zero_point[0]), op), "int32_t"),
        ctx.constant(f"{name}_multiplier", mults, "int32_t"),
        ctx.constant(f"{name}_shift", shifts, "int32_t"),
        str(int(out.zero_point[0])), str(lo), str(hi),
    ]


def describe(op: Op) -> str:
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    act = op.options.get("fused_activation_function", "NONE")
    return (f"FULLY_CONNECTED {shape_text(inp)} ({quant_text(inp)}) x {shape_text(filt)} ({quant_text(filt)})"
            f" -> {shape_text(out)} ({quant_text(out)}), {act}")


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    out_depth, in_depth = filt.shape
    batches = inp.size // in_depth
    weights, bias, mult, shift, offset, lo, hi = layer_arguments(op, ctx)
    args = [ctx.tensor(inp), weights, bias, ctx.tensor(out), str(batches), str(in_depth), str(out_depth),
            mult, shift, offset, lo, hi]
    return KernelCall("tr_fully_connected.c", "tr_fully_connected_int8", args, describe(op),
                      macs=batches * in_depth * out_depth)
