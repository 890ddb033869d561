"""The shape of each graph op a kernel call runs, as the on-device cost model reads it.

Every weighted op is described the same way: `p` positions (rows of a FULLY_CONNECTED,
output pixels of a convolution), each computing `o` outputs from an inner depth of `i`
values, so its MACs are p * i * o. `k` is the taps of a convolution's or pooling's window (1
otherwise); `in`/`out` count its input and output values (what an elementwise op, a pooling
or the im2col copy of a convolution pays for). A depthwise op also has `rows_in`, `rows` (input
and output rows, all batches) and `w` (output width); a k x k convolution `kh` (kernel rows) and
`run` (bytes of one kernel row: k_w x in_c), what its im2col gather copies. `kind` says which:
`fc`, `pw` (1x1 CONV_2D), `conv` (k x k CONV_2D), `dw` (DEPTHWISE_CONV_2D), `lstm`
(UNIDIRECTIONAL_SEQUENCE_LSTM: p time steps of 4 x units outputs over features + units) or `other`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.codegen.ops.depthwise_conv import call_runs_by_columns


def _size(tensor: Any) -> int:
    return int(np.prod(tensor.shape, dtype=np.int64)) if tensor is not None else 0


def _rows(op: Any, by_columns: bool) -> dict[str, int]:
    """Rows and width of an image op (all batches' rows counted): a kernel that prepares its input
    row by row (the 3x3 depthwise) pays per input row, per output row and per output column; the
    rows of its frame, the image's columns where it runs `by_columns`."""
    inp, out = op.inputs[0].shape, op.outputs[0].shape
    if len(inp) != 4 or len(out) != 4:
        return {}
    row, col = (2, 1) if by_columns else (1, 2)
    return {"rows_in": int(inp[0]) * int(inp[row]), "rows": int(out[0]) * int(out[row]), "w": int(out[col])}


def op_shape(op: Any, call: Any = None) -> dict[str, Any]:
    """{kind, p, i, o, in, out} of one graph op (see the module docstring); `call`, its lowered
    kernel call if known (a 3x3 depthwise's frame may be the image transposed)."""
    inputs = [t for t in op.inputs if t is not None and t.data is None]
    values_in = sum(_size(t) for t in inputs)
    values_out = sum(_size(t) for t in op.outputs)
    shape = {"kind": "other", "p": 0, "i": 0, "o": 0, "k": 1, "in": values_in, "out": values_out}
    filt = op.inputs[1] if len(op.inputs) > 1 else None
    if op.opcode == "FULLY_CONNECTED" and filt is not None and len(filt.shape) == 2:
        out_depth, in_depth = (int(d) for d in filt.shape)
        shape.update(kind="fc", p=_size(op.inputs[0]) // max(in_depth, 1), i=in_depth, o=out_depth)
    elif op.opcode == "CONV_2D" and filt is not None and len(filt.shape) == 4:
        out_c, k_h, k_w, in_c = (int(d) for d in filt.shape)
        pixels = _size(op.outputs[0]) // max(out_c, 1)
        kind = "pw" if (k_h, k_w) == (1, 1) else "conv"
        shape.update(kind=kind, p=pixels, i=k_h * k_w * in_c, o=out_c, k=k_h * k_w)
        if kind == "conv":
            shape.update(kh=k_h, run=k_w * in_c)
    elif op.opcode == "DEPTHWISE_CONV_2D" and filt is not None and len(filt.shape) == 4:
        by_columns = call is not None and call_runs_by_columns(call)
        _, k_h, k_w, channels = (int(d) for d in filt.shape)
        pixels = _size(op.outputs[0]) // max(channels, 1)
        shape.update(kind="dw", p=pixels, i=k_h * k_w, o=channels, k=k_h * k_w, **_rows(op, by_columns))
    elif op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(op.outputs[0].shape) == 3:
        # per time step and sequence, the four gates' matmuls over the input and hidden state
        units, features = int(op.outputs[0].shape[2]), int(op.inputs[0].shape[2])
        shape.update(kind="lstm", p=values_out // max(units, 1), i=features + units, o=4 * units)
    elif op.opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        taps = int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
        channels = int(op.outputs[0].shape[-1])
        shape.update(p=values_out // max(channels, 1), i=taps, o=channels, k=taps)
    return shape
