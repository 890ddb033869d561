"""STRIDED_SLICE (int8) where the slice is evenly spaced runs of bytes: a copy, as TFLM's does.

A Keras LSTM without return_sequences converts to a sequence LSTM followed by the slice of its
last time step; that and any slice whose elements form `count` runs of `length` consecutive
bytes, `stride` apart, becomes `tr_slice_int8`. The indices are worked out here with numpy's
slicing, whose clamping of begin and end is TensorFlow's; ellipsis and new-axis masks are refused.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import check_int8_activation, struct_name
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("STRIDED_SLICE",)


def _fail(op: Op, what: str) -> UnsupportedError:
    return UnsupportedError(f"{op.describe()}: {what}")


def source_indices(op: Op) -> np.ndarray:
    """The flat input index of every output element, in output order."""
    inp = op.input(0)
    for key in ("ellipsis_mask", "new_axis_mask"):
        if int(op.options.get(key, 0)):
            raise _fail(op, f"{key} is not supported")
    if op.options.get("offset", False):
        raise _fail(op, "offset=True is not supported")
    operands = []
    for position in (1, 2, 3):
        t = op.input(position)
        if t.data is None or t.size != len(inp.shape):
            raise _fail(op, f"input {position} must be a constant of {len(inp.shape)} values")
        operands.append([int(v) for v in t.data.reshape(-1)])
    begin, end, strides = operands
    begin_mask, end_mask = int(op.options.get("begin_mask", 0)), int(op.options.get("end_mask", 0))
    shrink = int(op.options.get("shrink_axis_mask", 0))
    index: list[int | slice] = []
    for d, dim in enumerate(inp.shape):
        if strides[d] == 0:
            raise _fail(op, f"stride 0 in dimension {d}")
        if shrink >> d & 1:  # TFLite's StartForAxis: begin_mask overrides begin even here
            b = (0 if strides[d] > 0 else dim - 1) if begin_mask >> d & 1 else begin[d]
            b = b + dim if b < 0 else b
            if not 0 <= b < dim:
                raise _fail(op, f"index {begin[d]} out of range in dimension {d} of {shape_text(inp)}")
            index.append(b)
        else:
            start = None if begin_mask >> d & 1 else begin[d]
            stop = None if end_mask >> d & 1 else end[d]
            index.append(slice(start, stop, strides[d]))
    return np.arange(inp.size).reshape(inp.shape)[tuple(index)].reshape(-1)


def runs(indices: np.ndarray) -> tuple[int, int, int, int] | None:
    """(count, length, offset, stride) if the indices are evenly spaced runs of equal length."""
    if indices.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    lengths = np.diff(np.concatenate([starts, [indices.size]]))
    if np.any(lengths != lengths[0]):
        return None
    firsts = indices[starts]
    steps = np.diff(firsts)
    if steps.size and np.any(steps != steps[0]):
        return None
    stride = int(steps[0]) if steps.size else 0
    return int(starts.size), int(lengths[0]), int(firsts[0]), stride


def check(op: Op) -> None:
    inp, out = op.input(0), op.outputs[0]
    check_int8_activation(op, inp, "input")
    check_int8_activation(op, out, "output")
    if inp.scale.tolist() != out.scale.tolist() or inp.zero_point.tolist() != out.zero_point.tolist():
        raise _fail(op, "output quantization differs from the input's")
    indices = source_indices(op)
    if indices.size != out.size:
        raise _fail(op, f"the slice has {indices.size} elements; the output {shape_text(out)} has {out.size}")
    if runs(indices) is None:
        raise _fail(op, "supported: slices that are evenly spaced runs of consecutive elements")


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    inp, out = op.input(0), op.outputs[0]
    found = runs(source_indices(op))
    assert found is not None  # check() refused the rest
    count, length, offset, stride = found
    fields: dict[str, FieldValue] = {"count": count, "length": length, "offset": offset, "stride": stride}
    name = struct_name(op, ctx, "slice")
    return KernelCall(
        source="tr_slice.c",
        function="tr_slice_int8",
        params=ctx.params("tr_slice_params", name, fields),
        args=[ctx.tensor(inp), ctx.tensor(out)],
        comment=(
            f"STRIDED_SLICE {shape_text(inp)} -> {shape_text(out)} ({quant_text(out)}), "
            f"{count} x {length} bytes"
        ),
    )
