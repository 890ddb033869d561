"""The validation pass: a parsed graph is hostile until proven sane, before anything is lowered.

A `.tflite` file can claim anything: negative or huge dimensions, a weight buffer shorter
than its shape, NaN or zero scales, a zero point outside int8, an op reading a tensor
nothing produced, connected tensors that disagree on batch or channels. Lowering would turn
any of these into a Python exception deep in the arithmetic or, worse, into C that reads or
writes past a buffer. `validate_graph` checks them all first and raises one `ModelError`
naming the op and the tensor; `check_totals` bounds what lowering computed (arena, MACs).

The op modules' own `check` still says what a kernel supports; this pass says what a model
must be to mean anything at all.
"""

from __future__ import annotations

import math

import numpy as np

from toolchain.codegen.graph import Graph, Op, Tensor
from toolchain.errors import ModelError

MAX_RANK = 6
MAX_ELEMENTS = 1 << 26  # 64 Mi values per tensor: far above any microcontroller, far below overflow
MAX_ARENA_BYTES = 1 << 28  # 256 MiB: no board has this much RAM; beyond it the plan is nonsense
MAX_MACS = 1 << 40
MAX_SCALE, MIN_SCALE = 2.0**32, 2.0**-64
MAX_MULTIPLIER = 2.0**20  # requantization multiplier: keeps every shift inside an int32
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (0, 0), "int64": (0, 0)}
ITEMSIZE = {
    "int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2, "int32": 4, "uint32": 4,
    "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
}  # fmt: skip
MATMUL_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
SAME_SHAPE_OPS = ("LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE", "SOFTMAX")
POOL_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D")
# Ops that keep state in variable tensors, and the input positions holding it. The kernels
# clear their state at the start of each inference, so a variable tensor is state of one op.
STATE_INPUTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": (18, 19)}


def _where(graph: Graph, op: Op | None, t: Tensor | None = None) -> str:
    parts = [str(graph.path)]
    if op is not None:
        parts.append(op.describe())
    if t is not None:
        parts.append(f"tensor {t.index} {t.name[:60]!r}")
    return ": ".join(parts)


def _fail(graph: Graph, op: Op | None, t: Tensor | None, what: str) -> ModelError:
    return ModelError(f"{_where(graph, op, t)}: {what}")


def check_tensor(graph: Graph, op: Op | None, t: Tensor) -> None:
    """Shape, dtype, data size and quantization of one tensor."""
    if t.dtype not in ITEMSIZE:
        raise _fail(graph, op, t, f"has unknown type {t.dtype}")
    if len(t.shape) > MAX_RANK or any(d < 1 for d in t.shape):
        raise _fail(graph, op, t, f"has shape {list(t.shape)}; dimensions must be >= 1, at most {MAX_RANK}")
    if math.prod(t.shape) > MAX_ELEMENTS:
        raise _fail(graph, op, t, f"has {math.prod(t.shape):,} values; the limit is {MAX_ELEMENTS:,}")
    if t.data is not None and t.data.size != t.size:
        raise _fail(graph, op, t, f"holds {t.data.size} values for shape {list(t.shape)}")
    if t.data is not None and t.data.dtype.kind == "f" and not np.all(np.isfinite(t.data)):
        raise _fail(graph, op, t, "holds NaN or Inf values")
    _check_quantization(graph, op, t)


def _check_quantization(graph: Graph, op: Op | None, t: Tensor) -> None:
    if t.scale.size == 0:
        if t.zero_point.size:
            raise _fail(graph, op, t, "has zero points but no scales")
        return
    if t.zero_point.size != t.scale.size:
        raise _fail(graph, op, t, f"has {t.scale.size} scales but {t.zero_point.size} zero points")
    scales = t.scale.astype(np.float64)
    if not np.all(np.isfinite(scales)) or np.any(scales < MIN_SCALE) or np.any(scales > MAX_SCALE):
        bad = scales[~(np.isfinite(scales) & (scales >= MIN_SCALE) & (scales <= MAX_SCALE))][0]
        raise _fail(graph, op, t, f"has quantization scale {bad}; scales must be finite, in [2^-64, 2^32]")
    low, high = ZERO_POINT_RANGE.get(t.dtype, (-(2**31), 2**31 - 1))
    if np.any(t.zero_point < low) or np.any(t.zero_point > high):
        bad = int(t.zero_point[(t.zero_point < low) | (t.zero_point > high)][0])
        raise _fail(graph, op, t, f"has zero point {bad}; {t.dtype} allows {low}..{high}")
    if t.scale.size > 1:
        if not 0 <= t.quantized_dimension < len(t.shape):
            raise _fail(
                graph, op, t, f"is quantized along dimension {t.quantized_dimension} of {len(t.shape)}"
            )
        if t.shape[t.quantized_dimension] != t.scale.size:
            raise _fail(
                graph,
                op,
                t,
                f"has {t.scale.size} scales for {t.shape[t.quantized_dimension]} channels "
                f"along dimension {t.quantized_dimension}",
            )


def check_dataflow(graph: Graph) -> None:
    """At least one input and output; every op reads tensors that exist by then, and each is written once."""
    if not graph.inputs:
        raise _fail(graph, None, None, "the model has no input")
    if not graph.outputs:
        raise _fail(graph, None, None, "the model has no output")
    available = {t.index for t in graph.inputs} | {
        t.index for t in graph.tensors if t.data is not None or t.is_variable
    }
    written: set[int] = set()
    state_of: dict[int, Op] = {}
    for op in graph.ops:
        if not op.outputs:
            raise _fail(graph, op, None, "has no output tensor")
        for position, t in enumerate(op.inputs):
            if t is not None and t.is_variable:
                if (
                    position not in STATE_INPUTS.get(op.opcode, ())
                    or state_of.setdefault(t.index, op) is not op
                ):
                    raise _fail(graph, op, t, "reads a variable tensor that is not its own recurrent state")
            if t is not None and t.index not in available:
                raise _fail(
                    graph, op, t, "reads a tensor that no earlier op writes and that is no model input"
                )
        for t in op.outputs:
            if (
                t.index in written
                or t.index in {i.index for i in graph.inputs}
                or t.data is not None
                or t.is_variable
            ):
                raise _fail(
                    graph,
                    op,
                    t,
                    "writes a model input, a constant, a variable tensor, or a tensor an earlier op wrote",
                )
            written.add(t.index)
            available.add(t.index)
    for t in graph.outputs:
        if t.index not in available:
            raise _fail(graph, None, t, "the model output is never written")


def _activations(op: Op) -> list[Tensor]:
    return [t for t in op.inputs if t is not None and t.data is None]


def check_multipliers(graph: Graph, op: Op) -> None:
    """Requantization multipliers in TFLite's usable range, so no kernel shifts past 31 bits."""
    outs = [t for t in op.outputs if t.scale.size]
    ins = [t for t in _activations(op) if t.scale.size]
    if not outs or not ins:
        return
    out = outs[0]
    real = [float(i.scale.max()) / float(out.scale.min()) for i in ins]
    real += [float(i.scale.min()) / float(out.scale.max()) for i in ins]
    if (
        op.opcode in MATMUL_OPS
        and len(op.inputs) > 1
        and op.inputs[1] is not None
        and op.inputs[1].scale.size
    ):
        w = op.inputs[1].scale.astype(np.float64)
        real += [float(ins[0].scale[0]) * float(w.max()) / float(out.scale.min())]
    worst = max(real)
    if not math.isfinite(worst) or worst > MAX_MULTIPLIER:
        raise _fail(graph, op, out, f"implies a requantization multiplier of {worst:.3g}; the limit is 2^20")


def _dims(graph: Graph, op: Op, t: Tensor, rank: int, role: str) -> tuple[int, ...]:
    if len(t.shape) != rank:
        raise _fail(graph, op, t, f"the {role} has shape {list(t.shape)}; expected {rank} dimensions")
    return t.shape


def _agree(graph: Graph, op: Op, t: Tensor, what: str, found: object, expected: object) -> None:
    if found != expected:
        raise _fail(graph, op, t, f"{what} is {found}; the connected tensors need {expected}")


def _spatial(op: Op, in_size: int, k: int, axis: str, dilation_key: str) -> int:
    o = op.options
    stride, dilation = int(o.get(f"stride_{axis}", 1)), int(o.get(dilation_key, 1))
    effective = (k - 1) * dilation + 1
    if o.get("padding") == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def check_options(graph: Graph, op: Op) -> None:
    """Strides, dilations, filter sizes and multipliers a divisor or a loop bound relies on."""
    for key in ("stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor", "filter_height",
                "filter_width", "depth_multiplier"):  # fmt: skip
        if key in op.options and not 1 <= int(op.options[key]) <= 1 << 16:
            raise _fail(graph, op, None, f"option {key}={op.options[key]} must be in 1..65536")


def check_connections(graph: Graph, op: Op) -> None:
    """Connected tensors agree: batch, channels, spatial sizes and element counts per op kind."""
    ins = [t for t in op.inputs if t is not None]
    if not ins:
        return
    src, dst = op.inputs[0], op.outputs[0]
    if src is None:
        raise _fail(graph, op, None, "has no first input")
    kind = op.opcode
    if kind == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1] is not None:
        filt = op.inputs[1]
        units, depth = _dims(graph, op, filt, 2, "weights")
        if src.size % depth:
            raise _fail(
                graph, op, src, f"has {src.size} values, not a multiple of the weights' depth {depth}"
            )
        _agree(graph, op, dst, "the output size", dst.size, src.size // depth * units)
        _check_bias(graph, op, units)
    elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1 and op.inputs[1] is not None:
        n, h, w, c = _dims(graph, op, src, 4, "input")
        on, oh, ow, oc = _dims(graph, op, dst, 4, "output")
        _, kh, kw, kc = _dims(graph, op, op.inputs[1], 4, "filter")
        _agree(graph, op, dst, "the output batch", on, n)
        if kind == "CONV_2D":
            _agree(graph, op, dst, "the output channels", oc, op.inputs[1].shape[0])
            if kc < 1 or c % kc:
                raise _fail(graph, op, op.inputs[1], f"has {kc} input channels for an input of {c}")
        else:
            _agree(graph, op, op.inputs[1], "the filter channels", kc, oc)
            _agree(
                graph, op, dst, "the output channels", oc, c * int(op.options.get("depth_multiplier", 1) or 1)
            )
        _agree(graph, op, dst, "the output height", oh, _spatial(op, h, kh, "h", "dilation_h_factor"))
        _agree(graph, op, dst, "the output width", ow, _spatial(op, w, kw, "w", "dilation_w_factor"))
        _check_bias(graph, op, oc)
    elif kind in POOL_OPS:
        n, h, w, c = _dims(graph, op, src, 4, "input")
        on, oh, ow, oc = _dims(graph, op, dst, 4, "output")
        _agree(graph, op, dst, "the output batch and channels", (on, oc), (n, c))
        kh, kw = int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1))
        _agree(graph, op, dst, "the output height", oh, _spatial(op, h, kh, "h", "none"))
        _agree(graph, op, dst, "the output width", ow, _spatial(op, w, kw, "w", "none"))
    elif kind in SAME_SHAPE_OPS:
        _agree(graph, op, dst, "the output shape", dst.shape, src.shape)
    elif kind in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        _agree(graph, op, dst, "the output size", dst.size, src.size)
    elif kind in ("ADD", "SUB", "MUL") and len(ins) >= 2:
        try:
            shape = np.broadcast_shapes(ins[0].shape, ins[1].shape)
        except ValueError:
            raise _fail(  # noqa: B904 - the two shapes say it all
                graph, op, ins[1], f"shapes {list(ins[0].shape)} and {list(ins[1].shape)} do not broadcast"
            )
        _agree(graph, op, dst, "the output shape", dst.shape, tuple(shape))
    elif kind == "CONCATENATION":
        _check_concatenation(graph, op, ins, dst)


def _check_bias(graph: Graph, op: Op, channels: int) -> None:
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if bias is not None and bias.size != channels:
        raise _fail(graph, op, bias, f"the bias has {bias.size} values for {channels} output channels")


def _check_concatenation(graph: Graph, op: Op, ins: list[Tensor], dst: Tensor) -> None:
    rank = len(dst.shape)
    axis = int(op.options.get("axis", 0))
    if not -rank <= axis < rank:
        raise _fail(graph, op, dst, f"concatenates along axis {axis} of a {rank}-D output")
    axis %= rank
    for t in ins:
        if len(t.shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, dst.shape, strict=True)) if i != axis
        ):
            raise _fail(
                graph,
                op,
                t,
                f"has shape {list(t.shape)}; the output {list(dst.shape)} needs it on axis {axis}",
            )
    _agree(
        graph, op, dst, f"the output size along axis {axis}", dst.shape[axis], sum(t.shape[axis] for t in ins)
    )


def validate_graph(graph: Graph) -> None:
    """Every check above, in the order a reader would make them; the first failure is raised."""
    check_dataflow(graph)
    for t in [*graph.inputs, *graph.outputs]:
        check_tensor(graph, None, t)
    for op in graph.ops:
        for edge in [*op.inputs, *op.outputs]:
            if edge is not None:
                check_tensor(graph, op, edge)
        check_options(graph, op)
        check_connections(graph, op)
        check_multipliers(graph, op)


def check_totals(graph: Graph, arena_bytes: int, macs: int, weights_bytes: int) -> None:
    """What lowering computed must be plausible: a negative or astronomic total means a hostile model."""
    if not 0 <= arena_bytes <= MAX_ARENA_BYTES:
        raise _fail(
            graph, None, None, f"needs an arena of {arena_bytes:,} bytes; the limit is {MAX_ARENA_BYTES:,}"
        )
    if not 0 <= macs <= MAX_MACS:
        raise _fail(
            graph, None, None, f"counts {macs:,} multiply-accumulates per inference; the limit is 2^40"
        )
    if weights_bytes < 0:
        raise _fail(graph, None, None, f"counts {weights_bytes:,} bytes of weights")
