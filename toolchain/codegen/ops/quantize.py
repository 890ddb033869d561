"""QUANTIZE int8 -> int8 (a requantization between two scales, as the converter inserts
before ops that need matching input scales) and DEQUANTIZE's inverse is not needed inside
full-int8 graphs.

TFLM's `Requantize`: out = clamp(MBQM(in - in_zp, m, s) + out_zp) with
m, s = QuantizeMultiplier(double(in_scale) / double(out_scale)).
Float edges (float32 model input or output) are rejected by the graph check with the advice
to convert with int8 input and output.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import struct_name
from toolchain.codegen.ops.fully_connected import check_int8_activation
from toolchain.codegen.quant import quantize_multiplier

OPCODES = ("QUANTIZE",)
INPLACE = True


def check(op: Op) -> None:
    check_int8_activation(op, op.inputs[0], "input")
    check_int8_activation(op, op.outputs[0], "output")


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, out = op.inputs[0], op.outputs[0]
    real = float(np.float32(inp.scale[0])) / float(np.float32(out.scale[0]))
    multiplier, shift = quantize_multiplier(real)
    fields = {
        "size": inp.size,
        "input_zero_point": int(inp.zero_point[0]),
        "multiplier": multiplier,
        "shift": shift,
        "output_zero_point": int(out.zero_point[0]),
    }
    comment = f"QUANTIZE {shape_text(inp)} ({quant_text(inp)}) -> {shape_text(out)} ({quant_text(out)})"
    params = ctx.params("tr_quantize_params", struct_name(op, ctx), fields)
    return KernelCall(
        "tr_quantize.c", "tr_quantize_int8", params, [ctx.tensor(inp), ctx.tensor(out)], comment
    )
