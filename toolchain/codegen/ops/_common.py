"""What several op lowerings share: int8 checks, two-input elementwise calls, int8 lookup tables.

Not an op module (it has no OPCODES, and the registry skips modules named `_*`): op
modules import from here, never from each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from toolchain.codegen.fixedpoint import (
    calculate_input_radius,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
)
from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, layer_name, shape_text
from toolchain.codegen.quant import INT8_MAX, INT8_MIN, round_half_away
from toolchain.errors import UnsupportedError

FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
MAX_DIMS = 4  # the rank TFLM's broadcasting and PAD kernels handle


# --- checks -------------------------------------------------------------------------------


def require_int8_per_tensor(op: Op, tensors: list[Tensor | None]) -> None:
    """Every tensor given must be int8 with one scale and zero point (TFLM's int8 kernels need that)."""
    for t in tensors:
        if t is None:
            raise UnsupportedError(f"{op.describe()}: a missing (optional) tensor is not supported here")
        if t.dtype != "int8":
            raise UnsupportedError(
                f"{op.describe()}: tensor {t.index} '{t.name}' has dtype {t.dtype}; supported: int8"
            )
        if t.scale.size != 1:
            kind = "no quantization" if t.scale.size == 0 else f"{t.scale.size} per-channel scales"
            raise UnsupportedError(
                f"{op.describe()}: tensor {t.index} '{t.name}' has {kind}; supported: per-tensor int8 quantization"
            )


def require_fused_activation(op: Op) -> str:
    """The op's fused activation, if it is one int8 kernels can clamp to."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in FUSED_ACTIVATIONS:
        raise UnsupportedError(
            f"{op.describe()}: fused activation {act} is not supported; supported: {', '.join(FUSED_ACTIVATIONS)}"
        )
    return act


# --- shapes -------------------------------------------------------------------------------


def extended_shape(shape: tuple[int, ...], rank: int = MAX_DIMS) -> tuple[int, ...]:
    """The shape left-padded with 1s to `rank` dimensions (TFLite's RuntimeShape::ExtendedShape)."""
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast_geometry(op: Op, a: Tensor, b: Tensor, out: Tensor) -> np.ndarray | None:
    """None if no broadcasting is needed, else [out dims(4), a strides(4), b strides(4)].

    A stride of 0 repeats an input along a dimension where it has size 1, the way TFLM's
    BroadcastAdd/Mul4DSlow index their inputs (`tr_elementwise.h` walks it, `tr_broadcast_shape`).
    """
    if a.size == b.size == out.size:
        return None
    if max(len(a.shape), len(b.shape), len(out.shape)) > MAX_DIMS:
        raise UnsupportedError(
            f"{op.describe()}: broadcasting {shape_text(a)} with {shape_text(b)} is not supported; "
            f"supported: up to {MAX_DIMS} dimensions"
        )
    dims = extended_shape(out.shape)
    strides = []
    for t in (a, b):
        shape = extended_shape(t.shape)
        contiguous = [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(MAX_DIMS)]
        for d in range(MAX_DIMS):
            if shape[d] not in (1, dims[d]):
                raise UnsupportedError(
                    f"{op.describe()}: shapes {shape_text(a)} and {shape_text(b)} do not broadcast to "
                    f"{shape_text(out)}; supported: equal dimensions or 1"
                )
        strides.append([0 if shape[d] == 1 else contiguous[d] for d in range(MAX_DIMS)])
    return np.array(list(dims) + strides[0] + strides[1], np.int32)


# --- two-input elementwise ops (ADD, SUB, MUL) ----------------------------------------------


def check_elementwise_pair(op: Op) -> None:
    """ADD, SUB, MUL: int8 per-tensor inputs and output, a clampable fused activation, broadcastable shapes."""
    require_int8_per_tensor(op, [*op.inputs[:2], op.outputs[0]])
    require_fused_activation(op)
    broadcast_geometry(op, op.inputs[0], op.inputs[1], op.outputs[0])


def struct_name(op: Op, ctx: LoweringContext, kind: str = "") -> str:
    """The unique C name of an op's parameter struct: the op kind (lower case) and the layer,
    e.g. 'add_add_1'; its constant arrays are named after it."""
    kind = kind or op.opcode.lower()
    return ctx.unique_name(f"{kind}_{layer_name(op.outputs[0], f'op{op.index}')}")


def elementwise_pair_call(
    op: Op,
    ctx: LoweringContext,
    kernel: str,
    name: str,
    fields: dict[str, FieldValue],
    comment: str,
    macs: int = 0,
) -> KernelCall:
    """The call of `tr_<kernel>.c` with its `tr_<kernel>_params` (`fields` plus the extent):
    `tr_<kernel>_int8(&params, input1, input2, output)` with `size`, or with broadcasting
    `tr_<kernel>_broadcast_int8` with the `broadcast` shape."""
    a, b, out = op.inputs[0], op.inputs[1], op.outputs[0]
    geometry = broadcast_geometry(op, a, b, out)
    extent: dict[str, FieldValue]
    if geometry is None:
        function, extent = f"tr_{kernel}_int8", {"size": out.size}
    else:
        function = f"tr_{kernel}_broadcast_int8"
        values = [int(v) for v in geometry]
        extent = {"broadcast": {"dims": values[:4], "stride1": values[4:8], "stride2": values[8:]}}
        comment += ", broadcast"
    params = ctx.params(f"tr_{kernel}_params", name, {**extent, **fields})
    return KernelCall(
        source=f"tr_{kernel}.c",
        function=function,
        params=params,
        args=[ctx.tensor(a), ctx.tensor(b), ctx.tensor(out)],
        comment=comment,
        macs=macs,
    )


# --- int8 lookup tables ---------------------------------------------------------------------


def lookup_table(function: Callable[[int], int], dtype: type = np.int8) -> np.ndarray:
    """`function` of every int8 input, indexed by input + 128: the table a lookup kernel reads.

    An int8 input has only 256 values, so whatever TFLM computes per element from one input
    (activations, ADD's input rescaling) is run here once per value instead of on the device.
    """
    return np.array([function(q) for q in range(INT8_MIN, INT8_MAX + 1)], dtype)


def sigmoid_style_table(
    input_scale: float,
    input_zero_point: int,
    function: Callable[[int, int], int],
    output_fraction_bits: int,
    output_offset: int,
) -> np.ndarray:
    """TFLM's int8 LOGISTIC / TANH for every int8 input, indexed by input + 128.

    Prepare: the input rescaled into Q4.27 with a frexp multiplier (no QuantizeMultiplier
    rounding fix-up) and a saturation radius. Eval: outside the radius the int8 extremes,
    inside gemmlowp's `function` in Q0.31 rounded to `output_fraction_bits`, offset, clamped.
    """
    integer_bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = round_half_away(q * (1 << 31))
    radius = calculate_input_radius(integer_bits, left_shift)

    def output(value: int) -> int:
        x = value - input_zero_point
        if x <= -radius:
            return INT8_MIN
        if x >= radius:
            return INT8_MAX
        x_q4 = multiply_by_quantized_multiplier(x, multiplier, left_shift)
        out = rounding_divide_by_pot(function(x_q4, integer_bits), 31 - output_fraction_bits) + output_offset
        return min(max(out, INT8_MIN), INT8_MAX)

    return lookup_table(output)


def lookup_call(op: Op, ctx: LoweringContext, table: np.ndarray, comment: str) -> KernelCall:
    """The `tr_lookup_int8` call of a one-input op whose int8 output is tabulated (`lookup_table`)."""
    src, dst = op.inputs[0], op.outputs[0]
    name = struct_name(op, ctx)
    fields: dict[str, FieldValue] = {
        "size": src.size,
        "table": ctx.constant(f"{name}_table", table, "int8_t"),
    }
    params = ctx.params("tr_lookup_params", name, fields)
    return KernelCall(
        source="tr_lookup.c",
        function="tr_lookup_int8",
        params=params,
        args=[ctx.tensor(src), ctx.tensor(dst)],
        comment=comment,
    )
