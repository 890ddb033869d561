"""Which kernel calls may write their output over their input: one arena buffer for both.

TinyEngine's in-place depthwise trick (MCUNetV2), extended to the matmul rows: in a
depthwise-separable network every depthwise 3x3 and every pointwise layer otherwise holds its
input and output alive together, and that pair is the peak of the arena.

A kernel may run in place when, before it writes any output byte, it has consumed (widened or
copied into scratch) every input byte that output byte covers, and never reads those input
bytes from the arena again. `output_trails_input` checks the byte order for kernels that go
row by row; `in_place_shift` adds what the planner knows (the input dies at this call).
"""

from __future__ import annotations

from collections.abc import Sequence

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall
from toolchain.codegen.ops import conv
from toolchain.codegen.ops.depthwise_conv import call_runs_by_columns
from toolchain.codegen.planner import align

# Kernels that consume whole input rows into scratch before writing the output rows they feed:
# the 3x3 depthwise widens input rows into a ring of three (each row once per channel group; a
# group's outputs only cover that group's channel bytes), and the matmul rows (FULLY_CONNECTED,
# pointwise CONV_2D) widen each input row (DSP path) or copy it (plain C path, when the output
# overlaps the input) into scratch before its outputs are stored.
ROW_KERNELS = {
    "tr_depthwise_conv_3x3_int8": "DEPTHWISE_CONV_2D",
    "tr_depthwise_conv_3x3_doubled_int8": "DEPTHWISE_CONV_2D",
    "tr_fully_connected_int8": "MATMUL",
    "tr_fully_connected_row_int8": "MATMUL",  # prepares the whole row into scratch first
}

# Fused calls that may write their output over their input, for one row: a factored pair
# computes its whole rank-r vector into scratch (`narrow`) before it stores an output byte, and
# never reads its input again. Only the one-row form is admitted (the pair of the digits MLP;
# two rows at a time would need the matmul rows' byte-order proof). These are all the entry points
# of a fused pair, the general one first: the cost model fits the others with its coefficients.
PAIR_KERNELS = (
    "tr_fully_connected_factored_int8",
    "tr_fully_connected_factored_row_int8",
    "tr_fully_connected_factored_thin_int8",
)


def output_trails_input(
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    k_h: int,
    stride_h: int,
    dil_h: int,
    pad_top: int,
    shift: int = 0,
) -> bool:
    """True if every output row oy of one NHWC image, written once the input rows up to the bottom
    of its receptive field were consumed, ends at or before the first input row still to be read
    (the last rows: every input row was read), the input starting `shift` bytes after the output.
    Batch 1 only."""
    n, in_h, in_w, in_c = in_shape
    _, out_h, out_w, out_c = out_shape
    if n != 1:
        return False
    for oy in range(out_h):
        bottom = min(oy * stride_h - pad_top + (k_h - 1) * dil_h, in_h - 1)
        if bottom < in_h - 1 and (oy + 1) * out_w * out_c > shift + (bottom + 1) * in_w * in_c:
            return False
    return True


def _input_shift(op: Op, call: KernelCall) -> int | None:
    """Where this one op's kernel call may find its input inside its output's bytes (bytes after
    the output's start) and never overwrite an input byte it still reads; None: nowhere."""
    kind = ROW_KERNELS.get(call.function)
    inp, out = op.input(0), op.outputs[0]
    if kind == "DEPTHWISE_CONV_2D" and call_runs_by_columns(call):
        # run by columns: output column ox covers every image row, so only an output of the
        # input's own shape (SAME, stride 1) stays on bytes already consumed (input column ox,
        # widened into the ring with its neighbours and never read from the arena again)
        return 0 if inp.shape == out.shape else None
    if kind == "DEPTHWISE_CONV_2D":
        # multiplier 1: channel c of the output sits on channel c of the input, so a channel
        # group's output bytes only ever meet bytes of the same group, read row by row
        k_h, _, stride_h, _, dil_h, _, pad_top, _ = conv.geometry(op)
        trails = output_trails_input(inp.shape, out.shape, k_h, stride_h, dil_h, pad_top)
        return 0 if inp.shape[3] == out.shape[3] and trails else None
    if kind == "MATMUL":
        # rows x depth: output row r (out_depth bytes) is written after input row r (and r + 1 in
        # a pair) is in scratch. It stays within input rows already read when out_depth <=
        # in_depth; a wider output needs the input towards the end of its bytes, (rows - 1) x
        # (out_depth - in_depth) in (rounded up to the arena alignment)
        in_depth, out_depth = op.input(1).shape[-1], op.input(1).shape[0]
        rows = inp.size // in_depth
        if out.size != rows * out_depth:
            return None
        shift = 0 if out_depth <= in_depth else align((rows - 1) * (out_depth - in_depth))
        matrix_in, matrix_out = (1, rows, 1, in_depth), (1, rows, 1, out_depth)
        return shift if output_trails_input(matrix_in, matrix_out, 1, 1, 1, 0, shift) else None
    return None


def _pair_shift(call: KernelCall) -> int | None:
    """0 for a one-row factored pair (`PAIR_KERNELS`): its input is consumed whole before the
    first output byte is stored, so both may start together whatever their widths."""
    if call.function in PAIR_KERNELS and call.params.fields.get("batches") == 1:
        return 0
    return None


def narrow_in_input(
    call: KernelCall | None, in_bytes: int, out_bytes: int, dsp: bool = True
) -> tuple[str, int] | None:
    """Where an in-place one-row pair may keep its rank-r vector (`narrow`, the call's third
    argument) instead of a scratch buffer of its own: (scratch name, byte offset from the input's
    start, past the output's bytes), or None.

    Only when the first layer reads its whole input row before it stores the first rank-r byte:
    a row stream (`tr_row_stream_layer` prepares the row into `wide`) or a thin stream
    (`tr_thin_pass_row` widens it into `wide`); the int8 matmul loops read the input while they store.
    The second layer writes only the output's bytes, never those past them. Only on a DSP target
    (`dsp`), where `wide` is there anyway: the plain C path would read a copy of the whole row
    (`tr_thin_pass_row`), more bytes than the rank-r vector saves, so its pair has no `wide`
    (`fusion._pair_wide`) and keeps the vector in scratch."""
    if call is None or not dsp or _pair_shift(call) != 0:
        return None
    fields = call.params.fields
    if fields.get("first_stream") != 1 and fields.get("first_thin", "NULL") == "NULL":
        return None
    rank = fields["rank"]
    at = align(out_bytes)
    if not isinstance(rank, int) or at + rank > in_bytes:
        return None
    return call.args[2], at


def in_place_shift(
    op: Op, call: KernelCall | None, input_dies: bool, edges: set[int], fused: Sequence[Op] = ()
) -> int | None:
    """Whether the call of `op` (with the ops `fused` into it) may run in place: None if not, else
    the byte offset of its input from the start of its output (0: both start together).

    Safe because: the input is read by nothing after this op (`input_dies`: the planner's
    liveness over the input's whole alias group); neither tensor is a model input or output
    (`edges`: the caller fills the input and reads the output through tr_input/tr_output, and
    they keep their own buffers); and the kernel consumes every input row into scratch before
    writing an output byte over it (`_input_shift`, per kernel and shape). Ops outside
    ROW_KERNELS and PAIR_KERNELS (elementwise INPLACE ops, the fused Tucker chain) are decided
    elsewhere.
    """
    inp, out = op.input(0), (fused[-1] if fused else op).outputs[0]
    if call is None or not input_dies or inp.data is not None:
        return None
    if inp.index in edges or out.index in edges:
        return None
    return _pair_shift(call) if fused else _input_shift(op, call)
