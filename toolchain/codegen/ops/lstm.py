"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations and weights, int16 cell state) as TFLite
Micro's integer LSTM computes it (lstm_eval_common.cc, lstm_eval.h).

Per gate, TFLM runs two FULLY_CONNECTED ops into int16 Q3.12 (scale 2^-12): the input through
the input weights plus the gate bias, and the hidden state through the recurrent weights
without bias, each requantized with double(input scale) * double(weight scale) / 2^-12; the
sum saturates to int16, then sigmoid or tanh gives Q0.15. The inter-gate products use
QuantizeMultiplier(double(s1) * double(s2) / double(s_out)) on float scales (2^-15 for gate
outputs, the cell state's power-of-two scale, the hidden state's scale and zero point).

The hidden and cell state are variable tensors; TFLM keeps them from one Invoke to the next
unless reset. The generated kernel clears them on entry (a stateless Keras LSTM: every
inference is one sequence), and `toolchain.oracle.run` resets TFLM before every sample. Both
state tensors and the kernel's int16 gate scratch live in the arena of the static plan.

Peephole, projection, layer normalisation and CIFG variants are refused (TFLM's kernel refuses
them too); so are float LSTMs.
"""

from __future__ import annotations

import math

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import check_int8_activation, require_int8_per_tensor, struct_name
from toolchain.codegen.ops.fully_connected import folded_bias
from toolchain.codegen.quant import INT8_MAX, INT8_MIN, quantize_multiplier
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("UNIDIRECTIONAL_SEQUENCE_LSTM",)
# the cell state is int16; every other tensor int8, or int32 biases
TENSOR_DTYPES = ("int8", "int16", "int32", "float32")  # float32 only to refuse it by name

GATES = ("input", "forget", "cell", "output")
INPUT_WEIGHTS = {g: 1 + i for i, g in enumerate(GATES)}
RECURRENT_WEIGHTS = {g: 5 + i for i, g in enumerate(GATES)}
BIASES = {g: 12 + i for i, g in enumerate(GATES)}
HIDDEN_STATE, CELL_STATE = 18, 19
UNSUPPORTED_INPUTS = {
    "peephole weights": (9, 10, 11),
    "projection weights/bias": (16, 17),
    "layer normalisation coefficients": (20, 21, 22, 23),
}
GATE_INPUT_SCALE = 2.0**-12  # Q3.12: the gates' matmul outputs
GATE_OUTPUT_SCALE = 2.0**-15  # Q0.15: sigmoid and tanh outputs
CELL_ACTIVATIONS = {"TANH": 1, "SIGMOID": 0}
INT16_MIN, INT16_MAX = -32768, 32767


def _fail(op: Op, what: str) -> UnsupportedError:
    return UnsupportedError(f"{op.describe()}: {what}")


def _cell_scale_power(op: Op, cell: Tensor) -> int:
    """The cell state's scale as a power of two (TFLM's CheckedLog2), or refused."""
    scale = float(cell.scale[0])
    log2 = math.log2(scale) if scale > 0 else math.nan
    if not math.isfinite(log2) or abs(log2 - round(log2)) >= 1e-3:
        raise _fail(
            op, f"cell state scale {scale:.6g} is not a power of two; TFLite's integer LSTM needs one"
        )
    return int(round(log2))


def check(op: Op) -> None:
    if len(op.inputs) != 24 or len(op.outputs) != 1:
        raise _fail(op, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs; expected 24 and 1")
    for what, positions in UNSUPPORTED_INPUTS.items():
        present = [p for p in positions if op.inputs[p] is not None]
        if present:
            raise _fail(op, f"{what} (inputs {present}) are not supported; supported: the plain Keras LSTM")
    for g in GATES:
        if op.inputs[INPUT_WEIGHTS[g]] is None:
            raise _fail(op, f"no {g} gate weights (CIFG LSTM) is not supported; supported: all four gates")
    inp, out = op.input(0), op.outputs[0]
    if inp.dtype == "float32" or out.dtype == "float32":
        raise _fail(op, "float LSTM is not supported; supported: int8 (full-integer conversion)")
    check_int8_activation(op, inp, "input")
    require_int8_per_tensor(op, [out], "output")
    if len(inp.shape) != 3 or len(out.shape) != 3 or inp.shape[:2] != out.shape[:2]:
        raise _fail(
            op,
            f"input {shape_text(inp)} and output {shape_text(out)} must be 3-D with the same batch and time",
        )
    _check_weights(op, inp.shape[2], out.shape[2])
    _check_state(op, out)
    act = op.options.get("fused_activation_function", "NONE")
    if act not in CELL_ACTIVATIONS:
        raise _fail(op, f"cell activation {act} is not supported; supported: TANH, SIGMOID")
    if float(op.options.get("cell_clip", 0.0)) < 0:
        raise _fail(op, "a negative cell_clip is invalid")


def _check_weights(op: Op, features: int, units: int) -> None:
    for g in GATES:
        for position, cols in ((INPUT_WEIGHTS[g], features), (RECURRENT_WEIGHTS[g], units)):
            w = op.input(position)
            require_int8_per_tensor(op, [w], f"{g} gate weights")
            if w.data is None or w.shape != (units, cols) or int(w.zero_point[0]) != 0:
                raise _fail(
                    op,
                    f"{g} gate weights (input {position}) {shape_text(w)} must be constant "
                    f"int8[{units},{cols}] with zero point 0",
                )
        bias = op.input(BIASES[g])
        if bias.dtype != "int32" or bias.data is None or bias.shape != (units,):
            raise _fail(
                op, f"{g} gate bias (input {BIASES[g]}) {shape_text(bias)} must be constant int32[{units}]"
            )


def _check_state(op: Op, out: Tensor) -> None:
    hidden, cell = op.inputs[HIDDEN_STATE], op.inputs[CELL_STATE]
    if hidden is None or cell is None or not (hidden.is_variable and cell.is_variable):
        raise _fail(op, "the hidden and cell state (inputs 18, 19) must be variable tensors")
    require_int8_per_tensor(op, [hidden], "hidden state")
    if cell.dtype != "int16" or cell.scale.size != 1:
        raise _fail(op, f"cell state {shape_text(cell)} must be int16 with one scale")
    batches = out.shape[1] if op.options.get("time_major", False) else out.shape[0]
    if hidden.size != batches * out.shape[2] or cell.size != hidden.size:
        raise _fail(
            op, f"state {shape_text(hidden)}/{shape_text(cell)} does not fit the output {shape_text(out)}"
        )
    _cell_scale_power(op, cell)


def _mul(
    scale1: float, scale2: float, out_scale: float, offset: int, lo: int, hi: int
) -> dict[str, FieldValue]:
    """TFLM's CreateInterGateMulParams: double products of float scales."""
    real = float(np.float32(scale1)) * float(np.float32(scale2)) / float(np.float32(out_scale))
    multiplier, shift = quantize_multiplier(real)
    return {"multiplier": multiplier, "shift": shift, "output_offset": offset, "act_min": lo, "act_max": hi}


def _matmul(
    op: Op, ctx: LoweringContext, name: str, x: Tensor, w: Tensor, bias: Tensor | None
) -> dict[str, FieldValue]:
    """One gate matmul: row-major weights, the bias with x's zero point folded in (checked to
    fit int32, as FULLY_CONNECTED's), and the int16 requantization of TFLM's FULLY_CONNECTED
    (double(x scale) * double(w scale) / 2^-12)."""
    folded = folded_bias(bias, w.values.astype(np.int64).sum(axis=1), int(x.zero_point[0]), op)
    real = float(np.float32(x.scale[0])) * float(np.float32(w.scale[0])) / float(np.float32(GATE_INPUT_SCALE))
    multiplier, shift = quantize_multiplier(real)
    return {
        "weights": ctx.tensor(w),
        "bias": ctx.constant(f"{name}_bias", folded, "int32_t", f"{w.name}: folded bias"),
        "multiplier": multiplier,
        "shift": shift,
    }


def cell_tanh_scaling(power: int) -> tuple[int, int]:
    """(multiplier, right shift) TFLM's int16 Tanh applies to the cell state of scale 2^power."""
    left = 15 + power - 3
    return (3, -left) if left < 0 else (3 << left, 0)


def cell_clip(op: Op, cell: Tensor) -> tuple[int, int]:
    """(use, quantized clip) as TFLM's CreateLstmCellStateInfo: clip / scale in double,
    clamped to int16, truncated."""
    clip = float(np.float32(op.options.get("cell_clip", 0.0)))
    quantized = min(max(clip / float(np.float32(cell.scale[0])), -32768.0), 32767.0)
    return int(clip > 0), int(quantized)


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, out = op.input(0), op.outputs[0]
    hidden, cell = op.input(HIDDEN_STATE), op.input(CELL_STATE)
    time_major = bool(op.options.get("time_major", False))
    batches, steps = (inp.shape[1], inp.shape[0]) if time_major else (inp.shape[0], inp.shape[1])
    features, units = inp.shape[2], out.shape[2]
    name = struct_name(op, ctx, "lstm")
    fields: dict[str, FieldValue] = {
        "batches": batches,
        "time_steps": steps,
        "input_depth": features,
        "units": units,
        "time_major": int(time_major),
    }
    for g in GATES:
        bias = op.input(BIASES[g])
        fields[f"{g}_gate"] = {
            "input": _matmul(op, ctx, f"{name}_{g}_input", inp, op.input(INPUT_WEIGHTS[g]), bias),
            "recurrent": _matmul(
                op, ctx, f"{name}_{g}_recurrent", hidden, op.input(RECURRENT_WEIGHTS[g]), None
            ),
        }
    act = op.options.get("fused_activation_function", "TANH")
    power = _cell_scale_power(op, cell)
    tanh_multiplier, tanh_shift = cell_tanh_scaling(power)
    cell_scale, hidden_scale = float(cell.scale[0]), float(hidden.scale[0])
    use_clip, clip = cell_clip(op, cell)
    fields.update(
        {
            "cell_gate_tanh": CELL_ACTIVATIONS[act],
            "cell_tanh_multiplier": tanh_multiplier,
            "cell_tanh_shift": tanh_shift,
            "forget_times_cell": _mul(GATE_OUTPUT_SCALE, cell_scale, cell_scale, 0, INT16_MIN, INT16_MAX),
            "input_times_cell": _mul(
                GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, cell_scale, 0, INT16_MIN, INT16_MAX
            ),
            "hidden": _mul(
                GATE_OUTPUT_SCALE,
                GATE_OUTPUT_SCALE,
                hidden_scale,
                int(hidden.zero_point[0]),
                INT8_MIN,
                INT8_MAX,
            ),
            "use_cell_clip": use_clip,
            "cell_clip": clip,
        }
    )
    params = ctx.params("tr_lstm_params", name, fields)
    comment = (
        f"UNIDIRECTIONAL_SEQUENCE_LSTM {shape_text(inp)} ({quant_text(inp)}) -> {shape_text(out)} "
        f"({quant_text(out)}), {units} units, cell int16 2^{power}, cell gate {act}"
    )
    macs = batches * steps * 4 * units * (features + units)
    scratch = ctx.scratch(4 * 2 * units)
    return KernelCall(
        source="tr_lstm.c",
        function="tr_lstm_int8",
        params=params,
        args=[
            ctx.tensor(inp),
            ctx.tensor(hidden),
            ctx.tensor(cell),
            ctx.tensor(out),
            f"(int16_t *){scratch}",
        ],
        comment=comment,
        macs=macs,
    )
