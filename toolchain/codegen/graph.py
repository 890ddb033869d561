"""Reading a `.tflite` flatbuffer into plain Python objects.

The rest of codegen never touches the flatbuffer: it sees `Tensor`s with numpy
quantization parameters and constant data, and `Op`s with their builtin options as a
snake_case dict (enums as names: `fused_activation_function='RELU'`, `padding='SAME'`).
Parsing uses the PyPI `tflite` schema binding, so the layout is TensorFlow's, not ours.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.ctext import printable
from toolchain.errors import ModelError

# TensorType enum value -> numpy dtype name, for the types a model may hold.
_NUMPY_TYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "uint8": np.uint8,
    "int64": np.int64,
    "bool": np.bool_,
    "int16": np.int16,
    "int8": np.int8,
    "float64": np.float64,
    "uint64": np.uint64,
    "uint32": np.uint32,
    "uint16": np.uint16,
}

# Option fields whose integer value is an enum, and the schema enum naming its values.
_ENUM_OPTIONS = {
    "fused_activation_function": "ActivationFunctionType",
    "padding": "Padding",
}


@dataclass
class Tensor:
    """One tensor of the graph; `data` is set for constants (weights, biases, shapes)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # 'int8', 'int16', 'int32', 'float32', ...
    scale: np.ndarray  # float32, shape (1,) per-tensor or (channels,); empty if not quantized
    zero_point: np.ndarray  # int64, same length as scale
    quantized_dimension: int
    data: np.ndarray | None = None
    is_variable: bool = False  # state an op keeps (LSTM's hidden and cell state), not a constant

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_NUMPY_TYPES.get(self.dtype, np.int8)).itemsize

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def values(self) -> np.ndarray:
        """The data of a constant tensor (weights, bias) that the op's check() found constant."""
        if self.data is None:
            raise ModelError(f"tensor {self.index} '{self.name}' must be a constant")
        return self.data

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Op:
    """One operator: its builtin opcode name, tensors, and builtin options."""

    index: int
    opcode: str  # 'FULLY_CONNECTED', ...
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"op {self.index} ({self.opcode})"

    def input(self, i: int) -> Tensor:
        """Input `i`, which the op needs: TFLite marks an absent optional input (a bias) as None."""
        t = self.inputs[i] if i < len(self.inputs) else None
        if t is None:
            raise ModelError(f"{self.describe()}: input {i} is missing")
        return t


@dataclass
class Graph:
    """The first subgraph of a model: tensors, ops in execution order, and the file it came from."""

    path: Path
    sha256: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[Tensor]
    outputs: list[Tensor]

    @property
    def hash32(self) -> int:
        """The first four bytes of the file's SHA-256 as a big-endian integer (TR_MODEL_HASH)."""
        return int(self.sha256[:8], 16)


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    """'DilationHFactor' -> 'dilation_h_factor' (the schema's own field names)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _schema():
    import tflite

    return tflite


def _options_dict(options_table: Any) -> dict[str, Any]:
    """Every field of a generated options class, by calling its accessors."""
    tfl = _schema()
    result: dict[str, Any] = {}
    cls = type(options_table)
    names = [n for n in dir(cls) if n[:1].isupper() and not n.startswith(("GetRootAs", "Init"))]
    for name in names:
        if name.endswith(("AsNumpy", "Length", "IsNone")) or "BufferHasIdentifier" in name:
            continue
        if f"{name}AsNumpy" in names:
            value = getattr(options_table, f"{name}AsNumpy")()
            value = [] if isinstance(value, int) else value.tolist()
        else:
            try:
                value = getattr(options_table, name)()
            except TypeError:  # accessor of a vector of tables: not used by supported ops
                continue
        key = _snake(name)
        if key in _ENUM_OPTIONS and isinstance(value, int):
            value = _enum_names(getattr(tfl, _ENUM_OPTIONS[key]))[value]
        result[key] = value
    return result


def _builtin_options(op: Any) -> dict[str, Any]:
    tfl = _schema()
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    class_name = _enum_names(tfl.BuiltinOptions)[kind]
    table = op.BuiltinOptions()
    options = getattr(tfl, class_name)()
    options.Init(table.Bytes, table.Pos)
    return _options_dict(options)


def _tensor(index: int, t: Any, buffers: list[np.ndarray | None], type_names: dict[int, str]) -> Tensor:
    dtype = type_names.get(t.Type(), f"type{t.Type()}").lower()
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    q = t.Quantization()
    scale = np.zeros(0, np.float32)
    zero_point = np.zeros(0, np.int64)
    qdim = 0
    if q is not None and q.ScaleLength():
        scale = np.asarray(q.ScaleAsNumpy(), np.float32)
        zero_point = (
            np.asarray(q.ZeroPointAsNumpy(), np.int64)
            if q.ZeroPointLength()
            else np.zeros_like(scale, np.int64)
        )
        qdim = int(q.QuantizedDimension())
    raw = buffers[t.Buffer()] if t.Buffer() < len(buffers) else None
    data: np.ndarray | None = None
    if raw is not None and dtype in _NUMPY_TYPES:
        item = np.dtype(_NUMPY_TYPES[dtype]).itemsize
        data = np.frombuffer(raw.tobytes()[: raw.size // item * item], dtype=_NUMPY_TYPES[dtype])
        if all(d >= 0 for d in shape) and data.size == int(np.prod(shape, dtype=np.int64)):
            data = data.reshape(shape)  # else left flat: the validation pass names the mismatch
    return Tensor(
        index=index,
        name=printable(t.Name().decode("utf-8", "replace"), 1000),
        shape=shape,
        dtype=dtype,
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=qdim,
        data=data,
        is_variable=bool(t.IsVariable()),
    )


def _buffers(model: Any, path: Path) -> list[np.ndarray | None]:
    buffers: list[np.ndarray | None] = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.Offset() > 1:
            raise ModelError(
                f"{path}: buffer {i} is stored outside the flatbuffer (models over 2 GB are not supported)"
            )
        buffers.append(b.DataAsNumpy() if b.DataLength() else None)
    return buffers


def parse_bytes(data: bytes, path: str | Path = "<memory>") -> Graph:
    """Parse a TFLite flatbuffer held in memory."""
    tfl = _schema()
    path = Path(path)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (identifier 'TFL3' missing)")
    try:
        model = tfl.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() != 1:
            raise ModelError(
                f"{path}: has {model.SubgraphsLength()} subgraphs; only single-subgraph models are supported"
            )
        opcode_names = _enum_names(tfl.BuiltinOperator)
        opcodes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            value = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            name = opcode_names.get(value, f"BUILTIN_{value}")
            if name == "CUSTOM" and code.CustomCode():
                name = f"CUSTOM({code.CustomCode().decode('utf-8', 'replace')})"  # e.g. the Signal library's
            opcodes.append(name)
        buffers = _buffers(model, path)
        sub = model.Subgraphs(0)
        type_names = _enum_names(tfl.TensorType)
        tensors = [_tensor(i, sub.Tensors(i), buffers, type_names) for i in range(sub.TensorsLength())]

        def check(indices: list[int], optional: bool, what: str) -> None:
            for j in indices:
                if not (-1 if optional else 0) <= j < len(tensors):
                    raise ModelError(f"{path}: {what} names tensor {j}; the model has {len(tensors)}")

        def pick_optional(indices: list[int], what: str) -> list[Tensor | None]:
            check(indices, True, what)
            return [tensors[j] if j >= 0 else None for j in indices]

        def pick(indices: list[int], what: str) -> list[Tensor]:
            check(indices, False, what)
            return [tensors[j] for j in indices]

        ops = []
        for i in range(sub.OperatorsLength()):
            o = sub.Operators(i)
            if not 0 <= o.OpcodeIndex() < len(opcodes):
                raise ModelError(f"{path}: op {i} names operator code {o.OpcodeIndex()} of {len(opcodes)}")
            ins = pick_optional(o.InputsAsNumpy().tolist(), f"op {i}") if o.InputsLength() else []
            outs = pick(o.OutputsAsNumpy().tolist(), f"op {i}") if o.OutputsLength() else []
            ops.append(
                Op(
                    index=i,
                    opcode=opcodes[o.OpcodeIndex()],
                    inputs=ins,
                    outputs=outs,
                    options=_builtin_options(o),
                )
            )
        inputs = pick(sub.InputsAsNumpy().tolist(), "the model inputs") if sub.InputsLength() else []
        outputs = pick(sub.OutputsAsNumpy().tolist(), "the model outputs") if sub.OutputsLength() else []
    except ModelError:
        raise
    except Exception as exc:  # a corrupt flatbuffer fails in many ways inside the binding
        raise ModelError(f"{path}: cannot parse the TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc
    return Graph(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        tensors=tensors,
        ops=ops,
        inputs=inputs,
        outputs=outputs,
    )


def parse(path: str | os.PathLike) -> Graph:
    """Parse a `.tflite` file; a missing or corrupt file is a `ModelError` naming it."""
    p = Path(path)
    if p.is_dir():
        raise ModelError(f"model file {p}: is a folder; expected a .tflite file")
    if not p.is_file():
        raise ModelError(f"model file {p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {p}: cannot read it ({exc.strerror})") from exc
    return parse_bytes(data, p)
