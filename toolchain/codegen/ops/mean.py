"""MEAN (int8) over contiguous axes, e.g. GlobalAveragePooling2D's MEAN over H and W.

TFLM (reduce_common.cc, `QuantizedMeanOrSum`) requantizes the zero-point-corrected
sum with the input/output multiplier into which it folds 1/count. The TFLM build that
is our oracle does so even when input and output share scale and zero point (the
truncating raw-sum division of older sources is not what it runs: the tests check
exact ties both ways). The reduced axes must be contiguous so the tensor reads as
[outer, reduced, inner].
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import require_int8_per_tensor, struct_name
from toolchain.codegen.quant import quantize_multiplier
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("MEAN",)


def reduced_axes(op: Op) -> list[int]:
    """The axis tensor resolved like TFLM's ResolveAxis: negatives wrapped, duplicates dropped, sorted."""
    src, axis = op.inputs[0], op.inputs[1] if len(op.inputs) > 1 else None
    if axis is None or axis.data is None:
        raise UnsupportedError(
            f"{op.describe()}: a non-constant axis tensor is not supported; supported: constant int32 axes"
        )
    rank = len(src.shape)
    axes = sorted({int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(axis.data).reshape(-1)})
    if not axes or axes[0] < 0 or axes[-1] >= rank:
        raise UnsupportedError(
            f"{op.describe()}: axes {np.asarray(axis.data).tolist()} are not supported for "
            f"input {shape_text(src)}; supported: 1 to {rank} axes within the rank"
        )
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise UnsupportedError(
            f"{op.describe()}: axes {axes} are not supported; supported: contiguous axes "
            "(e.g. [1, 2] for global average pooling)"
        )
    return axes


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.inputs[0], op.outputs[0]])
    reduced_axes(op)


def mean_layout(op: Op) -> tuple[int, int, int]:
    """(outer, reduced, inner) element counts of the input seen as a 3-D array."""
    shape = op.inputs[0].shape
    axes = reduced_axes(op)
    outer = int(np.prod(shape[: axes[0]], dtype=np.int64))
    reduced = int(np.prod(shape[axes[0] : axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(shape[axes[-1] + 1 :], dtype=np.int64))
    return outer, reduced, inner


def mean_params(
    input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int, count: int
) -> np.ndarray:
    """TFLM's QuantizedMeanOrSum constants: [input_zp * count, multiplier, shift, output_zp].

    The input/output multiplier (double of float32 scales) absorbs 1/count: shifted left
    by floor(log2(count)) (at most 32 and 31 + shift), divided by count in int64.
    """
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    count_shift = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << count_shift) // count
    shift -= count_shift
    return np.array([input_zero_point * count, multiplier, shift, output_zero_point], np.int32)


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    outer, reduced, inner = mean_layout(op)
    comment = (
        f"MEAN {shape_text(src)} ({quant_text(src)}) over axes {reduced_axes(op)} -> "
        f"{shape_text(dst)} ({quant_text(dst)}), keep_dims {bool(op.options.get('keep_dims', False))}"
    )
    zero_sum, multiplier, shift, output_zp = (
        int(v)
        for v in mean_params(
            float(src.scale[0]), int(src.zero_point[0]), float(dst.scale[0]), int(dst.zero_point[0]), reduced
        )
    )
    fields = {
        "outer": outer,
        "reduced": reduced,
        "inner": inner,
        "zero_sum": zero_sum,
        "multiplier": multiplier,
        "shift": shift,
        "output_offset": output_zp,
    }
    return KernelCall(
        source="tr_mean.c",
        function="tr_mean_int8",
        params=ctx.params("tr_mean_params", struct_name(op, ctx), fields),
        args=[ctx.tensor(src), ctx.tensor(dst)],
        comment=comment,
    )
