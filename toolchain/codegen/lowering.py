"""What an op lowering returns, and the context it asks for C names.

A lowering turns one `Op` into one call of a C kernel: `function(&params, buffers...)`, where
`params` is the kernel family's parameter struct (`tr_<family>_params`, declared in
`tr_<family>.h`), filled as a named `static const` in `model.c` next to the call, and the
buffers are arena pointers. A lowering never decides where a tensor lives: `ctx.tensor(t)`
returns a C expression (a macro of `model.c` defined once the memory plan is known),
`ctx.constant(...)` puts an array into `model_weights.c`, `ctx.scratch(n)` reserves a
temporary buffer in the arena for the duration of the op, and `ctx.params(...)` names the
struct.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from toolchain.codegen.graph import Tensor

# numpy dtype -> C element type of a const array.
C_TYPES = {
    "int8_t": np.int8,
    "uint8_t": np.uint8,
    "int16_t": np.int16,
    "int32_t": np.int32,
    "uint32_t": np.uint32,
    "float": np.float32,
}
_TENSOR_C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "float32": "float",
    "bool": "uint8_t",
}


# A field's C initializer: an expression, an array ({...}) or a nested struct ({ .field = ... }).
FieldValue = str | int | list[int] | Mapping[str, "FieldValue"]


@dataclass
class ParamStruct:
    """The `static const` parameter struct of one kernel call, e.g. `tr_fc_params fc_dense_1`."""

    ctype: str  # 'tr_fc_params', declared in the kernel family's header
    name: str  # unique among the C names of the model
    fields: Mapping[str, FieldValue]  # in declaration order; pointer fields name arrays or NULL


@dataclass
class KernelCall:
    """One C kernel call of `model.c`: `function(&params.name, *args)`."""

    source: str  # kernel file under firmware_templates/kernels/, e.g. 'tr_add.c'
    function: str  # C function called, e.g. 'tr_add_int8'
    params: ParamStruct
    args: list[str]  # arena buffers after the parameter struct: inputs, output, scratch
    comment: str  # one line: TFLite op, shapes, quantization
    macs: int = 0
    # kernel files the call needs besides `source`, with no family header of their own (the thin
    # loop's deep forms, tr_thin_deep.c, for a pair with a thin layer of more than 128 inputs)
    extra_sources: tuple[str, ...] = ()

    @property
    def header(self) -> str:
        """The kernel family's header, which declares `function` and the params type."""
        return self.source.removesuffix(".c") + ".h"

    @property
    def call_args(self) -> list[str]:
        return [f"&{self.params.name}", *self.args]


@dataclass
class ConstantArray:
    """A const array of `model_weights.c`."""

    name: str
    ctype: str
    values: np.ndarray  # flat, already of the C type
    about: str = ""  # what it holds, e.g. the TFLite tensor it comes from (a comment above it)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@dataclass
class ScratchBuffer:
    """A temporary arena buffer alive during one op only."""

    name: str
    nbytes: int
    op_index: int
    offset: int = -1  # set by the memory plan


def c_type(t: Tensor) -> str:
    """The C element type of a tensor."""
    return _TENSOR_C_TYPES.get(t.dtype, "int8_t")


def _identifier(text: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return name or "x"


_LAYER_WORDS = ("conv", "dense", "depthwise", "matmul")


def layer_name(t: Tensor, fallback: str = "") -> str:
    """A short C-friendly name of the layer that owns a tensor: 'dense_1' for
    'sequential/dense_1/MatMul' (the last scope before the op name; of the converter's
    ';'-joined names, preferably a convolution's or dense layer's, not a batch norm's); for an
    unscoped name ('StatefulPartitionedCall:0') `fallback` if given, else the whole name."""
    scopes = [[s for s in part.split("/") if s] for part in t.name.split(";")]
    layers = [_identifier(s[-2]) for s in scopes if len(s) > 1]
    for layer in layers:
        if any(word in layer for word in _LAYER_WORDS):
            return layer
    return layers[0] if layers else fallback or _identifier(t.name)


@dataclass
class LoweringContext:
    """Hands out C names while the ops are lowered; the renderer later defines them."""

    prefix: str = "tr"
    op_index: int = -1  # the op being lowered (set by the generator)
    by_columns: frozenset[int] = frozenset()  # 3x3 depthwise ops to run by columns where they may
    dsp: bool = True  # the target runs the DSP path (Cortex-M4/M7/M33): layouts only it reads pay off
    plain_scratch: bool = False  # a call's scratch is sized for the plain C path only (model.c checks)
    constants: list[ConstantArray] = field(default_factory=list)
    scratches: list[ScratchBuffer] = field(default_factory=list)
    used_tensors: dict[int, Tensor] = field(default_factory=dict)
    _constant_of_tensor: dict[int, str] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # the model's own C names (model.c): a constant or params struct must not take them
        self._names.update(f"{self.prefix}_{api}" for api in ("arena", "input", "output", "invoke"))

    def unique_name(self, text: str) -> str:
        """A C identifier for `text`, whole (never truncated) and unique in the model: on a clash
        (two texts that differ only in punctuation, or one text used twice) a short hash of the
        text is appended."""
        base = _identifier(text)
        name, n = base, 1
        while name in self._names:
            n += 1
            salt = text if n == 2 else f"{text}#{n}"
            name = f"{base}_{hashlib.sha256(salt.encode()).hexdigest()[:6]}"
        self._names.add(name)
        return name

    def params(self, ctype: str, name: str, fields: Mapping[str, FieldValue]) -> ParamStruct:
        """The parameter struct of a kernel call; `name` comes from `unique_name` (e.g. 'fc_dense_1'),
        and the struct's constant arrays are named after it ('tr_fc_dense_1_filter')."""
        if name not in self._names:
            raise ValueError(f"params struct name '{name}' was not reserved with unique_name")
        return ParamStruct(ctype, name, fields)

    def tensor(self, t: Tensor) -> str:
        """C expression of the tensor's typed pointer: an arena macro, or the const array of a constant."""
        if t.data is not None:
            if t.index not in self._constant_of_tensor:
                self._constant_of_tensor[t.index] = self.constant(
                    t.name, t.data, c_type(t), f"tensor {t.index} '{t.name}'"
                )
            return self._constant_of_tensor[t.index]
        self.used_tensors[t.index] = t
        return tensor_macro(t)

    def constant(self, hint: str, array: np.ndarray, ctype: str, about: str = "") -> str:
        """Emit a const array into `model_weights.c`; returns its C name (prefixed, whole, unique).
        `about` goes into a comment above it (e.g. the TFLite tensor it comes from)."""
        if ctype not in C_TYPES:
            raise ValueError(f"constant '{hint}': C type {ctype} not one of {sorted(C_TYPES)}")
        values = np.ascontiguousarray(array).reshape(-1)
        converted = values.astype(C_TYPES[ctype])
        if np.issubdtype(values.dtype, np.integer) and not np.array_equal(converted, values):
            raise ValueError(f"constant '{hint}': values do not fit {ctype}")
        name = self.unique_name(f"{self.prefix}_{hint}")
        self.constants.append(ConstantArray(name, ctype, converted, about))
        return name

    def scratch(self, nbytes: int) -> str:
        """A scratch buffer pointer (int8_t *), planned in the arena for the current op only."""
        name = f"S{len(self.scratches)}"
        self.scratches.append(ScratchBuffer(name, int(nbytes), self.op_index))
        return name


def tensor_macro(t: Tensor) -> str:
    """The macro `model.c` defines for an arena tensor (e.g. `T5`)."""
    return f"T{t.index}"


def shape_text(t: Tensor | None) -> str:
    """'int8[1,28,28,8]' for comments."""
    if t is None:
        return "none"
    return f"{t.dtype}[{','.join(str(d) for d in t.shape)}]"


def quant_text(t: Tensor) -> str:
    """'s=0.0235 zp=-128' (or 'per-channel') for comments."""
    if t.scale.size == 0:
        return "float"
    if t.scale.size > 1:
        return f"per-channel({t.scale.size})"
    return f"s={float(t.scale[0]):.6g} zp={int(t.zero_point[0])}"
