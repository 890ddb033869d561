"""CONV_2D: NHWC int8 input, OHWI int8 weights (per-channel), int32 bias.

The input zero point is folded into the bias. Padding then has to read as the input zero
point (its contribution w * (zp - zp) is 0 in TFLite), which the kernel's im2col column
does. A 1x1 stride-1 convolution needs no column at all: it is a FULLY_CONNECTED over
the H*W pixels and runs on that kernel.
"""

from __future__ import annotations

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
from toolchain.codegen.ops.fully_connected import (
    check_weights,
    matmul_fields,
    wide_argument,
    wide_scratch_bytes,
)
from toolchain.errors import UnsupportedError

OPCODES = ("CONV_2D",)


def out_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """TFLite `ComputeOutSize`."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def pad_before(in_size: int, filter_size: int, stride: int, dilation: int, out: int) -> int:
    """TFLite `ComputePaddingWithOffset`: the padding before the first row or column.

    The odd pixel goes after.
    """
    effective = (filter_size - 1) * dilation + 1
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2


def check_geometry(op: Op, in_hw: tuple[int, int], k_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """Strides and dilations >= 1, a known padding, and the output shape TFLite would compute."""
    o = op.options
    padding = o.get("padding")
    if padding not in ("SAME", "VALID"):
        raise UnsupportedError(f"op {op.index} ({op.opcode}): padding {padding}; supported: SAME, VALID")
    for key in ("stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor"):
        if int(o.get(key, 1)) < 1:
            raise UnsupportedError(f"op {op.index} ({op.opcode}): option {key}={o.get(key)} must be >= 1")
    expected = (
        out_size(padding, in_hw[0], k_hw[0], o["stride_h"], o.get("dilation_h_factor", 1)),
        out_size(padding, in_hw[1], k_hw[1], o["stride_w"], o.get("dilation_w_factor", 1)),
    )
    if tuple(out_hw) != expected:
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): output {out_hw[0]}x{out_hw[1]} does not match "
            f"the {padding} geometry ({expected[0]}x{expected[1]})"
        )


def check(op: Op) -> None:
    inp, out = op.input(0), op.outputs[0]
    filt = op.inputs[1] if len(op.inputs) > 1 else None
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    check_int8_activation(op, inp, "input")
    check_int8_activation(op, out, "output")
    if len(inp.shape) != 4 or len(out.shape) != 4 or filt is None or len(filt.shape) != 4:
        raise UnsupportedError(f"op {op.index} (CONV_2D): expects 4-D NHWC input/output and OHWI weights")
    check_weights(op, filt, bias, filt.shape[0])
    if filt.shape[3] != inp.shape[3]:
        raise UnsupportedError(
            f"op {op.index} (CONV_2D): grouped convolution ({inp.shape[3]} input channels, "
            f"weights for {filt.shape[3]}); supported: groups=1"
        )
    if out.shape[3] != filt.shape[0]:
        raise UnsupportedError(
            f"op {op.index} (CONV_2D): {out.shape[3]} output channels for {filt.shape[0]} filters"
        )
    check_geometry(op, inp.shape[1:3], filt.shape[1:3], out.shape[1:3])
    require_fused_activation(op)


def is_pointwise(op: Op) -> bool:
    """1x1 kernel, stride 1: every output pixel is a dot product of one input pixel."""
    filt = op.input(1)
    return filt.shape[1:3] == (1, 1) and op.options["stride_h"] == 1 and op.options["stride_w"] == 1


# A CONV_2D over at most this many input channels runs the first-layer kernel (tr_conv_first.c).
FIRST_LAYER_MAX_CHANNELS = 3


def is_first_layer(op: Op) -> bool:
    """Whether a (not pointwise) CONV_2D runs `tr_conv_first_int8`: over one to three input
    channels (an image's RGB, a spectrogram) its columns are short and its outputs few, so the
    gather and widening, not the MACs, set its cost."""
    return op.input(0).shape[3] <= FIRST_LAYER_MAX_CHANNELS and not is_pointwise(op)


def geometry(op: Op) -> list[int]:
    """k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left of a CONV_2D (TFLite's padding)."""
    o = op.options
    in_h, in_w = op.input(0).shape[1:3]
    k_h, k_w = op.input(1).shape[1:3]
    out_h, out_w = op.outputs[0].shape[1:3]
    dil_h, dil_w = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    return [
        k_h,
        k_w,
        o["stride_h"],
        o["stride_w"],
        dil_h,
        dil_w,
        pad_before(in_h, k_h, o["stride_h"], dil_h, out_h),
        pad_before(in_w, k_w, o["stride_w"], dil_w, out_w),
    ]


def geometry_fields(op: Op, window: list[int] | None = None) -> dict[str, FieldValue]:
    """The `tr_conv_geometry` of a CONV_2D or DEPTHWISE_CONV_2D (`window`: the `geometry` list,
    if it is another op's, as in a fused chain)."""
    n, in_h, in_w, in_c = op.input(0).shape
    _, out_h, out_w, out_c = op.outputs[0].shape
    k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left = window or geometry(op)
    return {
        "batches": n,
        "in_h": in_h,
        "in_w": in_w,
        "in_c": in_c,
        "out_h": out_h,
        "out_w": out_w,
        "out_c": out_c,
        "k_h": k_h,
        "k_w": k_w,
        "stride_h": stride_h,
        "stride_w": stride_w,
        "dil_h": dil_h,
        "dil_w": dil_w,
        "pad_top": pad_top,
        "pad_left": pad_left,
    }


def describe(op: Op) -> str:
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    o = op.options
    act = o.get("fused_activation_function", "NONE")
    k_h, k_w = filt.shape[1:3]
    geometry_text = (
        f"{k_h}x{k_w} stride {o['stride_h']}x{o['stride_w']} dilation "
        f"{o.get('dilation_h_factor', 1)}x{o.get('dilation_w_factor', 1)} {o['padding']}"
    )
    return (
        f"CONV_2D {shape_text(inp)} ({quant_text(inp)}) * {shape_text(filt)} {geometry_text} -> "
        f"{shape_text(out)} ({quant_text(out)}), {act}"
    )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, filt, out = op.input(0), op.input(1), op.outputs[0]
    n, in_h, in_w, in_c = inp.shape
    out_c, k_h, k_w, _ = filt.shape
    out_h, out_w = out.shape[1:3]
    name = ctx.unique_name(f"conv_{layer_name(filt, f'op{op.index}')}")
    macs = n * out_h * out_w * out_c * k_h * k_w * in_c
    comment = describe(op)
    if is_pointwise(op):
        fields: dict[str, FieldValue] = {
            "batches": n * in_h * in_w,
            "input_depth": in_c,
            "output_depth": out_c,
            "layer": matmul_fields(op, ctx, name),
        }
        return KernelCall(
            "tr_fully_connected.c",
            "tr_fully_connected_int8",
            ctx.params("tr_fc_params", name, fields),
            [ctx.tensor(inp), ctx.tensor(out), wide_argument(ctx, in_c, n * in_h * in_w, out_c)],
            comment + " (pointwise)",
            macs,
        )
    depth = k_h * k_w * in_c
    fields = {
        "geometry": geometry_fields(op),
        "input_zero_point": int(inp.zero_point[0]),
        "layer": matmul_fields(op, ctx, name),
    }
    first = is_first_layer(op)
    # two im2col columns (two output pixels at a time); the first-layer kernel keeps each in whole words
    columns = ctx.scratch(8 * -(-depth // 4) if first else 2 * depth)
    wide = ctx.scratch(wide_scratch_bytes(depth, n * out_h * out_w))
    source, function, params, how = (
        ("tr_conv_first.c", "tr_conv_first_int8", "tr_conv_first_params", "first layer: kernel rows")
        if first
        else ("tr_conv.c", "tr_conv_int8", "tr_conv_params", "im2col, matmul")
    )
    return KernelCall(
        source,
        function,
        ctx.params(params, name, fields),
        [ctx.tensor(inp), ctx.tensor(out), columns, wide],
        f"{comment} ({how})",
        macs,
    )
