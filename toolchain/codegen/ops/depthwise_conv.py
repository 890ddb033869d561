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
from toolchain.codegen.ops._common import check_int8_activation, require_fused_activation
from toolchain.codegen.ops.conv import check_geometry, geometry_fields
from toolchain.codegen.ops.fully_connected import (
    check_weights,
    doubled_requant,
    folded_bias,
    requant_arrays,
    requant_fields,
)
from toolchain.codegen.quant import activation_range_int8
from toolchain.errors import UnsupportedError

OPCODES = ("DEPTHWISE_CONV_2D",)
# Room for a pointer in the depth-multiplier-1 kernel's scratch: 8 so a 64-bit host fits too.
POINTER_BYTES = 8


def check(op: Op) -> None:
    inp, out = op.input(0), op.outputs[0]
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
    require_fused_activation(op)


def doubled_weights(weights: np.ndarray) -> np.ndarray:
    """(taps, channels) int8 -> the int16 layout of tr_depthwise_conv_dm1_doubled_int8: per group
    of four channels, per tap, 2*w of channels 0, 2, 1, 3 (channels a multiple of 4)."""
    taps, channels = weights.shape
    grouped = (2 * weights.astype(np.int16)).reshape(taps, channels // 4, 4)[:, :, [0, 2, 1, 3]]
    return np.ascontiguousarray(grouped.transpose(1, 0, 2)).reshape(-1)


def tap_pairs(k_h: int, k_w: int, by_rows: bool) -> list[tuple[int, int | None]]:
    """Which two taps (row-major indices) share a column word: (2p, 2p + 1) in order, the last alone
    when the count is odd; `by_rows` (k_w a multiple of 4): taps (4q, 4q + 2) and (4q + 1, 4q + 3) of
    every kernel row, the halves SXTB16 makes of four contiguous taps."""
    n = k_h * k_w
    if by_rows:
        return [(q + r, q + r + 2) for q in range(0, n, 4) for r in (0, 1)]
    return [(t, t + 1 if t + 1 < n else None) for t in range(0, n, 2)]


def paired_weights(weights: np.ndarray, in_c: int, pairs: list[tuple[int, int | None]]) -> np.ndarray:
    """(taps, out_c) int8 -> the words of tr_depthwise_pairs_params: two int16 weights a word (first
    tap of the pair low, second high, a missing tap 0), per input channel, per group of four output
    channels (then the multiplier's remainder one by one), per tap pair, per output channel."""
    _, out_c = weights.shape
    multiplier = out_c // in_c
    w = weights.astype(np.int64)
    low = np.stack([w[a] for a, _ in pairs]) & 0xFFFF
    high = np.stack([w[b] if b is not None else np.zeros(out_c, np.int64) for _, b in pairs]) << 16
    words = ((low | high) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)  # [pairs][out_c]
    blocks = []
    for ic in range(in_c):
        first, j = ic * multiplier, 0
        while j < multiplier:
            size = 4 if j + 4 <= multiplier else 1
            blocks.append(words[:, first + j : first + j + size].reshape(-1))
            j += size
    return np.concatenate(blocks)


def three_by_three_weights(taps: np.ndarray, factor: int) -> np.ndarray:
    """(9, channels) int8 taps (row-major) -> the words of tr_depthwise_3x3_params, each weight times
    `factor` (2 for the doubled requantization): per group of four channels (zero-padded), per kernel
    row, (tap 0, tap 1) of channels 0..3, then tap 2 of channels (0, 2) and (1, 3), as int16 pairs."""
    channels = taps.shape[1]
    groups = -(-channels // 4)
    w = np.zeros((3, 3, groups * 4), np.int64)
    w[:, :, :channels] = factor * taps.astype(np.int64).reshape(3, 3, channels)
    w = w.reshape(3, 3, groups, 4).transpose(2, 0, 1, 3)  # [group][row][tap][channel]
    low = np.concatenate([w[:, :, 0, :], w[:, :, 2, 0:2]], axis=2)  # [group][row][6]
    high = np.concatenate([w[:, :, 1, :], w[:, :, 2, 2:4]], axis=2)
    words = ((low & 0xFFFF) | ((high & 0xFFFF) << 16)).astype(np.uint32).view(np.int32)
    return words.reshape(-1)


def three_by_three_group_constants(
    bias: np.ndarray, mults: np.ndarray, doubled: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """The `group_constants` of tr_depthwise_3x3_params (doubled form): per group of four channels,
    each channel's multiplier, rounding constant and right shift, then the four doubled biases, in
    the order the DSP path's assembly row loop reads them with LDM (laid out here, no group copies
    them at run time: some thirty instructions a group, where MobileNet's small layers have 32-64
    groups of nine pixels). A partial last group is padded to four channels with zeros (a padding
    channel computes 0 and is never stored), so the table holds every channel and is the call's only
    copy of its biases and requantization: the plain C form of the kernel (the partial group, a core
    without DSP running this C) reads it too."""
    right, rounding = doubled
    channels = len(bias)
    groups = -(-channels // 4)
    rows = np.zeros((groups * 4, 4), np.int64)  # per channel: multiplier, rounding, right shift, bias
    rows[:channels] = np.stack([mults, rounding, right, 2 * bias.astype(np.int64)], axis=1)
    per_group = rows.reshape(groups, 4, 4)
    return np.concatenate([per_group[:, :, :3].reshape(groups, 12), per_group[:, :, 3]], axis=1).reshape(-1)


def runs_three_by_three(op: Op) -> bool:
    """Whether tr_depthwise_conv_3x3_int8 computes this op: 3x3, multiplier 1, no dilation, a stride
    of 1 or 2 across the row of its frame (the image's row, or its column: `runs_transposed`)."""
    o, filt = op.options, op.input(1)
    return (
        tuple(filt.shape[1:3]) == (3, 3)
        and filt.shape[3] == op.input(0).shape[3]
        and o.get("dilation_h_factor", 1) == 1
        and o.get("dilation_w_factor", 1) == 1
        and (o["stride_w"] in (1, 2) or o["stride_h"] in (1, 2))
    )


def must_run_by_columns(op: Op) -> bool:
    """A stride across other than 1 or 2 (and 1 or 2 down): the 3x3 kernel's rows need one of
    those, so it runs the image by columns, its frame's rows being the image's columns."""
    return op.options["stride_w"] not in (1, 2) and op.options["stride_h"] in (1, 2)


def may_run_by_columns(op: Op) -> bool:
    """Whether the 3x3 kernel may run this op by columns where it need not: a tall, narrow image
    (DS-CNN's 25x5) whose output has the input's shape (SAME, stride 1). The kernel pays some
    fifty instructions of bookkeeping per row of its frame and group of four channels, so five rows
    of 25 run 12% faster than 25 of 5. Any other output would, by columns, overwrite input it still
    reads, and the depthwise could no longer run in place (`inplace`). The generator decides by
    the arena (`generator._columns_where_free`): the ring of stored rows grows with the height."""
    o = op.options
    out_h, out_w = op.outputs[0].shape[1:3]
    same_shape = tuple(op.input(0).shape) == tuple(op.outputs[0].shape)
    return o["stride_h"] in (1, 2) and o["stride_w"] in (1, 2) and out_h > out_w and same_shape


def runs_transposed(op: Op, by_columns: frozenset[int]) -> bool:
    """Whether the 3x3 kernel runs this op by columns: it must, or it may and the generator chose
    it (`by_columns`: op indices)."""
    return must_run_by_columns(op) or (op.index in by_columns and may_run_by_columns(op))


def call_runs_by_columns(call: KernelCall) -> bool:
    """Whether a lowered kernel call runs its image by columns, as `runs_transposed` chose when it
    was lowered (its params say so): the arena planner and the cost model read it from there."""
    return call.params.fields.get("transposed") == 1


def _transposed_geometry(geometry: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """A `tr_conv_geometry` with rows and columns swapped (the 3x3 kernel's frame of a transposed
    image: its window, strides and padding transposed too)."""
    swapped = dict(geometry)
    for a, b in (
        ("in_h", "in_w"),
        ("out_h", "out_w"),
        ("k_h", "k_w"),
        ("stride_h", "stride_w"),
        ("dil_h", "dil_w"),
        ("pad_top", "pad_left"),
    ):
        swapped[a], swapped[b] = geometry[b], geometry[a]
    return swapped


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    o = op.options
    n, in_h, in_w, in_c = inp.shape
    _, k_h, k_w, out_c = filt.shape
    out_h, out_w = out.shape[1:3]
    dil_h, dil_w = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    mults, shifts = requant_arrays(op, inp, filt, out, out_c)
    act = o.get("fused_activation_function", "NONE")
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    zp = int(inp.zero_point[0])
    sums = filt.values.astype(np.int64).reshape(-1, out_c).sum(axis=0)
    name = ctx.unique_name(f"depthwise_{layer_name(filt, f'op{op.index}')}")
    multiplier = out_c // in_c
    bias_folded = folded_bias(bias, sums, zp, op)
    taps = filt.values.reshape(-1, out_c)
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
    if runs_three_by_three(op):  # 3x3 multiplier 1: widened rows in scratch, SMLAD on tap pairs
        return _three_by_three_call(op, ctx, name, fields, bias_folded, mults, shifts, comment, buffers)
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
    if multiplier > 1:  # taps paired into int16 words, four output channels per column word
        return _paired_call(op, ctx, name, fields, bias_folded, mults, shifts, comment, buffers)
    fields["filter"] = ctx.constant(
        f"{name}_filter", filt.values, "int8_t", f"weights '{filt.name}' {shape_text(filt)}"
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
    # multiplier 1: channels in registers; tap pointers (8 bytes each) and a row of zero points
    scratch = ctx.scratch(k_h * k_w * POINTER_BYTES + in_c)
    return KernelCall(
        "tr_depthwise_conv.c", "tr_depthwise_conv_dm1_int8", params, [*buffers, scratch], comment, macs
    )


def _paired_call(
    op: Op,
    ctx: LoweringContext,
    name: str,
    fields: dict[str, FieldValue],
    bias_folded: np.ndarray,
    mults: np.ndarray,
    shifts: np.ndarray,
    comment: str,
    buffers: list[str],
) -> KernelCall:
    """The call of a paired-taps kernel (depth multiplier above 1): tr_depthwise_conv_rows_int8 for one
    input channel and rows of four taps, else tr_depthwise_conv_pairs_int8."""
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    _, k_h, k_w, out_c = filt.shape
    in_c = inp.shape[3]
    taps = filt.values.reshape(-1, out_c)
    act = op.options.get("fused_activation_function", "NONE")
    by_rows = in_c == 1 and k_w % 4 == 0 and op.options.get("dilation_w_factor", 1) == 1
    fields["filter_pairs"] = ctx.constant(
        f"{name}_filter_pairs",
        paired_weights(taps, in_c, tap_pairs(k_h, k_w, by_rows)),
        "int32_t",
        f"weights '{filt.name}' {shape_text(filt)}, as int16 pairs of taps by four output channels",
    )
    fields["bias"] = ctx.constant(f"{name}_bias", bias_folded, "int32_t")
    abs_sums = np.abs(taps.astype(np.int64)).sum(axis=0)
    fields["requant"] = requant_fields(ctx, name, bias_folded, abs_sums, mults, shifts, out, act)
    n_taps = k_h * k_w
    pairs = (n_taps + 1) // 2
    if by_rows:  # the column straight from kernel rows: k_h * k_w / 2 words, two rows of taps
        function, scratch = "tr_depthwise_conv_rows_int8", ctx.scratch(n_taps * 2 + 2 * k_w)
    else:  # the column, tap pointers (one more for an odd count), a row of zero points
        function = "tr_depthwise_conv_pairs_int8"
        scratch = ctx.scratch(pairs * in_c * 4 + (n_taps + 1) * POINTER_BYTES + in_c)
    params = ctx.params("tr_depthwise_pairs_params", name, fields)
    macs = out.shape[0] * out.shape[1] * out.shape[2] * out_c * n_taps
    return KernelCall("tr_depthwise_conv.c", function, params, [*buffers, scratch], comment, macs)


def _three_by_three_call(
    op: Op,
    ctx: LoweringContext,
    name: str,
    fields: dict[str, FieldValue],
    bias_folded: np.ndarray,
    mults: np.ndarray,
    shifts: np.ndarray,
    comment: str,
    buffers: list[str],
) -> KernelCall:
    """The call of tr_depthwise_conv_3x3_int8; weights and bias doubled where the doubled
    requantization is exact (the accumulators then come out doubled)."""
    filt, out = op.input(1), op.outputs[0]
    channels = filt.shape[3]
    taps = filt.values.reshape(-1, channels)
    transposed = runs_transposed(op, ctx.by_columns)
    if transposed:  # the frame's kernel row ky is the image's kernel column
        assert isinstance(fields["geometry"], dict)
        fields["geometry"] = _transposed_geometry(fields["geometry"])
        taps = taps.reshape(3, 3, channels).transpose(1, 0, 2).reshape(9, channels)
        comment += ", run by columns"
    fields["transposed"] = int(transposed)
    act = op.options.get("fused_activation_function", "NONE")
    abs_sums = np.abs(taps.astype(np.int64)).sum(axis=0)
    offset = int(out.zero_point[0])
    act_range = activation_range_int8(act, float(out.scale[0]), offset)
    doubled = doubled_requant(bias_folded, abs_sums, mults, shifts, offset)
    factor = 1 if doubled is None else 2
    fields["filter_words"] = ctx.constant(
        f"{name}_filter_words",
        three_by_three_weights(taps, factor),
        "int32_t",
        f"weights '{filt.name}' {shape_text(filt)}{', doubled' if factor == 2 else ''}, "
        "as int16 pairs by four channels",
    )
    if ctx.dsp and doubled is not None and act_range == (-128, 127):
        # Where the DSP path's assembly row loop runs (the doubled form, a clamp range of all of
        # int8), its table is the call's one copy of the biases and requantization: no per-channel
        # arrays. Elsewhere only those: the plain C path of a Cortex-M0/M3 reads them with less
        # arithmetic, and TFLM's general form has no table.
        fields["bias"] = "NULL"
        fields["requant"] = {
            "multiplier": "NULL",
            "shift": "NULL",
            "doubled": "NULL",
            "output_offset": offset,
            "act_min": act_range[0],
            "act_max": act_range[1],
        }
        fields["group_constants"] = ctx.constant(
            f"{name}_group_constants",
            three_by_three_group_constants(bias_folded, mults, doubled),
            "int32_t",
            "per group of four channels (the last zero-padded): (multiplier, rounding, right shift) x 4, "
            "then the 4 doubled biases",
        )
    else:
        bias = np.zeros(-(-channels // 4) * 4, np.int64)
        bias[:channels] = factor * bias_folded.astype(np.int64)
        fields["bias"] = ctx.constant(f"{name}_bias", bias, "int32_t")
        fields["requant"] = requant_fields(ctx, name, bias_folded, abs_sums, mults, shifts, out, act)
        fields["group_constants"] = "NULL"
    frame_width = out.shape[1] if transposed else out.shape[2]
    scratch = ctx.scratch(4 * frame_width * 6 * 4)  # TR_DW3_SCRATCH_BYTES: four rows of stored columns
    params = ctx.params("tr_depthwise_3x3_params", name, fields)
    macs = int(np.prod(out.shape)) * 9
    function = "tr_depthwise_conv_3x3_int8" if factor == 1 else "tr_depthwise_conv_3x3_doubled_int8"
    return KernelCall("tr_depthwise_3x3.c", function, params, [*buffers, scratch], comment, macs)
