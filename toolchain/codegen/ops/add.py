"""ADD and SUB (int8), with broadcasting and fused activations, as TFLite Micro computes them.

TFLM rescales both inputs to a common scale with 20 bits of headroom, adds (or
subtracts), and rescales to the output (`CalculateOpDataAdd` + `AddFunc`,
`CalculateOpDataSub` + `SubElementwise`). The per-input rescaling is tabulated here
(256 int32 per input, input2's negated for SUB), so the device does one requantization
per element instead of three, with one kernel for both ops.

The helpers `require_int8_per_tensor` and `broadcast_geometry` are shared by the other
elementwise lowerings (MUL, the pools, the activations).
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.quant import activation_range_int8, quantize_multiplier
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("ADD", "SUB")
INPLACE = True  # each output element is written after the inputs it reads

FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
MAX_DIMS = 4
ADD_LEFT_SHIFT = 20  # TFLM's headroom for int8 ADD (15 is for int16)


def require_int8_per_tensor(op: Op, tensors: list[Tensor | None]) -> None:
    """Every tensor given must be int8 with one scale and zero point (TFLM's int8 kernels need that)."""
    for t in tensors:
        if t is None:
            raise UnsupportedError(f"{op.describe()}: a missing (optional) tensor is not supported here")
        if t.dtype != "int8":
            raise UnsupportedError(
                f"{op.describe()}: tensor {t.index} '{t.name}' has dtype {t.dtype}; supported: int8")
        if t.scale.size != 1:
            kind = "no quantization" if t.scale.size == 0 else f"{t.scale.size} per-channel scales"
            raise UnsupportedError(
                f"{op.describe()}: tensor {t.index} '{t.name}' has {kind}; supported: per-tensor int8 quantization")


def require_fused_activation(op: Op) -> str:
    """The op's fused activation, if it is one int8 kernels can clamp to."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in FUSED_ACTIVATIONS:
        raise UnsupportedError(
            f"{op.describe()}: fused activation {act} is not supported; supported: {', '.join(FUSED_ACTIVATIONS)}")
    return act


def extended_shape(shape: tuple[int, ...], rank: int = MAX_DIMS) -> tuple[int, ...]:
    """The shape left-padded with 1s to `rank` dimensions (TFLite's RuntimeShape::ExtendedShape)."""
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast_geometry(op: Op, a: Tensor, b: Tensor, out: Tensor) -> np.ndarray | None:
    """None if no broadcasting is needed, else [out dims(4), a strides(4), b strides(4)].

    A stride of 0 repeats an input along a dimension where it has size 1, the way TFLM's
    BroadcastAdd/Mul4DSlow index their inputs.
    """
    if a.size == b.size == out.size:
        return None
    if max(len(a.shape), len(b.shape), len(out.shape)) > MAX_DIMS:
        raise UnsupportedError(
            f"{op.describe()}: broadcasting {shape_text(a)} with {shape_text(b)} is not supported; "
            f"supported: up to {MAX_DIMS} dimensions")
    dims = extended_shape(out.shape)
    strides = []
    for t in (a, b):
        shape = extended_shape(t.shape)
        contiguous = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(MAX_DIMS)]
        for d in range(MAX_DIMS):
            if shape[d] not in (1, dims[d]):
                raise UnsupportedError(
                    f"{op.describe()}: shapes {shape_text(a)} and {shape_text(b)} do not broadcast to "
                    f"{shape_text(out)}; supported: equal dimensions or 1")
        strides.append([0 if shape[d] == 1 else contiguous[d] for d in range(MAX_DIMS)])
    return np.array(list(dims) + strides[0] + strides[1], np.int32)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [*op.inputs[:2], op.outputs[0]])
    require_fused_activation(op)
    broadcast_geometry(op, op.inputs[0], op.inputs[1], op.outputs[0])
    a, b, out = op.inputs[0], op.inputs[1], op.outputs[0]
    if quantize_multiplier(_real_multipliers(a, b, out, op.opcode == "SUB")[2])[1] > 0:
        raise UnsupportedError(f"{op.describe()}: output scale {float(out.scale[0]):g} is over 2^19 times smaller "
                               "than the input scales; supported: an output multiplier below 1, as TFLite Micro needs")


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


def add_params(a: Tensor, b: Tensor, out: Tensor, act: str, subtract: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """TFLM's int8 ADD (or SUB) parameters, as (input tables, output params) for tr_add.c.

    Each input is rescaled on its own before the sum, so that step is a function of one
    int8 value: both are tabulated here (input1 in entries 0..255, input2 in 256..511,
    indexed by value + 128; input2 negated for SUB) and the device only requantizes the
    sum. Params are [output multiplier, output shift, output zero point, activation min,
    activation max].
    """
    # imported here: logistic.py (home of the gemmlowp port) imports this module's checks
    from toolchain.codegen.ops.logistic import multiply_by_quantized_multiplier

    real1, real2, real_out = _real_multipliers(a, b, out, subtract)
    tables = []
    for t, real, sign in ((a, real1, 1), (b, real2, -1 if subtract else 1)):
        multiplier, shift = quantize_multiplier(real)
        zero_point = int(t.zero_point[0])
        tables += [sign * multiply_by_quantized_multiplier((q - zero_point) * (1 << ADD_LEFT_SHIFT), multiplier, shift)
                   for q in range(-128, 128)]
    mo, shift_out = quantize_multiplier(real_out)
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    return np.array(tables, np.int32), np.array([mo, shift_out, int(out.zero_point[0]), lo, hi], np.int32)


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    a, b = op.inputs[0], op.inputs[1]
    out = op.outputs[0]
    act = require_fused_activation(op)
    subtract = op.opcode == "SUB"
    tables, params = add_params(a, b, out, act, subtract)
    kind = op.opcode.lower()
    tables = ctx.constant(f"op{op.index}_{kind}_input_tables", tables, "int32_t")
    params = ctx.constant(f"op{op.index}_{kind}_params", params, "int32_t")
    comment = (f"{op.opcode} {shape_text(a)} ({quant_text(a)}) {'-' if subtract else '+'} {shape_text(b)} "
               f"({quant_text(b)}) -> "
               f"{shape_text(out)} ({quant_text(out)}), act {act}")
    geometry = broadcast_geometry(op, a, b, out)
    if geometry is None:
        return KernelCall(source="tr_add.c", function="tr_add_int8",
                          args=[ctx.tensor(a), ctx.tensor(b), ctx.tensor(out), str(out.size), tables, params],
                          comment=comment)
    shape = ctx.constant(f"op{op.index}_{kind}_broadcast", geometry, "int32_t")
    return KernelCall(source="tr_add.c", function="tr_add_broadcast_int8",
                      args=[ctx.tensor(a), ctx.tensor(b), ctx.tensor(out), shape, tables, params],
                      comment=comment + ", broadcast")
