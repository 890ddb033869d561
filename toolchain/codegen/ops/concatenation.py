"""CONCATENATION (int8) along any axis, as TFLite Micro does it: a plain copy.

TFLM's int8 CONCATENATION copies raw values without requantizing (the converter gives
every input the output's quantization), so the kernel copies, for each of the `outer`
slices before the axis, each input's contiguous block in turn.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import require_int8_per_tensor, struct_name
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("CONCATENATION",)


def concat_axis(op: Op) -> int:
    """The concatenation axis, negative values counted from the end as TFLM does."""
    rank = len(op.outputs[0].shape)
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise UnsupportedError(
            f"{op.describe()}: axis {op.options.get('axis')} is not supported for "
            f"{shape_text(op.outputs[0])}; supported: -{rank}..{rank - 1}"
        )
    return axis


def check(op: Op) -> None:
    require_int8_per_tensor(op, [*op.inputs, op.outputs[0]])
    act = op.options.get("fused_activation_function", "NONE")
    if act != "NONE":
        raise UnsupportedError(
            f"{op.describe()}: fused activation {act} is not supported; supported: NONE (as in TFLite Micro)"
        )
    axis = concat_axis(op)
    out = op.outputs[0]
    for t in op.inputs:
        if len(t.shape) != len(out.shape) or any(
            t.shape[d] != out.shape[d] for d in range(len(out.shape)) if d != axis
        ):
            raise UnsupportedError(
                f"{op.describe()}: input {shape_text(t)} does not match output {shape_text(out)} "
                f"outside axis {axis}; supported: equal dimensions except the axis"
            )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    out = op.outputs[0]
    axis = concat_axis(op)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = int(np.prod(out.shape[axis + 1 :], dtype=np.int64))
    pointers = ", ".join(ctx.tensor(t) for t in op.inputs)
    sizes = np.array([t.shape[axis] * inner for t in op.inputs], np.int32)
    inputs_text = " + ".join(shape_text(t) for t in op.inputs)
    name = struct_name(op, ctx)
    fields = {
        "num_inputs": len(op.inputs),
        "outer": outer,
        "block_sizes": ctx.constant(f"{name}_block_sizes", sizes, "int32_t"),
    }
    return KernelCall(
        source="tr_concatenation.c",
        function="tr_concatenation_int8",
        params=ctx.params("tr_concatenation_params", name, fields),
        args=[f"(const int8_t *const[]){{{pointers}}}", ctx.tensor(out)],
        comment=f"CONCATENATION axis {axis}: {inputs_text} -> {shape_text(out)} ({quant_text(out)})",
    )
