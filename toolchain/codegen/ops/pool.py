"""AVERAGE_POOL_2D and MAX_POOL_2D (int8, NHWC), as TFLite Micro's reference kernels.

Neither requantizes: TFLM works on the raw int8 values (the converter gives input and
output the same quantization) and only clamps to the fused activation's range computed
from the output. The average rounds half away from zero over the window cells that lie
inside the input, so SAME padding cells do not count.
"""

from __future__ import annotations

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import (
    FieldValue,
    KernelCall,
    LoweringContext,
    quant_text,
    shape_text,
)
from toolchain.codegen.ops._common import require_fused_activation, require_int8_per_tensor, struct_name
from toolchain.codegen.quant import activation_range_int8
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("AVERAGE_POOL_2D", "MAX_POOL_2D")
PADDINGS = ("SAME", "VALID")


def check(op: Op) -> None:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8_per_tensor(op, [src, dst])
    require_fused_activation(op)
    if len(src.shape) != 4 or len(dst.shape) != 4:
        raise UnsupportedError(
            f"{op.describe()}: input {shape_text(src)} is not supported; supported: 4-D NHWC tensors"
        )
    padding = op.options.get("padding")
    if padding not in PADDINGS:
        raise UnsupportedError(f"{op.describe()}: padding {padding} is not supported; supported: SAME, VALID")
    for key in ("stride_h", "stride_w", "filter_height", "filter_width"):
        if int(op.options.get(key, 0)) < 1:
            raise UnsupportedError(
                f"{op.describe()}: option {key}={op.options.get(key)} is not supported; supported: 1 or more"
            )


def _padding(stride: int, in_size: int, filter_size: int, out_size: int) -> int:
    """TFLite ComputePaddingWithOffset (dilation 1): the top/left padding."""
    total = (out_size - 1) * stride + filter_size - in_size
    return max(total, 0) // 2


def pool_geometry(op: Op) -> dict[str, int]:
    """The `tr_conv_geometry` of a pool: the window is the filter, channels in = out, no dilation."""
    n, in_h, in_w, channels = op.inputs[0].shape
    _, out_h, out_w, _ = op.outputs[0].shape
    o = op.options
    fh, fw, sh, sw = int(o["filter_height"]), int(o["filter_width"]), int(o["stride_h"]), int(o["stride_w"])
    return {
        "batches": n,
        "in_h": in_h,
        "in_w": in_w,
        "in_c": channels,
        "out_h": out_h,
        "out_w": out_w,
        "out_c": channels,
        "k_h": fh,
        "k_w": fw,
        "stride_h": sh,
        "stride_w": sw,
        "dil_h": 1,
        "dil_w": 1,
        "pad_top": _padding(sh, in_h, fh, out_h),
        "pad_left": _padding(sw, in_w, fw, out_w),
    }


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    act = require_fused_activation(op)
    lo, hi = activation_range_int8(act, float(dst.scale[0]), int(dst.zero_point[0]))
    kind = "average" if op.opcode == "AVERAGE_POOL_2D" else "max"
    fields: dict[str, FieldValue] = {"geometry": pool_geometry(op), "act_min": lo, "act_max": hi}
    o = op.options
    comment = (
        f"{op.opcode} {shape_text(src)} -> {shape_text(dst)} ({quant_text(dst)}), "
        f"filter {o['filter_height']}x{o['filter_width']}, stride {o['stride_h']}x{o['stride_w']}, "
        f"{o['padding']}, act {act}"
    )
    return KernelCall(
        source="tr_pool.c",
        function=f"tr_{kind}_pool_int8",
        params=ctx.params("tr_pool_params", struct_name(op, ctx, f"{kind}_pool"), fields),
        args=[ctx.tensor(src), ctx.tensor(dst)],
        comment=comment,
    )
