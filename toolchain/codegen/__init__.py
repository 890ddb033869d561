"""Stage 3: int8 `.tflite` -> standalone C (see README.md in this folder).

`generate(tflite_path, out_dir, prefix="tr")` writes model.h, model.c, model_weights.c,
the kernel sources used and model_info.json, and returns model_info as a dict.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,15}")


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise TinyrankError(
            f"--prefix {prefix!r}: must be a lower-case C identifier of 1..16 characters (e.g. 'kws')"
        )
    return prefix


def model_info(model: Any, tflm_arena: int | None) -> dict[str, Any]:
    """The model_info.json contract of ARCHITECTURE.md."""
    from toolchain.codegen.info import constant_entries, scratch_entries, tensor_entries
    from toolchain.codegen.render import template_values
    from toolchain.codegen.shapes import op_shape

    values = template_values(model)
    keys = ("name", "shape", "dtype", "scale", "zero_point", "size", "tflite_dtype")
    edges = lambda items: [{k: t[k] for k in keys} for t in items]  # noqa: E731
    ops = []
    for item in model.ops:
        call = item.call
        ops.append(
            {
                "index": item.op.index,
                "opcode": "+".join(op.opcode for op in [item.op, *item.fused]),
                "graph_ops": [op.index for op in [item.op, *item.fused]],
                "kernel": call.function if call else None,
                "macs": call.macs if call else 0,
                "shapes": [op_shape(item.op, call), *(op_shape(op) for op in item.fused)],
                "comment": call.comment if call else "memory alias",
            }
        )
    return {
        "prefix": model.prefix,
        "tflite": model.graph.path.name,
        "tflite_path": str(model.graph.path.resolve()),
        "model_sha256": model.graph.sha256,
        "model_hash32": model.graph.hash32,
        "inputs": edges(values["inputs"]),
        "outputs": edges(values["outputs"]),
        "arena_bytes": values["arena_bytes"],
        "tflm_arena_bytes": tflm_arena,
        "weights_bytes": model.weights_bytes,
        "macs": sum(op["macs"] for op in ops),
        "ops": ops,
        "kernels": values["kernels"],
        "tensors": tensor_entries(model),
        "constants": constant_entries(model),
        "scratch": scratch_entries(model),
    }


def generate(
    tflite_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    prefix: str = "tr",
    *,
    tflm_arena: bool = True,
    fuse: bool | None = None,
    dsp: bool = True,
) -> dict[str, Any]:
    """Compile a full-int8 `.tflite` into C in `out_dir`; returns model_info (also written as JSON).

    Everything is checked, lowered and rendered in memory first, so an unsupported model
    writes nothing. `tflm_arena=False` skips asking TFLite Micro for its arena size; `fuse`
    forces fused factored layers on or off (default: whichever needs the smaller arena).
    `dsp` says the target has the DSP extension (Cortex-M4/M7/M33; a board's `has_dsp`): one-row
    FULLY_CONNECTED layers are then stored for tr_fully_connected_row_int8, whose plain C form
    keeps the C correct anywhere, but a Cortex-M0/M3 runs the plain layout faster (dsp=False).
    """
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse
    from toolchain.codegen.render import render
    from toolchain.fileio import atomic_write_text, check_distinct, to_json

    check_prefix(prefix)
    graph = parse(tflite_path)
    model = lower_graph(graph, prefix, fuse, dsp=dsp)
    files = render(model)
    arena = None
    if tflm_arena:
        from toolchain.oracle import arena_usage

        try:
            arena = arena_usage(graph.path).total
        except TinyrankError:
            arena = None
    info = model_info(model, arena)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TinyrankError(f"--out {out}: exists and is not a folder")
    for name in [*files, "model_info.json"]:
        check_distinct(tflite_path, out / name)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    atomic_write_text(out / "model_info.json", to_json(info))
    return info
