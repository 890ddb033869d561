"""Which graph ops run together in one fused kernel call.

A low-rank factored dense layer is two FULLY_CONNECTED ops through a narrow rank-r
tensor. Fused, the narrow tensor lives in an r-byte scratch buffer during one kernel call
instead of in the arena. Whether that is smaller depends on the neighbours (fused, input
and output are alive together), so `generator.lower_graph` plans both ways and keeps the
smaller arena.

`schedule(graph, fuse)` returns the ops in execution order, grouped: a group of one op is
lowered by its op module; a group of two is a factored pair run by `lower`.
"""

from __future__ import annotations

from toolchain.codegen.graph import Graph, Op
from toolchain.codegen.lowering import KernelCall, LoweringContext
from toolchain.codegen.ops import fully_connected


def _consumers(graph: Graph) -> dict[int, list[Op]]:
    users: dict[int, list[Op]] = {}
    for op in graph.ops:
        for t in op.inputs:
            if t is not None:
                users.setdefault(t.index, []).append(op)
    return users


def is_factored_pair(first: Op, second: Op, graph: Graph, users: dict[int, list[Op]]) -> bool:
    """FC -> FC where the first's output feeds only the second and is narrower than both ends."""
    if first.opcode != "FULLY_CONNECTED" or second.opcode != "FULLY_CONNECTED":
        return False
    middle = first.outputs[0]
    if second.inputs[0] is not middle or [op.index for op in users.get(middle.index, [])] != [second.index]:
        return False
    if any(t.index == middle.index for t in graph.outputs):
        return False
    rank, depth_in, depth_out = first.inputs[1].shape[0], first.inputs[1].shape[1], second.inputs[1].shape[0]
    batches_in = first.inputs[0].size // depth_in
    return rank < min(depth_in, depth_out) and middle.size == batches_in * rank


def schedule(graph: Graph, fuse: bool = True) -> list[list[Op]]:
    users = _consumers(graph)
    groups: list[list[Op]] = []
    i = 0
    while i < len(graph.ops):
        op = graph.ops[i]
        if fuse and i + 1 < len(graph.ops) and is_factored_pair(op, graph.ops[i + 1], graph, users):
            groups.append([op, graph.ops[i + 1]])
            i += 2
        else:
            groups.append([op])
            i += 1
    return groups


def lower(group: list[Op], ctx: LoweringContext) -> KernelCall:
    first, second = group
    depth_in, rank, depth_out = first.inputs[1].shape[1], first.inputs[1].shape[0], second.inputs[1].shape[0]
    batches = first.inputs[0].size // depth_in
    narrow = ctx.scratch(rank)
    args = [ctx.tensor(first.inputs[0]), ctx.tensor(second.outputs[0]), str(batches), str(depth_in), str(rank),
            str(depth_out), *fully_connected.layer_arguments(first, ctx),
            *fully_connected.layer_arguments(second, ctx), narrow]
    comment = (f"factored FULLY_CONNECTED pair (rank {rank}): {fully_connected.describe(first)}; then "
               f"{fully_connected.describe(second)}")
    return KernelCall("tr_fully_connected.c", "tr_fully_connected_factored_int8", args, comment,
                      macs=batches * rank * (depth_in + depth_out))
