"""ADD and SUB (int8), with broadcasting and fused activations, as TFLite Micro computes them.

TFLM rescales both inputs to a common scale with 20 bits of headroom, adds (or
subtracts), and rescales to the output (`CalculateOpDataAdd` + `AddFunc`,
`CalculateOpDataSub` + `SubElementwise`). The per-input rescaling is tabulated here
(256 int32 per input, input2's negated for SUB), so the device does one requantization
per element instead of three, with one kernel for both ops.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.fixedpoint import multiply_by_quantized_multiplier
from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import (
    check_elementwise_pair,
    elementwise_pair_call,
    lookup_table,
    require_fused_activation,
    struct_name,
)
from toolchain.codegen.quant import activation_range_int8, quantize_multiplier
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("ADD", "SUB")
INPLACE = True  # each output element is written after the inputs it reads

ADD_LEFT_SHIFT = 20  # TFLM's headroom for int8 ADD (15 is for int16)


def check(op: Op) -> None:
    check_elementwise_pair(op)
    a, b, out = op.inputs[0], op.inputs[1], op.outputs[0]
    if quantize_multiplier(_real_multipliers(a, b, out, op.opcode == "SUB")[2])[1] > 0:
        raise UnsupportedError(
            f"{op.describe()}: output scale {float(out.scale[0]):g} is over 2^19 times smaller "
            "than the input scales; supported: an output multiplier below 1, as TFLite Micro needs"
        )


def _real_multipliers(a: Tensor, b: Tensor, out: Tensor, subtract: bool) -> tuple[float, float, float]:
    """TFLM's (input1, input2, output) real multipliers: each input over twice the larger input
    scale, and that over 2^20 output scales. ADD computes them in double from float32 scales;
    SUB in float32 throughout, converted to double at the end."""
    sa, sb, so = (np.float32(t.scale[0]) for t in (a, b, out))
    if subtract:
        twice = np.float32(2) * max(sa, sb)
        return float(sa / twice), float(sb / twice), float(twice / (np.float32(1 << ADD_LEFT_SHIFT) * so))
    twice_max = 2.0 * float(max(sa, sb))
    return float(sa) / twice_max, float(sb) / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * float(so))


def add_params(
    a: Tensor, b: Tensor, out: Tensor, act: str, subtract: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """TFLM's int8 ADD (or SUB) parameters, as (input tables, output requantization) for tr_add.c.

    Each input is rescaled on its own before the sum, so that step is a function of one
    int8 value: both are tabulated here (input1 in entries 0..255, input2 in 256..511,
    indexed by value + 128; input2 negated for SUB) and the device only requantizes the
    sum. Params are [output multiplier, output shift, output zero point, activation min,
    activation max].
    """
    real1, real2, real_out = _real_multipliers(a, b, out, subtract)
    tables = [_input_table(a, real1, 1), _input_table(b, real2, -1 if subtract else 1)]
    mo, shift_out = quantize_multiplier(real_out)
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    return np.concatenate(tables), np.array([mo, shift_out, int(out.zero_point[0]), lo, hi], np.int32)


def _input_table(t: Tensor, real: float, sign: int) -> np.ndarray:
    """One input's `(q - zero point) << 20` rescaled to the common scale (times sign), for every int8 q."""
    multiplier, shift = quantize_multiplier(real)
    zero_point = int(t.zero_point[0])
    return lookup_table(
        lambda q: (
            sign
            * multiply_by_quantized_multiplier((q - zero_point) * (1 << ADD_LEFT_SHIFT), multiplier, shift)
        ),
        np.int32,
    )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    a, b, out = op.inputs[0], op.inputs[1], op.outputs[0]
    act = require_fused_activation(op)
    subtract = op.opcode == "SUB"
    tables, params = add_params(a, b, out, act, subtract)
    multiplier, shift, offset, lo, hi = (int(v) for v in params)
    name = struct_name(op, ctx)
    fields: dict[str, FieldValue] = {
        "input_tables": ctx.constant(f"{name}_input_tables", tables, "int32_t"),
        "output": {
            "multiplier": multiplier,
            "shift": shift,
            "output_offset": offset,
            "act_min": lo,
            "act_max": hi,
        },
    }
    comment = (
        f"{op.opcode} {shape_text(a)} ({quant_text(a)}) {'-' if subtract else '+'} {shape_text(b)} "
        f"({quant_text(b)}) -> {shape_text(out)} ({quant_text(out)}), act {act}"
    )
    return elementwise_pair_call(op, ctx, "add", name, fields, comment)
