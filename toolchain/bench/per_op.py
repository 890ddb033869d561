"""Where an inference's time goes: one row per op with its count, the cost model's prediction
beside it, and cycles estimated from a traced run (QEMU counts instructions, not cycles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import TinyrankError


def per_op_rows(op_counts: list[int], info: dict) -> list[dict[str, Any]]:
    """One row per op of model_info.json with its count and share of the total."""
    ops = info.get("ops", [])
    total = sum(op_counts) or 1
    rows = []
    for i, count in enumerate(op_counts):
        op = ops[i] if i < len(ops) else {}
        rows.append(
            {
                "index": i,
                "opcode": op.get("opcode", "?"),
                "kernel": op.get("kernel"),
                "macs": op.get("macs", 0),
                "count": count,
                "share": round(count / total, 4),
            }
        )
    return rows


def add_predictions(rows: list[dict[str, Any]], info: dict, board: Any) -> dict[str, Any] | None:
    """Put the cost model's prediction beside each op's measured count; returns the model's
    totals (None when this board's core has no cost model or the C predates op shapes)."""
    from toolchain.firmware.costmodel import load_cost_model

    try:
        model = load_cost_model(board)
        predicted = model.predict_ops(info)
    except TinyrankError:
        return None
    ops = info.get("ops", [])
    unpredicted: list[int] = []
    total, measured = 0.0, 0
    for row, value, op in zip(rows, predicted, ops, strict=False):
        if not model.predicts(op.get("kernel"), op["shapes"]):
            unpredicted.append(row["index"])  # no row["predicted"]: the table shows "-"
            continue
        row["predicted"] = int(round(value))
        row["prediction_error"] = round((value - row["count"]) / row["count"], 4) if row["count"] else None
        total += value
        measured += row["count"]
    return {
        "core": model.core,
        "borrowed_from": model.borrowed_from,
        "predicted": int(round(total)),
        "measured": measured,
        "error": round((total - measured) / measured, 4) if measured else None,
        "unpredicted_ops": unpredicted,  # ops the cost model has no prediction for (not in the totals)
    }


def add_cycle_estimate(
    report: dict[str, Any], board: Any, elf: Path, info: dict, samples: np.ndarray | None
) -> None:
    """Trace one inference in QEMU and add estimated cycles to the report and to its per-op rows."""
    from toolchain.bench import cycles

    if samples is not None and len(samples):
        first = samples[0].tobytes()
    else:
        first = np.full(int(info["inputs"][0]["size"]), info["inputs"][0]["zero_point"], np.int8).tobytes()
    inputs = [first] + [bytes(int(edge["size"])) for edge in info["inputs"][1:]]
    functions = cycles.model_functions(elf)
    estimate = cycles.trace_one_inference(board, elf, inputs)
    section = cycles.summary(estimate, report["latency"]["median"], functions)
    report["cycle_estimate"] = section
    kernel_of = {name: stem for stem, names in functions.items() for name in names}
    for row in report.get("per_op", []):
        cpi = section["kernel_cpi"].get(kernel_of.get(str(row.get("kernel")), ""), estimate.cpi)
        row["estimated_cycles"] = int(round(row["count"] * cpi))
