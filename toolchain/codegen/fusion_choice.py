"""Which factored layers to fuse: the smaller arena first, then the faster call.

A fused factored layer keeps its narrow tensor out of the arena, but keeps the layer's input and
output alive together. Which plan is smaller depends on the neighbours (a Tucker block that runs
in place is far smaller fused; a DS-CNN's pointwise pairs are larger), and which is faster on
the shape (a DS-CNN's pointwise pairs at rank 14 over 25x5 pixels run 2.4% slower fused than as
two pointwise calls, the int16 thin stream paying per pixel to widen the narrow row; the digits
MLP's FULLY_CONNECTED pairs 28% faster). So each group is decided on its own, greedily in model
order: fused where that makes the arena smaller, or leaves it the same and the cost model of the
core generated for (`COST_BOARDS`: a Cortex-M4 for the DSP path, a Cortex-M3 for the plain C
path, whose kernels and costs differ) predicts the fused call faster than its ops one by one by at
least `MIN_SAVING` of the whole model's instructions.

Fusing is not free in flash: a fused call keeps its narrow layers' weights as int16 thin streams
and links kernels of its own (the FC autoencoder's 128-8-128 bottleneck fused: 6.8 KB more flash for
1,976 fewer of 330,000 instructions, 0.6%). A saving the user would not notice does not pay for that,
nor one smaller than the share of flash its code costs (`flash_share`): a 64-32-10 digits MLP's one
pair fused brought in the thin loops and int16 weights for a small saving, and its firmware grew
from 15.0 KB to 18.0 KB, larger than the uncompressed model's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolchain.codegen import fusion
from toolchain.codegen.graph import Graph
from toolchain.codegen.ops.fully_connected import THIN_DEEP_SOURCE
from toolchain.codegen.shapes import op_shape
from toolchain.errors import TinyrankError

# The cost model asked per path (`generate(dsp=...)`): a Cortex-M4 for the DSP path (the product's
# first board), a Cortex-M3 for the plain C path (a Cortex-M0/M3 target: other kernels, other costs;
# the M4's model prices the demo MLP's 256-11-128 pair apart at 7.6k instructions, a Cortex-M3
# runs it in 19.4k).
COST_BOARDS = {True: "nano33", False: "qemu_m3"}
MIN_SAVING = 0.02  # at the same arena, a fused call must save this share of the model's instructions
# Flash a plan's first thin stream brings in, per path (`dsp`). The DSP path: tr_thin_groups and
# its -128 floor form (1,544 + 1,528 bytes on a Cortex-M4, arm-none-eabi-nm; the partial last group
# runs the same loop). The plain C path's: 1,640 bytes on a Cortex-M3 (qemu_m3 firmware of FC
# 128-32-128, 64-8-64 and 64-16-256, every pair fused against none, less the thin weights' growth;
# arm-none-eabi-size: the pair loop in assembly, 628 bytes, and its C callers); a spatial or Tucker
# chain also links the two-row loop, 576 bytes more, not counted here. And a DSP target's first
# thin layer of more than 128 inputs: the two deep forms (tr_thin_deep.c, 2 x 1,452; the plain path
# has none).
THIN_CODE_BYTES = {True: 3_100, False: 1_650}
THIN_DEEP_CODE_BYTES = 2_900
# A small model's firmware besides its weights (runtime, kernels, benchmark app; 12 KB for a digits
# MLP on a Cortex-M4, 5.5 KB for those FC models on a Cortex-M3, whose plain C kernels are smaller):
# with the weights, the yardstick a fused call's flash growth is a share of.
CODE_BYTES = {True: 12_000, False: 5_500}


def _cost_model(dsp: bool = True) -> Any:
    """The cost model of the path generated for (`COST_BOARDS`), or None where it cannot be read
    (during a `make costmodel` run)."""
    from toolchain.firmware.costmodel import load_cost_model

    try:
        return load_cost_model(COST_BOARDS[dsp])
    except TinyrankError:
        return None


def _predicted(model: Any, item: Any) -> float | None:
    """Instructions of one lowered call, None if its kernel has no fitted entry."""
    if item.call is None:
        return 0.0
    shapes = [op_shape(item.op, item.call), *(op_shape(op) for op in item.fused)]
    instructions, fitted = model.predict_call(item.call.function, shapes)
    return instructions if fitted else None


def predicted_instructions(items: list[Any], dsp: bool = True) -> float:
    """The instructions the cost model of the path (`COST_BOARDS`) predicts for these lowered calls
    (0 where it cannot tell): the yardstick `MIN_SAVING` is a share of, computed once per choice."""
    model = _cost_model(dsp)
    if model is None:
        return 0.0
    return sum(p for p in (_predicted(model, item) for item in items) if p is not None)


def fusing_pays(
    fused_item: Any,
    unfused_items: list[Any],
    model_instructions: float,
    flash_share: float = 0.0,
    dsp: bool = True,
) -> bool:
    """Whether the fused call is predicted faster (by the cost model of the path, `COST_BOARDS`)
    than its ops one by one by at least `MIN_SAVING` of `model_instructions` (the model's,
    unfused), and by no smaller a share than `flash_share`, the share of flash fusing adds; True
    where the cost model cannot tell (fusing never costs arena here, see `choose`)."""
    model = _cost_model(dsp)
    if model is None:
        return True
    fused = _predicted(model, fused_item)
    apart = [_predicted(model, item) for item in unfused_items]
    if fused is None or any(a is None for a in apart):
        return True
    saving = sum(a for a in apart if a is not None) - fused
    return saving >= max(MIN_SAVING, flash_share) * model_instructions


def _calls(plan: Any) -> list[Any]:
    """The kernel calls of a planned model."""
    return [item.call for item in plan.ops if getattr(item, "call", None) is not None]


def _uses_thin(plan: Any) -> bool:
    """Whether any call of a planned model runs a layer from a thin stream (links the thin loops)."""
    fields = [field for call in _calls(plan) for field in call.params.fields.items()]
    return any(key.endswith("_thin") and value != "NULL" for key, value in fields)


def _uses_deep_thin(plan: Any) -> bool:
    """Whether any call of a planned model has a thin layer of more than 128 inputs (links the
    thin loop's deep forms)."""
    return any(THIN_DEEP_SOURCE in call.extra_sources for call in _calls(plan))


def flash_share(before: Any, after: Any, dsp: bool = True) -> float:
    """The share of `before`'s flash (weights and `CODE_BYTES`) that `after`'s code adds:
    `THIN_CODE_BYTES` where it is the first plan to use a thin stream, and `THIN_DEEP_CODE_BYTES`
    where it is the first to use a deep one, else nothing; on the path generated for (`dsp`: a
    Cortex-M3's plain C loops are less than half a Cortex-M4's, so is the rest of its firmware).

    The thin weights' own growth is not counted here: it is the price of the factoring, which
    compress's flash budget sees through the generated model; the loops are a fixed price that a
    small model's saving cannot repay (the digits MLP's first pair saves 18% of its instructions
    for them, a 64-32-10 MLP's one pair far less than the 23% of its flash they cost)."""
    added = 0
    if _uses_thin(after) and not _uses_thin(before):
        added += THIN_CODE_BYTES[dsp]
    if _uses_deep_thin(after) and not _uses_deep_thin(before):
        added += THIN_DEEP_CODE_BYTES
    return added / (before.weights_bytes + CODE_BYTES[dsp])


def choose(graph: Graph, lower_and_plan: Callable[[bool | frozenset[int]], Any], dsp: bool = True) -> Any:
    """The planned model with each factored group fused where that shrinks the arena, or keeps it
    and `fusing_pays` for its instructions and its flash on the path `lower_and_plan` generates for
    (`dsp`); `lower_and_plan(fuse)` lowers and plans the graph."""
    model = lower_and_plan(False)
    apart = {item.op.index: item for item in model.ops}
    whole = predicted_instructions(list(model.ops), dsp)
    chosen: frozenset[int] = frozenset()
    for group in (group for group in fusion.schedule(graph, True) if len(group) > 1):
        first = group[0].index
        trial = lower_and_plan(chosen | {first})
        fused = next(item for item in trial.ops if item.op.index == first)
        ops_apart = [apart[op.index] for op in group]
        if trial.arena_bytes < model.arena_bytes or (
            trial.arena_bytes == model.arena_bytes
            and fusing_pays(fused, ops_apart, whole, flash_share(model, trial, dsp), dsp)
        ):
            model, chosen = trial, chosen | {first}
    return model
