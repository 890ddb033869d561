"""Rendering a lowered model into C files with the Jinja2 templates of `firmware_templates/`.

Rendering returns `{file name: text}`; writing is the caller's job, so a failure here
leaves the output folder untouched. `model.c` includes the header of each kernel family it
calls (`tr_<family>.h`, which declares the functions and the parameter struct) and fills
each call's struct as a `static const` next to the call. The kernel sources used are
copied with every `tr_*.h` header they include (directly or through another header), and
nothing else, so the output folder builds on its own and holds only what the model needs.
Every value a template prints passes through `toolchain.ctext.c_safe`, so a name from a model
file cannot end a comment or start a preprocessor line; lines tinyrank composes itself (comments
of already-sanitized text, parameter structs) are marked `CCode`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from toolchain.codegen.generator import LoweredModel
from toolchain.codegen.graph import Tensor
from toolchain.codegen.lowering import FieldValue, ParamStruct, c_type, shape_text, tensor_macro
from toolchain.ctext import CCode, c_safe
from toolchain.errors import TinyrankError

TEMPLATES = Path(__file__).resolve().parents[2] / "firmware_templates"
KERNELS = TEMPLATES / "kernels"
PLATFORM_HEADER = "tr_platform.h"  # model_weights.c's TR_ALIGNED
_LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"(tr_\w+\.h)"', re.M)
_VALUES_PER_LINE = 16
_LINE_LENGTH = 110


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


def c_comment(text: str) -> CCode:
    """Text safe inside a C block comment on one line (a tensor name may hold '*/' or a newline):
    whitespace runs become one space, then `c_safe` neutralises the rest, once."""
    return CCode(c_safe(" ".join(text.split())))


def comment_lines(text: str, indent: str = "    ") -> list[str]:
    """A block comment of `text` wrapped to the line length: `/* ... */` on one line if it fits."""
    text = c_comment(text)
    if len(indent) + len(text) + 6 <= _LINE_LENGTH:
        return [CCode(f"{indent}/* {text} */")]
    wrapped = textwrap.wrap(text, _LINE_LENGTH - len(indent) - 3, break_long_words=False)
    lines = [f"{indent}/* {wrapped[0]}", *(f"{indent} * {line}" for line in wrapped[1:]), f"{indent} */"]
    return [CCode(line) for line in lines]


def _packable(value: FieldValue) -> bool:
    """Numbers and NULL share a line; an array name or a nested struct gets its own."""
    return isinstance(value, int) or value == "NULL" or isinstance(value, list)


def _field_lines(fields: Mapping[str, FieldValue], indent: str) -> list[str]:
    """`.name = value,` lines of a struct initializer: short fields packed up to the line length,
    a nested struct inline if it fits, else on lines of its own one level deeper."""
    lines: list[str] = []
    packed = ""
    for key, value in fields.items():
        if isinstance(value, dict):
            inline = ", ".join(f".{k} = {_value_text(v)}" for k, v in value.items())
            item = f".{key} = {{ {inline} }},"
            if any(isinstance(v, dict) for v in value.values()) or len(indent) + len(item) > _LINE_LENGTH:
                lines += [*([indent + packed] if packed else []), f"{indent}.{key} = {{"]
                lines += _field_lines(value, indent + "    ")
                lines.append(f"{indent}}},")
                packed = ""
                continue
        else:
            item = f".{key} = {_value_text(value)},"
        if _packable(value) and packed and len(indent) + len(packed) + 1 + len(item) <= _LINE_LENGTH:
            packed = f"{packed} {item}"
            continue
        if packed:
            lines.append(indent + packed)
        packed = item if _packable(value) else ""
        if not _packable(value):
            lines.append(indent + item)
    if packed:
        lines.append(indent + packed)
    return lines


def _value_text(value: FieldValue) -> str:
    if isinstance(value, list):
        return "{ " + ", ".join(str(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + ", ".join(f".{k} = {_value_text(v)}" for k, v in value.items()) + " }"
    return str(value)


def struct_lines(params: ParamStruct, indent: str = "    ") -> list[str]:
    """`static const tr_fc_params fc_dense_1 = { ... };` as lines of C."""
    lines = [
        f"{indent}static const {params.ctype} {params.name} = {{",
        *_field_lines(params.fields, indent + "    "),
        f"{indent}}};",
    ]
    return [CCode(line) for line in lines]  # identifiers and numbers made by tinyrank


def _edge(t: Tensor, float_edges: set[int]) -> dict:
    return {
        "name": t.name,
        "comment_name": c_comment(t.name),
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
                "comment": c_comment(f"tensor {index} '{t.name}' {shape_text(t)}"),
            }
        )
    calls = [item.call for item in model.ops if item.call is not None]
    kernels = sorted({source for call in calls for source in (call.source, *call.extra_sources)})
    ops = []
    for position, item in enumerate(model.ops):
        names = "+".join(op.opcode for op in [item.op, *item.fused])
        entry = {"position": position, "index": item.op.index, "opcodes": names, "call": item.call}
        if item.call is not None:
            entry["comment"] = comment_lines(item.call.comment)
            entry["struct"] = struct_lines(item.call.params)
        ops.append(entry)
    return {
        "prefix": model.prefix,
        "PREFIX": model.prefix.upper(),
        "tflite": c_comment(graph.path.name),
        "sha256": graph.sha256,
        "hash32": f"0x{graph.hash32:08x}u",
        "inputs": [_edge(t, model.float_edges) for t in graph.inputs],
        "outputs": [_edge(t, model.float_edges) for t in graph.outputs],
        "arena_bytes": max(model.arena_bytes, 16),
        "tensors": tensors,
        "scratches": ctx.scratches,
        "family_headers": sorted({call.header for call in calls}),
        "ops": ops,
        "constants": [
            {
                "name": c.name,
                "ctype": c.ctype,
                "size": c.values.size,
                "rows": _rows(c.values),
                "about": c_comment(c.about),
            }
            for c in ctx.constants
        ],
        "kernels": kernels,
        "plain_scratch": ctx.plain_scratch,
    }


def render(model: LoweredModel) -> dict[str, str]:
    """{file name: content} of the generated model: model.h, model.c, model_weights.c and kernels."""
    env = _environment()
    values = template_values(model)
    files = {
        name: env.get_template(f"{name}.j2").render(**values)
        for name in ("model.h", "model.c", "model_weights.c")
    }
    headers = sorted({PLATFORM_HEADER, *values["family_headers"], *kernel_headers(values["kernels"])})
    for source in [*headers, *values["kernels"]]:
        files[source] = (KERNELS / source).read_text()
    return files
