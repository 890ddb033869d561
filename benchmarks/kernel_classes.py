"""Kernel classes and their per-MAC targets on the Cortex-M4, for the codegen benchmark.

Every op of a benchmark model falls in one class by its TFLite opcode and shapes (a 3x3
depthwise convolution with multiplier 1, a first convolution over 1-3 channels, a 64x64+
pointwise convolution ...); the benchmark adds up instructions, estimated cycles and MACs
per class across the models and sets them against the targets below (instructions per MAC).
"""

from __future__ import annotations

from typing import Any

# Instructions per MAC a class may cost on the Cortex-M4 (DSP path); None: no target.
TARGETS: dict[str, float | None] = {
    "depthwise 3x3, multiplier 1": 2.5,
    "depthwise, other": 3.0,
    "conv 3x3, >= 8 input channels": 1.5,
    "conv, first layer (1-3 input channels)": 2.0,
    "pointwise conv, 64x64 and above": 1.3,
    "fully connected, 64x64 and above": 1.3,
    "fully connected, 16x16": 3.0,
    "pointwise conv, smaller": None,
    "fully connected, other": None,
    "conv, other": None,
    "fused factored layers": None,
    "other ops": None,
}


def op_class(opcode: str, graph_ops: list[Any]) -> str:
    """The class of one generated kernel call from the TFLite ops it computes."""
    if len(graph_ops) > 1 and opcode in ("FULLY_CONNECTED", "CONV_2D"):
        return "fused factored layers"
    op = graph_ops[0]
    if opcode == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = op.inputs[1].shape
        multiplier = op.options.get("depth_multiplier", 1)
        return "depthwise 3x3, multiplier 1" if (kh, kw) == (3, 3) and multiplier == 1 else "depthwise, other"
    if opcode == "CONV_2D":
        out_c, kh, kw, in_c = op.inputs[1].shape
        if (kh, kw) == (1, 1):
            return "pointwise conv, 64x64 and above" if min(in_c, out_c) >= 64 else "pointwise conv, smaller"
        if in_c <= 3:
            return "conv, first layer (1-3 input channels)"
        return "conv 3x3, >= 8 input channels" if (kh, kw) == (3, 3) and in_c >= 8 else "conv, other"
    if opcode == "FULLY_CONNECTED":
        out_c, in_c = op.inputs[1].shape
        if min(in_c, out_c) >= 64:
            return "fully connected, 64x64 and above"
        return "fully connected, 16x16" if (in_c, out_c) == (16, 16) else "fully connected, other"
    return "other ops"


def add_up(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{class: instructions, estimated cycles, MACs, per-MAC figures, target, met} over rows of
    {"class", "instructions", "estimated_cycles", "macs"}."""
    classes: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = classes.setdefault(
            row["class"], {"instructions": 0, "estimated_cycles": 0, "macs": 0, "ops": 0}
        )
        entry["ops"] += 1
        for key in ("instructions", "estimated_cycles", "macs"):
            entry[key] += row[key]
    for name, entry in classes.items():
        macs = entry["macs"]
        entry["instructions_per_mac"] = round(entry["instructions"] / macs, 2) if macs else None
        entry["estimated_cycles_per_mac"] = round(entry["estimated_cycles"] / macs, 2) if macs else None
        entry["target_instructions_per_mac"] = TARGETS.get(name)
        target = TARGETS.get(name)
        entry["met"] = None if target is None or not macs else entry["instructions_per_mac"] <= target
    return classes
