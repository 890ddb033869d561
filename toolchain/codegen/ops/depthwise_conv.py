"""DEPTHWISE_CONV_2D: any depth multiplier, stride, padding and dilation; per-channel weights.

Output channel c = input channel c // depth_multiplier (TFLite's layout: oc = ic * m + j).
The input zero point is folded into the bias; padding taps then add w * zero_point,
which the kernel does only on border pixels.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import (
    FieldValue,
    KernelCall,
    LoweringContext,
    layer_name,
    quant_text,
    shape_text,
)
from toolchain.codegen.ops.conv import check_geometry, geometry_fields
from toolchain.codegen.ops.fully_connected import (
    check_activation,
    check_int8_activation,
    check_weights,
    doubled_requant,
    folded_bias,
    requant_arrays,
)
from toolchain.codegen.quant import activation_range_int8
from toolchain.errors import UnsupportedError

OPCODES = ("DEPTHWISE_CONV_2D",)
# Room for a pointer in the depth-multiplier-1 kernel's scratch: 8 so a 64-bit host fits too.
POINTER_BYTES = 8


def check(op: Op) -> None:
    inp, out = op.inputs[0], op.outputs[0]
    filt = op.inputs[1] if len(op.inputs) > 1 else None
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    check_int8_activation(op, inp, "input")
    check_int8_activation(op, out, "output")
    if (
        len(inp.shape) != 4
        or len(out.shape) != 4
        or filt is None
        or len(filt.shape) != 4
        or filt.shape[0] != 1
    ):
        raise UnsupportedError(
            f"op {op.index} (DEPTHWISE_CONV_2D): expects 4-D NHWC input/output and 1HWC weights"
        )
    out_c = out.shape[3]
    check_weights(op, filt, bias, out_c)
    in_c = inp.shape[3]
    multiplier = out_c // in_c if in_c else 0
    if filt.shape[3] != out_c or multiplier * in_c != out_c:
        raise UnsupportedError(
            f"op {op.index} (DEPTHWISE_CONV_2D): {out_c} output channels, {filt.shape[3]} "
            f"filters for {in_c} input channels; supported: output = input channels x multiplier"
        )
    check_geometry(op, inp.shape[1:3], filt.shape[1:3], out.shape[1:3])
    check_activation(op)


def doubled_weights(weights: np.ndarray) -> np.ndarray:
    """(taps, channels) int8 -> the int16 layout of tr_depthwise_conv_dm1_doubled_int8: per group
    of four channels, per tap, 2*w of channels 0, 2, 1, 3 (channels a multiple of 4)."""
    taps, channels = weights.shape
    grouped = (2 * weights.astype(np.int16)).reshape(taps, channels // 4, 4)[:, :, [0, 2, 1, 3]]
    return np.ascontiguousarray(grouped.transpose(1, 0, 2)).reshape(-1)


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    o = op.options
    n, in_h, in_w, in_c = inp.shape
    _, k_h, k_w, out_c = filt.shape
    out_h, out_w = out.shape[1:3]
    dil_h, dil_w = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    mults, shifts = requant_arrays(op, inp, filt, out, out_c, per_tensor_fc=False)
    act = o.get("fused_activation_function", "NONE")
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    zp = int(inp.zero_point[0])
    sums = filt.data.astype(np.int64).reshape(-1, out_c).sum(axis=0)
    name = ctx.unique_name(f"depthwise_{layer_name(filt, f'op{op.index}')}")
    multiplier = out_c // in_c
    bias_folded = folded_bias(bias, sums, zp, op)
    taps = filt.data.reshape(-1, out_c)
    doubled = (
        doubled_requant(
            bias_folded, np.abs(taps.astype(np.int64)).sum(axis=0), mults, shifts, int(out.zero_point[0])
        )
        if multiplier == 1 and out_c % 4 == 0
        else None
    )
    comment = (
        f"DEPTHWISE_CONV_2D {shape_text(inp)} ({quant_text(inp)}) * {shape_text(filt)} {k_h}x{k_w} "
        f"x{out_c // in_c} stride {o['stride_h']}x{o['stride_w']} dilation {dil_h}x{dil_w} {o['padding']}"
        f" -> {shape_text(out)} ({quant_text(out)}), {act}"
    )
    fields: dict[str, FieldValue] = {
        "geometry": geometry_fields(op),
        "input_zero_point": zp,
    }
    macs = n * out_h * out_w * out_c * k_h * k_w
    buffers = [ctx.tensor(inp), ctx.tensor(out)]
    if doubled is not None:  # the fast path: int16 doubled weights, ~10-instruction requantization
        fields["filter_x2"] = ctx.constant(
            f"{name}_filter_x2",
            doubled_weights(taps),
            "int16_t",
            f"weights '{filt.name}' {shape_text(filt)}, doubled, by four channels (0, 2, 1, 3)",
        )
        fields["bias_x2"] = ctx.constant(f"{name}_bias_x2", 2 * bias_folded.astype(np.int64), "int32_t")
        pairs = np.stack(doubled, axis=1).reshape(-1)
        fields["requant"] = {
            "multiplier": ctx.constant(f"{name}_multiplier", mults, "int32_t"),
            "shift": "NULL",
            "doubled": ctx.constant(f"{name}_doubled", pairs, "int32_t"),
            "output_offset": int(out.zero_point[0]),
            "act_min": lo,
            "act_max": hi,
        }
        scratch = ctx.scratch(k_h * k_w * POINTER_BYTES + in_c)
        params = ctx.params("tr_depthwise_x2_params", name, fields)
        return KernelCall(
            "tr_depthwise_conv.c",
            "tr_depthwise_conv_dm1_doubled_int8",
            params,
            [*buffers, scratch],
            comment,
            macs,
        )
    fields["filter"] = ctx.constant(
        f"{name}_filter", filt.data, "int8_t", f"weights '{filt.name}' {shape_text(filt)}"
    )
    fields["bias"] = ctx.constant(f"{name}_bias", bias_folded, "int32_t")
    fields["requant"] = {
        "multiplier": ctx.constant(f"{name}_multiplier", mults, "int32_t"),
        "shift": ctx.constant(f"{name}_shift", shifts, "int32_t"),
        "doubled": "NULL",
        "output_offset": int(out.zero_point[0]),
        "act_min": lo,
        "act_max": hi,
    }
    params = ctx.params("tr_depthwise_params", name, fields)
    if multiplier == 1:  # channels in registers; tap pointers (8 bytes each) and a row of zero points
        scratch = ctx.scratch(k_h * k_w * POINTER_BYTES + in_c)
        return KernelCall(
            "tr_depthwise_conv.c", "tr_depthwise_conv_dm1_int8", params, [*buffers, scratch], comment, macs
        )
    # one int32 accumulator per output channel in scratch
    accumulators = f"(int32_t *)(void *){ctx.scratch(4 * out_c)}"
    return KernelCall(
        "tr_depthwise_conv.c", "tr_depthwise_conv_int8", params, [*buffers, accumulators], comment, macs
    )
