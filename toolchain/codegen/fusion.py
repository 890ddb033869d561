"""Which graph ops run together in one fused kernel call.

Low-rank factored layers, as the compress stage writes them:
- a dense layer is two FULLY_CONNECTED ops through a narrow rank-r tensor, an SVD-factored 1x1
  convolution two pointwise CONV_2D; fused (tr_fully_connected_factored_int8), two rows or
  pixels at a time, the narrow tensor lives in 2r bytes of scratch instead of in the arena;
- a Tucker-2 convolution is CONV_2D 1x1 (C_in -> r1), k x k (r1 -> r2), 1x1 (r2 -> C_out);
  fused (tr_conv_tucker.c), both narrow tensors live in a few rows of scratch;
- a spatially factored convolution is CONV_2D k x 1 (C_in -> r), 1 x k (r -> C_out); fused
  (tr_conv_spatial.c), the narrow tensor lives in one row of scratch.
Whether fusing is smaller depends on the neighbours (fused, input and output are alive
together), whether it is faster on the shape: `fusion_choice` decides group by group.

`schedule(graph, fuse)` returns the ops in execution order, grouped: a group of one op is
lowered by its op module; a longer group (a factored pair or Tucker chain) by `lower`.
"""

from __future__ import annotations

from toolchain.codegen.graph import Graph, Op
from toolchain.codegen.inplace import output_trails_input
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, layer_name
from toolchain.codegen.ops import conv, fully_connected


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
    rank, depth_in, depth_out = first.input(1).shape[0], first.input(1).shape[1], second.input(1).shape[0]
    batches_in = first.input(0).size // depth_in
    return rank < min(depth_in, depth_out) and middle.size == batches_in * rank


def is_pointwise_pair(first: Op, second: Op, graph: Graph, users: dict[int, list[Op]]) -> bool:
    """CONV_2D 1x1 -> CONV_2D 1x1 (stride 1) through a tensor used nowhere else, narrower than both ends."""
    if first.opcode != "CONV_2D" or second.opcode != "CONV_2D":
        return False
    if not (
        conv.is_pointwise(first) and conv.is_pointwise(second) and _feeds_only(first, second, graph, users)
    ):
        return False
    in_c, rank, out_c = first.input(0).shape[3], first.outputs[0].shape[3], second.outputs[0].shape[3]
    return rank < min(in_c, out_c)


def is_spatial_pair(first: Op, second: Op, graph: Graph, users: dict[int, list[Op]]) -> bool:
    """CONV_2D k_h x 1 (identity along the width) -> CONV_2D 1 x k_w (identity along the height)
    through a tensor used nowhere else."""
    if (
        first.opcode != "CONV_2D"
        or second.opcode != "CONV_2D"
        or not _feeds_only(first, second, graph, users)
    ):
        return False
    k_h1, k_w1, _, stride_w1, _, dil_w1, _, pad_left1 = conv.geometry(first)
    k_h2, _, stride_h2, _, dil_h2, _, pad_top2, _ = conv.geometry(second)
    width_kept = (k_w1, stride_w1, dil_w1, pad_left1) == (1, 1, 1, 0)
    height_kept = (k_h2, stride_h2, dil_h2, pad_top2) == (1, 1, 1, 0)
    return width_kept and height_kept and (k_h1 > 1 or second.input(1).shape[2] > 1)


def _feeds_only(producer: Op, consumer: Op, graph: Graph, users: dict[int, list[Op]]) -> bool:
    """The producer's output is the consumer's first input, read by nothing else and not a model output."""
    t = producer.outputs[0]
    return (
        consumer.inputs[0] is t
        and [op.index for op in users.get(t.index, [])] == [consumer.index]
        and all(o.index != t.index for o in graph.outputs)
    )


def is_tucker_chain(chain: list[Op], graph: Graph, users: dict[int, list[Op]]) -> bool:
    """CONV_2D 1x1 -> CONV_2D k x k -> CONV_2D 1x1 through tensors used nowhere else.

    The middle is narrower than the ends.
    """
    first, middle, last = chain
    if any(op.opcode != "CONV_2D" for op in chain) or not (
        conv.is_pointwise(first) and conv.is_pointwise(last)
    ):
        return False
    if not (_feeds_only(first, middle, graph, users) and _feeds_only(middle, last, graph, users)):
        return False
    in_c, rank_in = first.input(0).shape[3], first.outputs[0].shape[3]
    rank_out, out_c = middle.outputs[0].shape[3], last.outputs[0].shape[3]
    return rank_in <= in_c and rank_out <= out_c and (rank_in < in_c or rank_out < out_c)


def runs_in_place(group: list[Op]) -> bool:
    """True if the fused group's output may overwrite its input: a Tucker chain (one image) whose
    output row oy, written after the input rows up to the bottom of its receptive field were
    consumed into the window, never reaches an input row still to be read."""
    if len(group) != 3:
        return False
    first, middle, last = group
    k_h, _, stride_h, _, dil_h, _, pad_top, _ = conv.geometry(middle)
    return output_trails_input(first.input(0).shape, last.outputs[0].shape, k_h, stride_h, dil_h, pad_top)


def schedule(graph: Graph, fuse: bool | frozenset[int] = True) -> list[list[Op]]:
    """`fuse` True fuses every group that can be, False none, a set the groups whose first op
    has one of those indices."""
    users = _consumers(graph)
    groups: list[list[Op]] = []
    i = 0
    while i < len(graph.ops):
        op = graph.ops[i]
        allowed = fuse if isinstance(fuse, bool) else op.index in fuse
        if allowed and i + 2 < len(graph.ops) and is_tucker_chain(graph.ops[i : i + 3], graph, users):
            groups.append(graph.ops[i : i + 3])
            i += 3
        elif (
            allowed
            and i + 1 < len(graph.ops)
            and (
                is_factored_pair(op, graph.ops[i + 1], graph, users)
                or is_pointwise_pair(op, graph.ops[i + 1], graph, users)
                or is_spatial_pair(op, graph.ops[i + 1], graph, users)
            )
        ):
            groups.append([op, graph.ops[i + 1]])
            i += 2
        else:
            groups.append([op])
            i += 1
    return groups


def lower(group: list[Op], ctx: LoweringContext) -> KernelCall:
    """The one kernel call of a fused group from `schedule`."""
    if len(group) == 3:
        return lower_tucker(group, ctx)
    if group[0].opcode == "CONV_2D" and not all(conv.is_pointwise(op) for op in group):
        return lower_spatial(group, ctx)
    return lower_factored_pair(group, ctx)


def lower_spatial(group: list[Op], ctx: LoweringContext) -> KernelCall:
    first, second = group
    n, in_h, in_w, in_c = first.input(0).shape
    _, out_h, out_w, out_c = second.outputs[0].shape
    rank = first.outputs[0].shape[3]
    k_h, _, stride_h, _, dil_h, _, pad_top, _ = conv.geometry(first)
    _, k_w, _, stride_w, _, dil_w, _, pad_left = conv.geometry(second)
    name = ctx.unique_name(f"spatial_{layer_name(second.input(1), f'op{first.index}')}")
    steps = _layer_fields(first, second, ctx, name)
    span = (out_w - 1) * stride_w + k_w  # pixels of the narrow row the 1 x k step reads, from -pad_left
    row_pixels = in_w
    if steps["second_thin"] != "NULL" and dil_w == 1:  # the plain C path's padded row (tr_spatial_pad_row)
        row_pixels = max(in_w + pad_left, span)
    row = ctx.scratch(row_pixels * rank)
    depth = max(k_h * in_c, k_w * rank)
    wide_bytes = fully_connected.wide_scratch_bytes(depth, 2)
    if rank % 4 == 0 and out_c % 4 == 0 and dil_w == 1:  # tr_spatial_across_wide: the widened narrow row
        wide_bytes = max(wide_bytes, 2 * rank * span)
    columns, wide = ctx.scratch(2 * depth), ctx.scratch(wide_bytes)
    geometry = conv.geometry_fields(first, [k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left])
    geometry.update(out_h=out_h, out_w=out_w, out_c=out_c)
    fields: dict[str, FieldValue] = {
        "geometry": geometry,
        "rank": rank,
        "input_zero_point": int(first.input(0).zero_point[0]),
        "narrow_zero_point": int(second.input(0).zero_point[0]),
    }
    fields.update(steps)
    macs = n * out_h * (in_w * k_h * in_c * rank + out_w * k_w * rank * out_c)
    comment = (
        f"spatially factored convolution (rank {rank}) fused: {conv.describe(first)}; then "
        f"{conv.describe(second)}"
    )
    return KernelCall(
        "tr_conv_spatial.c",
        "tr_conv_spatial_int8",
        ctx.params("tr_conv_spatial_params", name, fields),
        [ctx.tensor(first.input(0)), ctx.tensor(second.outputs[0]), row, columns, wide],
        comment,
        macs,
    )


def lower_tucker(chain: list[Op], ctx: LoweringContext) -> KernelCall:
    first, middle, last = chain
    n, in_h, in_w, in_c = first.input(0).shape
    _, out_h, out_w, out_c = last.outputs[0].shape
    rank_in, rank_out = first.outputs[0].shape[3], middle.outputs[0].shape[3]
    window_geometry = conv.geometry(middle)
    k_h, k_w, _, stride_w, dil_h, dil_w, _, pad_left = window_geometry
    name = ctx.unique_name(f"tucker_{layer_name(middle.input(1), f'op{first.index}')}")
    steps: dict[str, FieldValue] = {}
    for key, op in (("reduce", first), ("core", middle), ("expand", last)):
        steps.update(_layer_or_thin(op, ctx, name, key))
    # tr_tucker_wide: the core step thin, both ranks whole words, each kernel row's taps one run
    wide_window = (
        ctx.dsp and steps["core_thin"] != "NULL" and rank_in % 4 == 0 and rank_out % 4 == 0 and dil_w == 1
    )
    window_rows = min((k_h - 1) * dil_h + 1, in_h)
    if wide_window:  # span + 1 rows widened to int16 pairs, with the k x k's side padding
        reach = (out_w - 1) * stride_w + k_w
        window = ctx.scratch(((k_h - 1) * dil_h + 1) * max(reach, pad_left + in_w) * rank_in * 2)
        row = ctx.scratch(max(out_w * rank_out, in_w * rank_in))  # also the reduce step's narrow row
    else:
        window = ctx.scratch(window_rows * in_w * rank_in)
        row = ctx.scratch(out_w * rank_out)
    # the im2col columns; with wide_window also tr_tucker_core_plan (eight words, k_h row pointers)
    columns = ctx.scratch(max(2 * k_h * k_w * rank_in, 4 * (k_h + 8) if wide_window else 0))
    wide = ctx.scratch(fully_connected.wide_scratch_bytes(max(in_c, k_h * k_w * rank_in, rank_out), 2))
    geometry = conv.geometry_fields(first, window_geometry)
    geometry.update(out_h=out_h, out_w=out_w, out_c=out_c)
    fields: dict[str, FieldValue] = {
        "geometry": geometry,
        "rank_in": rank_in,
        "rank_out": rank_out,
        "core_input_zero_point": int(middle.input(0).zero_point[0]),
        "wide_window": int(wide_window),
        **steps,
    }
    macs = n * (
        in_h * in_w * in_c * rank_in + out_h * out_w * (k_h * k_w * rank_in * rank_out + rank_out * out_c)
    )
    comment = (
        f"Tucker-factored convolution (ranks {rank_in}, {rank_out}) fused: {conv.describe(first)}; then "
        f"{conv.describe(middle)}; then {conv.describe(last)}"
    )
    return KernelCall(
        "tr_conv_tucker.c",
        "tr_conv_tucker_int8",
        ctx.params("tr_conv_tucker_params", name, fields),
        [ctx.tensor(first.input(0)), ctx.tensor(last.outputs[0]), window, row, columns, wide],
        comment,
        macs,
    )


def _layer_or_thin(op: Op, ctx: LoweringContext, name: str, key: str) -> dict[str, FieldValue]:
    """`key` (a tr_matmul_layer) and `key`_thin of one step of a fused call: the step as a thin
    int16 stream where it qualifies (fully_connected.thin_fields), else in the matmul layout with
    the thin field NULL."""
    thin = fully_connected.thin_fields(op, ctx, f"{name}_{key}")
    if thin is None:
        return {key: fully_connected.matmul_fields(op, ctx, f"{name}_{key}"), f"{key}_thin": "NULL"}
    return {key: thin[0], f"{key}_thin": thin[1]}


def _layer_fields(first: Op, second: Op, ctx: LoweringContext, name: str) -> dict[str, FieldValue]:
    """`first`, `second` and `first_thin`, `second_thin` of a fused spatial pair (`_layer_or_thin`)."""
    return {**_layer_or_thin(first, ctx, name, "first"), **_layer_or_thin(second, ctx, name, "second")}


def _pair_step(op: Op, ctx: LoweringContext, name: str, key: str, batches: int) -> dict[str, FieldValue]:
    """`key`, `key`_thin and `key`_stream of a layer of a factored pair: a thin stream where the
    layer has one (`_layer_or_thin`); else, in a pair of one row on a DSP target, a layer into more
    than four outputs is stored as a row stream (fully_connected.takes_row_stream: 14 instructions
    per 16 MACs against the matmul layout's 18, the same weight bytes). The thin stream stays
    first: 11 instructions per 16 MACs and less per group (bench_factored on the M4, both layers
    thin against both from the row stream: FC 64-8-64 1.43 against 2.18 instructions per MAC,
    64-16-256 1.07 against 1.64), up to `fully_connected.thin_max_depth` inputs."""
    depth = fully_connected.thin_max_depth(pair=True, dsp=ctx.dsp)
    thin = fully_connected.thin_fields(op, ctx, f"{name}_{key}", depth)
    if thin is not None:
        return {key: thin[0], f"{key}_thin": thin[1], f"{key}_stream": 0}
    stream = fully_connected.takes_row_stream(batches, op.input(1).shape[0], ctx.dsp)
    layer = fully_connected.matmul_fields(op, ctx, f"{name}_{key}", row_stream=stream)
    return {key: layer, f"{key}_thin": "NULL", f"{key}_stream": int(stream)}


def _pair_kernel(fields: dict[str, FieldValue]) -> str:
    """The entry point of a fused pair: the one-row form reads the stream flags (the two-row form
    need not check them: a Cortex-M3 paid 8-12 instructions a call for that); a pair of two thin
    streams runs without the matmul loops, which would otherwise be linked for nothing."""
    if fields["first_stream"] or fields["second_stream"]:
        return "tr_fully_connected_factored_row_int8"
    if fields["first_thin"] != "NULL" and fields["second_thin"] != "NULL":
        return "tr_fully_connected_factored_thin_int8"
    return "tr_fully_connected_factored_int8"


def _pair_wide(ctx: LoweringContext, depth_in: int, rank: int, rows: int) -> str:
    """The `wide` scratch of a fused pair. On a DSP target both layers' rows are widened (or
    prepared) there: room for the deeper one, `rows` rows at a time. The plain C path reads its
    rows in place and needs `wide` only for a copy of a row its outputs overlap, which its plan
    never makes (`inplace.narrow_in_input`): NULL. (Sized as on a DSP target, the 512 bytes of the
    demo MLP's 256-11-128 pair were never read, yet made fusing it grow the Cortex-M3's arena by
    its rank-r vector.) Such a plan's C is for the plain C path only (`LoweringContext.plain_scratch`)."""
    if not ctx.dsp:
        ctx.plain_scratch = True
        return "NULL"
    wide_bytes = max(
        fully_connected.wide_scratch_bytes(depth_in, rows), fully_connected.wide_scratch_bytes(rank, rows)
    )
    return ctx.scratch(wide_bytes)


def lower_factored_pair(group: list[Op], ctx: LoweringContext) -> KernelCall:
    """A FULLY_CONNECTED pair or a pointwise CONV_2D pair: the same matmul over rows (pixels)."""
    first, second = group
    pointwise = first.opcode == "CONV_2D"
    layer = conv if pointwise else fully_connected
    filt1, filt2 = first.input(1), second.input(1)
    rank, depth_out = filt1.shape[0], filt2.shape[0]
    depth_in = filt1.size // rank
    batches = first.input(0).size // depth_in
    rows = min(batches, 2)
    narrow, wide = ctx.scratch(rows * rank), _pair_wide(ctx, depth_in, rank, rows)
    name = ctx.unique_name(f"fc_{layer_name(filt2, f'op{first.index}')}")
    fields: dict[str, FieldValue] = {
        "batches": batches,
        "input_depth": depth_in,
        "rank": rank,
        "output_depth": depth_out,
    }
    for key, op in (("first", first), ("second", second)):
        fields.update(_pair_step(op, ctx, name, key, batches))
    kind = "pointwise CONV_2D" if pointwise else "FULLY_CONNECTED"
    comment = f"factored {kind} pair (rank {rank}): {layer.describe(first)}; then {layer.describe(second)}"
    deep = any(
        fields[f"{key}_thin"] != "NULL" and depth > fully_connected.THIN_MAX_DEPTH
        for key, depth in (("first", depth_in), ("second", rank))
    )
    return KernelCall(
        "tr_fully_connected.c",
        _pair_kernel(fields),
        ctx.params("tr_fc_factored_params", name, fields),
        [ctx.tensor(first.input(0)), ctx.tensor(second.outputs[0]), narrow, wide],
        comment,
        macs=batches * rank * (depth_in + depth_out),
        extra_sources=(fully_connected.THIN_DEEP_SOURCE,) if deep else (),
    )
