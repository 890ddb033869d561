"""The rank search against a board: flash, RAM and latency together, from the device's costs.

`plan_on_device` predicts the original model on the board once (its generated C through the
firmware budget model and the core's cost model), gives every candidate its device cost
vector, drops candidates that would be slower or bigger than the layer kept whole, and picks
per layer the method, the rank or the whole layer with the least output error that fits
every limit at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toolchain.compress import budget as budget_search
from toolchain.compress import costs
from toolchain.compress.layers import Factorization, LayerInfo, factorize, method_for


@dataclass
class DevicePlanState:
    """What one compression computes once and reuses across --pareto points."""

    baseline: costs.DeviceBaseline
    device: costs.DeviceCosts
    table: dict[str, list[Any]]
    notes: dict[str, str]


def prepare(folded: Any, infos: list[LayerInfo], method: str, x_calib: np.ndarray, board: Any, seed: int):
    """The baseline, the cost model and the candidate table with device costs."""
    from toolchain.firmware.boards import load_board

    board = load_board(board)
    baseline = costs.device_baseline(folded, x_calib, board)
    device = costs.device_costs(board)
    factorable = [i for i in infos if i.kind is not None and (method == "auto" or method_for(i, method))]
    table = budget_search.candidate_table(
        folded, factorable, budget_search.layer_methods(factorable, method), x_calib, seed=seed
    )
    notes = costs.add_device_costs(table, {i.name: i for i in factorable}, device)
    return DevicePlanState(baseline, device, table, notes)


def plan_on_device(
    state: DevicePlanState,
    infos: list[LayerInfo],
    method: str,
    before: dict[str, int],
    seed: int,
    *,
    target_params: float | None = None,
    target_macs: float | None = None,
    target_latency: float | None = None,
    max_latency_ms: float | None = None,
) -> tuple[dict[str, Factorization | str], dict[str, Any]]:
    """Per layer a Factorization or why it stays whole, and the budget part of the report."""
    table = state.table
    kept = {name: _keep(cands) for name, cands in table.items()}
    latency, asked = costs.latency_instructions(state.baseline, target_latency, max_latency_ms)
    limits, fixed = costs.board_limits(
        state.baseline,
        {n: {k: c.cost(k) for k in ("flash_bytes", "instructions")} for n, c in kept.items()},
        latency,
    )
    others = [i for i in infos if i.name not in table]
    for kind, fraction in (("params", target_params), ("macs", target_macs)):
        if fraction is not None:
            limits[kind] = fraction * before[kind]
            fixed[kind] = float(sum(budget_search.layer_cost(i, kind) for i in others))
    choice = costs.select_within(table, limits, fixed)
    plan: dict[str, Factorization | str] = {}
    layer_costs = {name: _device_row(kept[name], cand) for name, cand in choice.items()}
    for info in infos:
        cand = choice.get(info.name)
        if cand is None:
            plan[info.name] = info.reason or f"method {method} does not apply to this layer"
        elif cand.method is None:
            plan[info.name] = state.notes.get(info.name, "kept whole: the search found it worth its cost")
        else:
            result = factorize(info, cand.method, cand.ranks, seed)
            result.extra["output_error"] = cand.error
            plan[info.name] = result
    return plan, {**_report(state, limits, fixed, choice, asked), "layer_costs": layer_costs}


def _keep(candidates: list[Any]) -> Any:
    return next(c for c in candidates if c.method is None)


def _device_row(keep: Any, cand: Any) -> dict[str, Any]:
    return {
        "instructions_before": round(keep.instructions),
        "instructions_after": round(cand.instructions),
        "flash_bytes_before": int(keep.flash_bytes),
        "flash_bytes_after": int(cand.flash_bytes),
    }


def _report(state: DevicePlanState, limits, fixed, choice, asked) -> dict[str, Any]:
    """The budget as asked and as predicted for the chosen model."""
    from toolchain.firmware.costmodel import latency_unit, to_board_units

    board = state.baseline.board
    predicted = {k: fixed.get(k, 0.0) + sum(c.cost(k) for c in choice.values()) for k in limits}
    instructions = state.baseline.instructions - sum(
        _keep(state.table[n]).instructions - c.instructions for n, c in choice.items()
    )
    return {
        "board": board.id,
        "core": state.device.cost_model.core,
        "latency_unit": latency_unit(board),
        **asked,
        "limits": {k: round(v) for k, v in limits.items()},
        "predicted": {k: round(v) for k, v in predicted.items() if k != "ram_bytes"},
        "original_instructions": round(state.baseline.instructions),
        "predicted_instructions": round(instructions),
        "predicted_latency": round(to_board_units(instructions, board)),
        "original_flash_bytes": state.baseline.usage["flash_bytes"],
        "original_ram_bytes": state.baseline.usage["ram_bytes"],
        "flash_limit": state.baseline.usage["flash_limit"],
        "ram_limit": state.baseline.usage["ram_limit"],
    }


def point_costs(state: DevicePlanState, plan: dict[str, Any], budget: dict[str, Any]) -> dict[str, Any]:
    """Predicted instructions, flash and RAM of one planned model, and whether it fits the budget."""
    instructions = state.baseline.instructions
    flash = float(state.baseline.usage["flash_bytes"])
    ram_peak = 0.0
    for name, cands in state.table.items():
        keep = _keep(cands)
        entry = plan.get(name)
        chosen = keep
        if isinstance(entry, Factorization):
            chosen = next((c for c in cands if (c.method, c.ranks) == (entry.method, entry.ranks)), keep)
        instructions -= keep.instructions - chosen.instructions
        flash -= keep.flash_bytes - chosen.flash_bytes
        ram_peak = max(ram_peak, chosen.ram_bytes)
    limits = budget.get("limits", {})
    fits = flash <= budget["flash_limit"] and ram_peak <= limits.get("ram_bytes", float("inf"))
    if "instructions" in limits:
        fits = fits and instructions <= limits["instructions"]
    return {
        "predicted_instructions": round(instructions),
        "flash_bytes": round(flash),
        "fits": bool(fits),
    }
