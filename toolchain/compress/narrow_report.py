"""The report of a narrowed model (`--method narrow`), and how `--method auto` weighs it against the
factored one: apart from pipeline.py, which runs the order of work, so that each stays readable."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.compress.graph import call_count
from toolchain.compress.layers import describe_layer
from toolchain.compress.narrow import narrow_model


def narrowed(model: Any, folded: Any, target_params: float, seed: int) -> tuple[Any, dict]:
    """`--method narrow`: the narrower model of the budget (`narrow.narrow_model`) and its report,
    with the keys and per-layer rows a factored model's report has."""
    from toolchain.compress.pipeline import model_cost  # pipeline imports this module

    before = model_cost(model)
    small, widths = narrow_model(folded, int(target_params * before["params"]), seed)
    after = model_cost(small)
    rows = []
    for row in widths:
        old, new = _layer_cost(folded, row["name"]), _layer_cost(small, row["name"])
        changed = row["width_after"] < row["width_before"] or old != new
        rows.append(
            {
                "name": row["name"],
                "status": "narrowed" if changed else "kept",
                "method": "narrow" if changed else None,
                "ranks": [],
                "params_before": old[0],
                "params_after": new[0],
                "macs_before": old[1],
                "macs_after": new[1],
                "rel_error": row["rel_error"],
                "width_before": row["width_before"],
                "width_after": row["width_after"],
                "reason": f"{row['width_before']} -> {row['width_after']} units",
            }
        )
    report = {
        "stage": "compress",
        "model": model.name,
        "method": "narrow",
        "rank_selection": "budget",
        "energy": None,
        "budget": {"target_params": target_params},
        "layers": rows,
        **{key: {"before": before[key], "after": after[key]} for key in before},
        "params_ratio": before["params"] / max(after["params"], 1),
        "new_layers": [layer.name for layer in small.layers],
    }
    return small, report


def held_out_better(one: dict, other: dict) -> bool:
    """Whether `one` ended fine-tuning at a lower held-out loss than `other` (the loss that
    `finetune` judges a fine-tune by: cross-entropy against the labels, scored as int8)."""
    return float(one["finetune"].get("end_loss", np.inf)) < float(other["finetune"].get("end_loss", np.inf))


def comparison(report: dict) -> dict:
    """What the report of the compression not chosen says about it."""
    metric = report.get("metric", "accuracy")
    return {
        "method": report["method"],
        "held_out_loss": report["finetune"].get("end_loss"),
        "params": report["params"]["after"],
        metric: report.get(metric, {}).get("finetuned"),
    }


def chosen_over(chosen: dict, other: dict) -> dict:
    """`--method auto` with a parameter budget compares the factored model with the narrowed one
    after fine-tuning and keeps the lower held-out loss: where the budget leaves bottleneck ranks,
    fewer whole units keep more (narrow.py). The baseline, trained once, moves to the winner."""
    for key in ("baseline", "search"):
        if key in other:
            chosen[key] = other[key]
    metric = other.get("metric")
    if metric and "baseline" in other.get(metric, {}):
        chosen[metric]["baseline"] = other[metric]["baseline"]
    chosen["compared_with"] = comparison(other)
    return chosen


def _layer_cost(model: Any, name: str) -> tuple[int, int]:
    """(parameters, MACs) of one layer."""
    layer = model.get_layer(name)
    info = describe_layer(model.layers.index(layer), layer, call_count(model, layer))
    return int(info.params), int(info.macs)
