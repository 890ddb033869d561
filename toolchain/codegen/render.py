"""Rendering a lowered model into C files with the Jinja2 templates of `firmware_templates/`.

Rendering returns `{file name: text}`; writing is the caller's job, so a failure here
leaves the output folder untouched. The kernel sources used are copied with every
`tr_*.h` header they include (directly or through another header), so kernels can share
code through headers and the output folder still builds on its own.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from toolchain.codegen.generator import LoweredModel
from toolchain.codegen.graph import Tensor
from toolchain.codegen.lowering import c_type, shape_text, tensor_macro
from toolchain.ctext import CCode, c_safe
from toolchain.errors import TinyrankError

TEMPLATES = Path(__file__).resolve().parents[2] / "firmware_templates"
KERNELS = TEMPLATES / "kernels"
COMMON_HEADER = "tr_common.h"
_PROTOTYPE = re.compile(r"TR_KERNEL\s+([^;{}]*?\))\s*\{", re.S)
_LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"(tr_\w+\.h)"', re.M)
_VALUES_PER_LINE = 16


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=c_safe,
    )


def kernel_prototypes(source: str) -> dict[str, str]:
    """{function name: one-line prototype} of the TR_KERNEL functions of a kernel file."""
    text = (KERNELS / source).read_text()
    found = {}
    for match in _PROTOTYPE.finditer(text):
        proto = " ".join(match.group(1).split())
        name = re.search(r"(\w+)\s*\(", proto).group(1)
        found[name] = proto
    return found


def kernel_headers(sources: list[str]) -> list[str]:
    """The `tr_*.h` headers that the kernel files include, directly or through another header, sorted."""
    found: set[str] = set()
    pending = list(sources)
    while pending:
        name = pending.pop()
        path = KERNELS / name
        if not path.is_file():
            raise TinyrankError(
                f"kernel file {path}: not found (included by a kernel or named by an op lowering)"
            )
        for header in _LOCAL_INCLUDE.findall(path.read_text()):
            if header not in found:
                found.add(header)
                pending.append(header)
    return sorted(found)


def _c_float(value: float) -> str:
    text = f"{float(np.float32(value)):.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _rows(values: np.ndarray) -> list[str]:
    if values.dtype == np.float32:
        items = [_c_float(v) for v in values.tolist()]
    else:
        items = [str(v) for v in values.tolist()]
    return [", ".join(items[i : i + _VALUES_PER_LINE]) for i in range(0, len(items), _VALUES_PER_LINE)]


def _edge(t: Tensor, float_edges: set[int]) -> dict:
    return {
        "name": t.name,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "scale": float(t.scale[0]),
        "zero_point": int(t.zero_point[0]),
        "size": t.size,
        "scale_c": _c_float(t.scale[0]),
        "macro": tensor_macro(t),
        "tflite_dtype": "float32" if t.index in float_edges else t.dtype,
    }


def template_values(model: LoweredModel) -> dict:
    """Everything the three templates need, as plain values."""
    graph, ctx = model.graph, model.ctx
    arena_tensors = {t.index: t for t in graph.inputs + graph.outputs}
    arena_tensors.update(ctx.used_tensors)
    tensors = []
    for index in sorted(arena_tensors):
        t = arena_tensors[index]
        tensors.append(
            {
                "macro": tensor_macro(t),
                "ctype": c_type(t),
                "offset": model.offsets[index],
                "nbytes": t.nbytes,
                "comment": f"tensor {index} '{t.name}' {shape_text(t)}",
            }
        )
    kernels = sorted({item.call.source for item in model.ops if item.call is not None})
    used = {item.call.function for item in model.ops if item.call is not None}
    prototypes = []
    for source in kernels:
        prototypes += [CCode(p) for name, p in kernel_prototypes(source).items() if name in used]
    ops = []
    for position, item in enumerate(model.ops):
        names = "+".join(op.opcode for op in [item.op, *item.fused])
        ops.append({"position": position, "index": item.op.index, "opcodes": names, "call": item.call})
    return {
        "prefix": model.prefix,
        "PREFIX": model.prefix.upper(),
        "tflite": graph.path.name,
        "sha256": graph.sha256,
        "hash32": f"0x{graph.hash32:08x}u",
        "inputs": [_edge(t, model.float_edges) for t in graph.inputs],
        "outputs": [_edge(t, model.float_edges) for t in graph.outputs],
        "arena_bytes": max(model.arena_bytes, 16),
        "tensors": tensors,
        "scratches": ctx.scratches,
        "prototypes": prototypes,
        "ops": ops,
        "constants": [
            {"name": c.name, "ctype": c.ctype, "size": c.values.size, "rows": _rows(c.values)}
            for c in ctx.constants
        ],
        "kernels": kernels,
    }


def render(model: LoweredModel) -> dict[str, str]:
    """{file name: content} of the generated model: model.h, model.c, model_weights.c and kernels."""
    env = _environment()
    values = template_values(model)
    files = {
        name: env.get_template(f"{name}.j2").render(**values)
        for name in ("model.h", "model.c", "model_weights.c")
    }
    headers = sorted({COMMON_HEADER, *kernel_headers(values["kernels"])})
    for source in [*headers, *values["kernels"]]:
        files[source] = (KERNELS / source).read_text()
    return files
