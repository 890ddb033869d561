"""The tensor, constant and scratch tables of `model_info.json`.

`model_info.json` is the whole contract between codegen and the stages after it: the budget,
the build and the benchmark read it instead of the generated C or the `.tflite`. These
tables say where every byte of the model lives: each tensor of the graph (in the arena,
a constant, or nowhere because a fused call or a dropped float edge keeps it internal),
each const array of `model_weights.c` with its C name and size, and each scratch buffer.
The schema is in ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Any

from toolchain.codegen.generator import LoweredModel
from toolchain.codegen.graph import Tensor
from toolchain.codegen.lowering import c_type, tensor_macro


def _quantization(t: Tensor) -> dict[str, Any] | None:
    if t.scale.size == 0:
        return None
    return {
        "scale": [float(s) for s in t.scale],
        "zero_point": [int(z) for z in t.zero_point],
        "quantized_dimension": t.quantized_dimension,
    }


def tensor_entries(model: LoweredModel) -> list[dict[str, Any]]:
    """Every tensor of the graph with its storage: "arena" (with its offset), "constant" or "none"."""
    used = model.ctx.used_tensors
    entries = []
    for t in model.graph.tensors:
        in_arena = t.index in model.offsets
        entry: dict[str, Any] = {
            "index": t.index,
            "name": t.name,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "quantization": _quantization(t),
            "bytes": t.nbytes,
            "storage": "arena" if in_arena else "constant" if t.is_constant else "none",
            "arena_offset": model.offsets[t.index] if in_arena else None,
            "c_name": tensor_macro(t) if in_arena and (t.index in used or _is_edge(model, t)) else None,
            "c_type": c_type(t),
        }
        entries.append(entry)
    return entries


def _is_edge(model: LoweredModel, t: Tensor) -> bool:
    return any(e.index == t.index for e in [*model.graph.inputs, *model.graph.outputs])


def constant_entries(model: LoweredModel) -> list[dict[str, Any]]:
    """Every const array of `model_weights.c`: C name, C element type, element count and bytes."""
    return [
        {"c_name": c.name, "c_type": c.ctype, "count": int(c.values.size), "bytes": c.nbytes}
        for c in model.ctx.constants
    ]


def scratch_entries(model: LoweredModel) -> list[dict[str, Any]]:
    """Temporary arena buffers, each alive during one op (the op's graph index)."""
    return [
        {"c_name": s.name, "op_index": s.op_index, "bytes": s.nbytes, "arena_offset": s.offset}
        for s in model.ctx.scratches
    ]
