"""From a parsed graph to lowered kernel calls and a memory plan (no files written here).

Order matters for the "nothing written on bad input" rule: every op is checked before
anything is lowered, and lowering happens before rendering, so an unsupported model
fails before the output folder is touched. One module, past 400 lines, because that order is its
job: checking, lowering, fusion and the arena plan (in-place groups included) hand one another
the same lowered calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from toolchain.codegen import fusion, fusion_choice, inplace
from toolchain.codegen.graph import Graph, Op, Tensor
from toolchain.codegen.lowering import KernelCall, LoweringContext
from toolchain.codegen.ops import BROKEN, module_for, registry, supported_opcodes
from toolchain.codegen.ops.depthwise_conv import may_run_by_columns
from toolchain.codegen.planner import Buffer, plan
from toolchain.codegen.validate import check_totals, validate_graph
from toolchain.errors import UnsupportedError

EDGE_DTYPES = ("int8",)
# Tensor types an op may hold: int8 activations and weights, int32/int64 biases, shapes and axes.
OP_TENSOR_DTYPES = ("int8", "int32", "int64")


@dataclass
class LoweredOp:
    op: Op
    call: KernelCall | None  # None for memory aliases (RESHAPE, SQUEEZE)
    fused: list[Op] = field(default_factory=list)  # further graph ops this call also runs


@dataclass
class LoweredModel:
    graph: Graph
    prefix: str
    ops: list[LoweredOp]
    ctx: LoweringContext
    buffers: list[Buffer]
    offsets: dict[int, int]  # arena tensor index -> byte offset
    arena_bytes: int
    float_edges: set[int] = field(default_factory=set)  # int8 tensors standing in for float model edges

    @property
    def weights_bytes(self) -> int:
        return sum(c.nbytes for c in self.ctx.constants)


# Inputs that only carry a shape the flatbuffer already holds statically (RESHAPE's target shape).
SHAPE_OPERANDS = {"RESHAPE": (1,)}


def prune_shape_ops(graph: Graph) -> Graph:
    """Drop ops whose results only feed shape operands (Keras' Flatten emits SHAPE -> STRIDED_SLICE
    -> PACK -> RESHAPE for a dynamic batch); every shape is static in the flatbuffer, so their
    work is dead. Returns the graph with the live ops only."""
    needed = {t.index for t in graph.outputs}
    live: list[Op] = []
    for op in reversed(graph.ops):
        if not any(t.index in needed for t in op.outputs):
            continue
        live.append(op)
        skip = SHAPE_OPERANDS.get(op.opcode, ())
        for position, t in enumerate(op.inputs):
            if t is not None and position not in skip:
                needed.add(t.index)
    live.reverse()
    if len(live) == len(graph.ops):
        return graph
    return Graph(graph.path, graph.sha256, graph.tensors, live, graph.inputs, graph.outputs)


def strip_float_edges(graph: Graph) -> tuple[Graph, set[int]]:
    """Drop a float32 model input's QUANTIZE and a float32 output's DEQUANTIZE.

    The C API is int8 at its edges (callers quantize with TR_INPUTn_SCALE/ZERO_POINT), so a
    model converted with float input/output runs on its int8 tensors. Returns the graph and
    the indices of the int8 tensors that stand in for float edges.
    """
    users: dict[int, list[Op]] = {}
    for op in graph.ops:
        for t in op.inputs:
            if t is not None:
                users.setdefault(t.index, []).append(op)
    dropped: set[int] = set()
    inputs, outputs, stand_ins = list(graph.inputs), list(graph.outputs), set()
    for i, t in enumerate(inputs):
        ops = users.get(t.index, [])
        if (
            t.dtype == "float32"
            and len(ops) == 1
            and ops[0].opcode == "QUANTIZE"
            and ops[0].outputs[0].dtype == "int8"
        ):
            inputs[i] = ops[0].outputs[0]
            dropped.add(ops[0].index)
            stand_ins.add(inputs[i].index)
    producers = {o.index: op for op in graph.ops for o in op.outputs}
    for i, t in enumerate(outputs):
        producer = producers.get(t.index)
        if (
            t.dtype == "float32"
            and producer is not None
            and producer.opcode == "DEQUANTIZE"
            and producer.inputs[0] is not None
            and producer.inputs[0].dtype == "int8"
        ):
            outputs[i] = producer.inputs[0]
            dropped.add(producer.index)
            stand_ins.add(outputs[i].index)
    if not dropped:
        return graph, set()
    ops = [op for op in graph.ops if op.index not in dropped]
    return Graph(graph.path, graph.sha256, graph.tensors, ops, inputs, outputs), stand_ins


def check_graph(graph: Graph) -> None:
    """Every op, input and output supported, or one UnsupportedError listing every problem.

    A model from elsewhere often has several (an int16 input, a dozen unsupported ops); naming
    them all at once saves the user a round trip per problem.
    """
    problems = []
    for t, role in [(t, "input") for t in graph.inputs] + [(t, "output") for t in graph.outputs]:
        if t.dtype not in EDGE_DTYPES or t.scale.size != 1:
            problems.append(
                f"model {role} '{t.name}' (tensor {t.index}) is {t.dtype}"
                f"{' without quantization' if t.scale.size == 0 else ''}; supported: int8 per-tensor "
                "quantized (convert with int8 input and output)"
            )
    unknown: list[str] = []
    for op in graph.ops:
        # an op module may allow more (UNIDIRECTIONAL_SEQUENCE_LSTM's int16 cell state)
        allowed = getattr(registry().get(op.opcode), "TENSOR_DTYPES", OP_TENSOR_DTYPES)
        odd_types = [
            f"{op.describe()}: tensor '{t.name}' is {t.dtype}"
            for t in [*op.inputs, *op.outputs]
            if t is not None and t.dtype not in allowed
        ]
        if op.opcode not in registry():
            unknown.append(op.opcode)
            problems.append(f"{op.describe()}: not supported by codegen")
            problems += odd_types
            continue
        if odd_types:
            problems += odd_types
            continue
        try:
            module_for(op).check(op)
        except UnsupportedError as exc:
            problems.append(str(exc))
    if not problems:
        return
    supported = ""
    if unknown:
        broken = "".join(
            f"; op module '{name}' failed to load ({why})" for name, why in sorted(BROKEN.items())
        )
        supported = f"; supported ops: {', '.join(supported_opcodes())}{broken}"
    if len(problems) == 1:  # op messages name the op; an edge message needs the file
        where = f"{graph.path}: " if problems[0].startswith("model ") else ""
        raise UnsupportedError(f"{where}{problems[0]}{supported}")
    raise UnsupportedError(f"{graph.path}: {len(problems)} problems: " + " | ".join(problems) + supported)


class _Groups:
    """Union-find over tensor indices: tensors sharing one arena buffer (aliases, in-place), each
    at a byte offset from its group's root (a widening in-place op finds its input further in)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.shift: dict[int, int] = {}  # offset from the parent; from the root once `find` returned

    def find(self, i: int) -> int:
        self.parent.setdefault(i, i)
        self.shift.setdefault(i, 0)
        path = []
        while self.parent[i] != i:
            path.append(i)
            i = self.parent[i]
        for node in reversed(path):  # nearest the root first: its parent's shift is the root's
            parent = self.parent[node]
            if parent != i:
                self.shift[node] += self.shift[parent]
            self.parent[node] = i
        return i

    def offset(self, i: int) -> int:
        """Tensor i's byte offset from its group's root."""
        self.find(i)
        return self.shift[i]

    def union(self, a: int, b: int, b_after_a: int = 0) -> None:
        """Join b's group to a's, tensor b placed `b_after_a` bytes after tensor a."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.shift[root_b] = self.offset(a) + b_after_a - self.offset(b)
            self.parent[root_b] = root_a


def _uses(graph: Graph, lowered: list[LoweredOp]) -> dict[int, list[int]]:
    """Op positions (in the lowered order) touching each arena tensor; graph edges at -1 and len."""
    uses: dict[int, list[int]] = {}
    for position, item in enumerate(lowered):
        for op in [item.op, *item.fused]:
            skip = SHAPE_OPERANDS.get(op.opcode, ())
            data_inputs = [t for i, t in enumerate(op.inputs) if i not in skip]
            for t in [*data_inputs, *op.outputs]:
                if t is not None and t.data is None:
                    uses.setdefault(t.index, []).append(position)
    for t in graph.inputs:
        uses.setdefault(t.index, []).append(-1)
    for t in graph.outputs:
        uses.setdefault(t.index, []).append(len(lowered))
    return uses


def _internal_tensors(item: LoweredOp) -> set[int]:
    """Tensors produced and consumed inside a fused call: they never reach the arena."""
    if not item.fused:
        return set()
    produced = {t.index for op in [item.op, *item.fused] for t in op.outputs}
    final = {t.index for t in item.fused[-1].outputs}
    return produced - final


def _buffers(
    graph: Graph, lowered: list[LoweredOp], ctx: LoweringContext, blocked: frozenset[int] | None
) -> tuple[list[Buffer], dict[int | str, tuple[Buffer, int]], list[int]]:
    """The arena buffers; the buffer and byte offset in it of each arena tensor (by index) and of
    each scratch kept inside a tensor group (by name); the positions of the calls whose input sits
    inside their output's bytes (a shifted in-place call).

    The kernels of `inplace.ROW_KERNELS` and `inplace.PAIR_KERNELS` share their input's buffer
    where `inplace.in_place_shift` allows, except at the positions in `blocked` (all if None); an
    in-place pair keeps its rank-r vector in its input's dead bytes where
    `inplace.narrow_in_input` allows (else that scratch is a buffer of its own)."""
    uses = _uses(graph, lowered)
    internal = set().union(*(_internal_tensors(item) for item in lowered)) if lowered else set()
    edges = {t.index for t in [*graph.inputs, *graph.outputs]}
    groups = _Groups()
    shifted: list[int] = []
    inside: dict[str, tuple[int, int, int, int]] = {}  # scratch: tensor, offset from it, bytes, position
    for position, item in enumerate(lowered):
        module = module_for(item.op)
        src, dst = item.op.inputs[0], (item.fused[-1] if item.fused else item.op).outputs[0]
        if src is None or src.data is not None:
            continue
        if getattr(module, "ALIAS", False) and not item.fused:
            groups.union(src.index, dst.index)
            continue
        group = groups.find(src.index)
        dies = max(max(uses[i]) for i in uses if groups.find(i) == group) == position
        shift: int | None = None  # the input's offset from the output's start, if in place
        if item.fused and fusion.runs_in_place([item.op, *item.fused]):
            shift = 0
        elif item.fused:  # a one-row factored pair (inplace.PAIR_KERNELS)
            allowed = blocked is not None and position not in blocked
            shift = inplace.in_place_shift(item.op, item.call, dies, edges, item.fused) if allowed else None
        elif getattr(module, "INPLACE", False):
            shift = 0 if src.nbytes == dst.nbytes else None
        elif blocked is not None and position not in blocked:
            shift = inplace.in_place_shift(item.op, item.call, dies, edges)
        if shift is not None and dies:
            groups.union(src.index, dst.index, -shift)
            shifted += [position] if shift else []
            narrow = None
            if item.fused:
                narrow = inplace.narrow_in_input(item.call, src.nbytes, dst.nbytes, ctx.dsp)
            if narrow is not None and item.call is not None:
                name, at = narrow
                size = next(s.nbytes for s in ctx.scratches if s.name == name)
                inside[name] = (src.index, at, size, position)
    members: dict[int, list[Tensor]] = {}
    tensors = {t.index: t for t in graph.tensors}
    for index in uses:
        if index not in internal:
            members.setdefault(groups.find(index), []).append(tensors[index])
    placed: dict[int | str, tuple[Buffer, int]] = {}
    buffers: list[Buffer] = []
    for root, ts in members.items():
        # a group holds each tensor's bytes only while that tensor lives (its pieces)
        start = min(groups.offset(t.index) for t in ts)
        pieces = [
            (groups.offset(t.index) - start, t.nbytes, min(uses[t.index]), max(uses[t.index])) for t in ts
        ]
        kept = {name: v for name, v in inside.items() if groups.find(v[0]) == root}
        scratch_pieces = [(groups.offset(i) - start + at, n, p, p) for i, at, n, p in kept.values()]
        buf = Buffer(
            name=f"tensor {root}",
            nbytes=max(at + n for at, n, _, _ in pieces),
            first=min(first for _, _, first, _ in pieces),
            last=max(last for _, _, _, last in pieces),
            members=[t.name for t in ts] + list(kept),
            pieces=pieces + scratch_pieces if len(ts) > 1 else [],
        )
        buffers.append(buf)
        for t, piece in zip(ts, pieces, strict=True):
            placed[t.index] = (buf, piece[0])
        for name, piece in zip(kept, scratch_pieces, strict=True):
            placed[name] = (buf, piece[0])
    position_of = {item.op.index: p for p, item in enumerate(lowered)}
    for s in (s for s in ctx.scratches if s.name not in inside):
        p = position_of[s.op_index]
        buffers.append(Buffer(name=s.name, nbytes=s.nbytes, first=p, last=p, members=[s.name]))
    return buffers, placed, shifted


def _plan_buffers(
    graph: Graph, lowered: list[LoweredOp], ctx: LoweringContext, in_place: bool | None
) -> tuple[int, list[Buffer], dict[int | str, tuple[Buffer, int]]]:
    """The arena size, buffers and tensor (and in-group scratch) placement of the smallest plan tried.

    In place where allowed, then each shifted in-place call kept apart in turn (an in-place group
    is rigid: every widening call moves the rest of its chain further from its start, which can
    cost more than the call saves), and nothing in place: the greedy placement is a heuristic,
    the smallest arena is kept (in place on a tie). `in_place` False: nothing; True: everything.
    """

    def attempt(
        blocked: frozenset[int] | None,
    ) -> tuple[int, list[Buffer], dict[int | str, tuple[Buffer, int]], list[int]]:
        buffers, placed, shifted = _buffers(graph, lowered, ctx, blocked)
        return plan(buffers), buffers, placed, shifted

    best = attempt(None if in_place is False else frozenset())
    if in_place is None:
        blocked: frozenset[int] = frozenset()
        for position in best[3]:
            trial = attempt(blocked | {position})
            if trial[0] < best[0]:
                best, blocked = trial, blocked | {position}
        apart = attempt(None)
        best = apart if apart[0] < best[0] else best
    return best[0], best[1], best[2]


def _lower_and_plan(
    graph: Graph,
    prefix: str,
    fuse: bool | frozenset[int],
    in_place: bool | None = None,
    by_columns: frozenset[int] = frozenset(),
    dsp: bool = True,
) -> LoweredModel:
    ctx = LoweringContext(prefix=prefix, by_columns=by_columns, dsp=dsp)
    lowered: list[LoweredOp] = []
    for group in fusion.schedule(graph, fuse):
        first = group[0]
        ctx.op_index = first.index
        call = fusion.lower(group, ctx) if len(group) > 1 else module_for(first).lower(first, ctx)
        lowered.append(LoweredOp(first, call, list(group[1:])))
    arena, buffers, by_tensor = _plan_buffers(graph, lowered, ctx, in_place)
    offsets = {
        index: buf.offset + within for index, (buf, within) in by_tensor.items() if isinstance(index, int)
    }
    placed = {b.name: b.offset for b in buffers}
    for s in ctx.scratches:  # a scratch of its own, or inside a tensor group (an in-place pair)
        buf, within = by_tensor.get(s.name, (None, 0))
        s.offset = placed[s.name] if buf is None else buf.offset + within
    return LoweredModel(graph, prefix, lowered, ctx, buffers, offsets, arena)


def _columns_where_free(
    graph: Graph, model: LoweredModel, lower_and_plan: Callable[[frozenset[int]], LoweredModel]
) -> LoweredModel:
    """`model` with each 3x3 depthwise that may run by columns (`depthwise_conv.may_run_by_columns`)
    doing so where the arena stays as small: by columns is faster, but its ring of stored rows
    grows with the image's height, and DS-CNN's depthwise layers would then set the arena's peak
    (19% above its first convolution's). Greedy in model order, as `fusion_choice.choose`."""
    chosen: frozenset[int] = frozenset()
    for op in graph.ops:
        if op.opcode == "DEPTHWISE_CONV_2D" and may_run_by_columns(op):
            trial = lower_and_plan(chosen | {op.index})
            if trial.arena_bytes <= model.arena_bytes:
                model, chosen = trial, chosen | {op.index}
    return model


def lower_graph(
    graph: Graph,
    prefix: str = "tr",
    fuse: bool | None = None,
    in_place: bool | None = None,
    dsp: bool = True,
) -> LoweredModel:
    """Check, lower and plan; raises before any output exists if something is unsupported.

    `fuse=None` fuses each factored layer where that shrinks the arena, or keeps it and is
    predicted faster (`fusion_choice.choose`); True or False fuses all or none. `in_place` likewise for the
    row kernels that may overwrite their input (`inplace.in_place_shift`; in place on a tie).
    `dsp=False` keeps the layouts of the plain C path (Cortex-M0/M3) where a DSP target reads
    another (`LoweringContext.dsp`).
    """
    validate_graph(graph)
    graph, stand_ins = strip_float_edges(prune_shape_ops(graph))
    check_graph(graph)
    if fuse is not None:
        model = _lower_and_plan(graph, prefix, fuse, in_place, dsp=dsp)
    else:
        model = fusion_choice.choose(
            graph, lambda fuse: _lower_and_plan(graph, prefix, fuse, in_place, dsp=dsp), dsp
        )
    fused = frozenset(item.op.index for item in model.ops if item.fused)
    model = _columns_where_free(
        graph, model, lambda cols: _lower_and_plan(graph, prefix, fused, in_place, cols, dsp)
    )
    model.float_edges = stand_ins
    macs = sum(item.call.macs for item in model.ops if item.call is not None)
    check_totals(graph, model.arena_bytes, macs, model.weights_bytes)
    return model
