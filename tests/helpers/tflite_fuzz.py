"""Mutating `.tflite` files the way a corrupt download or an attacker would, for the fuzz tests.

Most mutations edit one field of a well-formed model in place (a dimension, a scale, a zero
point, a tensor index, a type, an option, weight bytes), so the file still parses and the
hostile value reaches the validation pass and the lowering behind it; the rest flip raw
bytes to exercise the flatbuffer reader itself. Everything is driven by one
`random.Random`, so a seed reproduces a mutant exactly.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from toolchain.codegen.generator import lower_graph
from toolchain.codegen.graph import parse_bytes
from toolchain.codegen.render import render
from toolchain.errors import TinyrankError

SEEDS = Path(__file__).resolve().parents[1] / "fuzz" / "seeds"
CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"

DIMENSIONS = (-(2**31), -1, 0, 1, 2, 3, 5, 64, 4096, 2**20, 2**31 - 1)
SCALES = (0.0, -1.0, float("nan"), float("inf"), 1e-45, 1e-30, 1e-9, 0.5, 3.0, 1e9, 1e30, 3.4e38)
ZERO_POINTS = (-(2**63), -(2**31), -129, -128, -1, 0, 1, 127, 128, 255, 2**40)
OPTION_VALUES = (-(2**31), -1, 0, 1, 2, 3, 7, 255, 2**16, 2**31 - 1)


def _model(data: bytearray):
    import tflite

    model = tflite.Model.GetRootAs(data, 0)
    return model, model.Subgraphs(0)


def _write_scalar(table, slot: int, fmt: str, value) -> bool:
    """Overwrite a scalar field of a flatbuffer table in place; False if the field is absent."""
    offset = table._tab.Offset(slot)
    if not offset:
        return False
    struct.pack_into(fmt, table._tab.Bytes, table._tab.Pos + offset, value)
    return True


def _vector(array) -> np.ndarray | None:
    """A writable view of a flatbuffer vector (None when the vector is absent or empty)."""
    return array if isinstance(array, np.ndarray) and array.size else None


def mutate_shape(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    shape = _vector(sub.Tensors(rng.randrange(sub.TensorsLength())).ShapeAsNumpy())
    if shape is not None:
        shape[rng.randrange(shape.size)] = rng.choice(DIMENSIONS)


def mutate_scale(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    q = sub.Tensors(rng.randrange(sub.TensorsLength())).Quantization()
    scales = _vector(q.ScaleAsNumpy()) if q is not None else None
    if scales is not None:
        scales[rng.randrange(scales.size)] = rng.choice(SCALES)


def mutate_zero_point(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    q = sub.Tensors(rng.randrange(sub.TensorsLength())).Quantization()
    points = _vector(q.ZeroPointAsNumpy()) if q is not None else None
    if points is not None:
        points[rng.randrange(points.size)] = rng.choice(ZERO_POINTS)


def mutate_quantized_dimension(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    q = sub.Tensors(rng.randrange(sub.TensorsLength())).Quantization()
    if q is not None:
        _write_scalar(q, 16, "<i", rng.choice((-1, 0, 1, 2, 3, 9)))


def mutate_tensor_type(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    _write_scalar(sub.Tensors(rng.randrange(sub.TensorsLength())), 6, "<b", rng.randrange(-1, 20))


def mutate_tensor_buffer(data: bytearray, rng: random.Random) -> None:
    model, sub = _model(data)
    tensor = sub.Tensors(rng.randrange(sub.TensorsLength()))
    _write_scalar(tensor, 8, "<I", rng.randrange(model.BuffersLength() + 2))


def mutate_op_tensor(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    op = sub.Operators(rng.randrange(sub.OperatorsLength()))
    indices = _vector(op.InputsAsNumpy() if rng.random() < 0.6 else op.OutputsAsNumpy())
    if indices is not None:
        indices[rng.randrange(indices.size)] = rng.randrange(-2, sub.TensorsLength() + 2)


def mutate_graph_edges(data: bytearray, rng: random.Random) -> None:
    _, sub = _model(data)
    indices = _vector(sub.InputsAsNumpy() if rng.random() < 0.5 else sub.OutputsAsNumpy())
    if indices is not None:
        indices[rng.randrange(indices.size)] = rng.randrange(-1, sub.TensorsLength() + 1)


def mutate_option(data: bytearray, rng: random.Random) -> None:
    """Overwrite one field of an op's builtin options (strides, padding, activation, axis, ...)."""
    _, sub = _model(data)
    op = sub.Operators(rng.randrange(sub.OperatorsLength()))
    table = op.BuiltinOptions()
    if table is None:
        return
    slot = 4 + 2 * rng.randrange(8)
    offset = table.Offset(slot)
    if offset:
        value = rng.choice(OPTION_VALUES)
        width = rng.choice((1, 4))
        fmt, value = ("<b", max(-128, min(127, value))) if width == 1 else ("<i", value)
        struct.pack_into(fmt, data, table.Pos + offset, value)


def mutate_weights(data: bytearray, rng: random.Random) -> None:
    model, _ = _model(data)
    payload = _vector(model.Buffers(rng.randrange(model.BuffersLength())).DataAsNumpy())
    if payload is not None:
        for _ in range(rng.randrange(1, 8)):
            payload[rng.randrange(payload.size)] = rng.randrange(256)


def mutate_bytes(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randrange(1, 6)):
        position = rng.randrange(8, len(data))
        data[position] = rng.randrange(256) if rng.random() < 0.7 else data[position] ^ 0x80


def mutate_name(data: bytearray, rng: random.Random) -> None:
    """Plant C syntax in a tensor name (same length, so the file stays well-formed)."""
    _, sub = _model(data)
    tensor = sub.Tensors(rng.randrange(sub.TensorsLength()))
    offset = tensor._tab.Offset(10)
    if not offset:
        return
    start = tensor._tab.Vector(offset)
    length = tensor._tab.VectorLen(offset)
    attack = rng.choice([b"*/ #error injected /*", b"\n#error x\n", b'??/\n"', b"\\\n*/"])
    payload = (attack * (length // len(attack) + 1))[:length]
    data[start : start + length] = payload


MUTATORS: tuple[Callable[[bytearray, random.Random], None], ...] = (
    mutate_shape,
    mutate_scale,
    mutate_zero_point,
    mutate_quantized_dimension,
    mutate_tensor_type,
    mutate_tensor_buffer,
    mutate_op_tensor,
    mutate_graph_edges,
    mutate_option,
    mutate_weights,
    mutate_bytes,
    mutate_name,
)


def mutant(seed_bytes: bytes, rng: random.Random, rounds: int = 2) -> bytes:
    """A copy of `seed_bytes` with 1..`rounds` mutations applied."""
    data = bytearray(seed_bytes)
    for _ in range(rng.randrange(1, rounds + 1)):
        try:
            rng.choice(MUTATORS)(data, rng)
        except Exception:  # an earlier mutation broke the structure: the rest is raw noise anyway
            mutate_bytes(data, rng)
    return bytes(data)


def compile_model(data: bytes, name: str = "fuzzed.tflite"):
    """The codegen path without files: parse, validate, lower, plan and render.

    Returns (lowered model, rendered files), or raises TinyrankError for a refused model;
    any other exception is a bug the fuzz test reports.
    """
    model = lower_graph(parse_bytes(data, name))
    return model, render(model)


def outcome(data: bytes) -> str:
    """'accepted', 'refused', or the crash's exception type and message."""
    try:
        compile_model(data)
    except TinyrankError:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - that is what the fuzzer looks for
        return f"crash: {type(exc).__name__}: {exc}"
    return "accepted"


def run_sanitized(model, files: dict[str, str], work: Path, rows: int = 3) -> None:
    """Compile rendered C with AddressSanitizer and UndefinedBehaviorSanitizer and run `rows` random
    inputs through it; a sanitizer report or a wrong output size raises TinyrankError."""
    from toolchain.codegen import model_info
    from toolchain.codegen.verify import build_host, run_host

    gen = work / "gen"
    gen.mkdir(parents=True)
    for name, text in files.items():
        (gen / name).write_text(text)
    info = model_info(model, None)
    exe = build_host(gen, info, work / "model_host", sanitize=True)
    x = np.random.default_rng(0).integers(-128, 128, size=(rows, info["inputs"][0]["size"]), dtype=np.int8)
    outputs = run_host(exe, x, info)
    shapes = [o.shape for o in outputs]
    if shapes != [(rows, t["size"]) for t in info["outputs"]]:
        raise TinyrankError(f"the sanitized program gave outputs of shapes {shapes}")
