"""The on-device cost model: instructions of each kernel call predicted from its shape, per core.

The coefficients are fitted (`toolchain.firmware.costfit`, `make costmodel`) from the
generated kernels measured in QEMU on a grid of shapes, one set per core: Cortex-M4 (the
DSP path), Cortex-M3 (the plain-C path) and Cortex-M33. They live in `costmodel.json`
beside this module and are never edited by hand.

A call is a kernel function and the shapes of the graph ops it runs (see
`toolchain.codegen.shapes`). Its cost is a non-negative combination of terms that follow
the kernels' loops: a constant, per position, per output, per block of four outputs (the
kernels pack weights by four rows), per MAC, per padded MAC, per inner remainder, per
input and output value. Kernels the grid never ran fall back to one model fitted over
all of a core's weighted calls, and are flagged as such.

One module, past 400 lines: the terms, the fitted entries and the prediction are read together
(each term follows a kernel loop the predictor sums), and costfit imports the same term code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.codegen.inplace import PAIR_KERNELS
from toolchain.codegen.ops.fully_connected import takes_row_stream, thin_max_depth
from toolchain.errors import TinyrankError

DATA_PATH = Path(__file__).with_name("costmodel.json")
BLOCK_TERMS = (
    "p",
    "p*G",
    "p*G*W",
    "p*G*T",
    "p*R",
    "p*R*W",
    "p*R*T",
    "p*[R]",
    "p*[R]*W",
    "p*G*[T]",
    "p*[R]*[T]",
)  # G, R = o // 4, o % 4; W, T = i // 4, i % 4; [R], [T] = 1 where there is a partial group or word
# Op kinds whose every kernel runs the matmul loops (CONV_2D too: im2col columns as matmul rows).
MATMUL_KINDS = ("fc", "pw", "conv")
GATHER_TERMS = ("p*kh", "p*kh*run/4", "p*kh*run%4")
SHARED_TERMS = (*BLOCK_TERMS[:2], *BLOCK_TERMS[3:], "p*k", "in", "out", *GATHER_TERMS)
GENERIC_TERMS = ("p*o", "p*o*i", "p*i", "in", "out")
GENERIC = "*"  # the key of the fallback model
# Op shapes the generic fallback was never fitted on and cannot describe: an LSTM's cost is
# mostly per-element int16 work (requantizations, lookups), not MACs. Without a fitted entry of
# their own these ops get no prediction at all rather than a wrong one.
UNMODELLED_KINDS = ("lstm",)
# A kernel not yet in the fitted data (until `make costmodel` runs again) is predicted as the kernel
# it replaces on the same shapes, which it beats: an upper bound that keeps codegen's fusion choice
# and compress's budgets where they were, rather than the generic fallback's guess.
STAND_IN_KERNELS = {"tr_fully_connected_row_int8": "tr_fully_connected_int8"}
# Cores without their own measurements borrow the nearest measured one.
CORE_OF = {
    "cortex-m4": "m4",
    "cortex-m4f": "m4",
    "cortex-m7": "m4",
    "cortex-m33": "m33",
    "cortex-m3": "m3",
    "cortex-m0plus": "m3",
    "cortex-m0": "m3",
}
MEASURED_CORES = ("m4", "m3", "m33")
# Real boards are budgeted in cycles. The model counts instructions; a Cortex-M4 running
# these kernels from zero-wait-state memory charges about this many cycles for one (2 for
# most loads, 1+N for LDM, 3 for a taken branch, 1 for the rest). An estimate, reported as one.
CYCLES_PER_INSTRUCTION = 1.35


def core_of(board: Any) -> str:
    """The cost-model core of a board: 'm4', 'm3' or 'm33' (a core without the DSP
    extension takes the plain-C path whatever its name)."""
    core = CORE_OF.get(board.core, "m4" if board.has_dsp else "m3")
    if core in ("m4", "m33") and not board.has_dsp:
        return "m3"
    return core


def block_terms(shape: dict[str, Any]) -> list[float]:
    """`BLOCK_TERMS` of one op: the kernels run groups of four outputs over words of four inputs,
    then the leftover outputs and inputs, so each of those loops has its own cost per step. The
    matmul kernels pad the last group and word instead, which costs a whole step whatever the
    remainder: the indicator terms."""
    p, i, o = int(shape["p"]), int(shape["i"]), int(shape["o"])
    g, r, w, t = o // 4, o % 4, i // 4, i % 4
    # The matmul kernels (FULLY_CONNECTED, CONV_2D) pad the last group and word: one whole step.
    padded = shape.get("kind") in MATMUL_KINDS
    partial_group, partial_word = int(padded and r > 0), int(padded and t > 0)
    return [
        float(v)
        for v in (
            p,
            p * g,
            p * g * w,
            p * g * t,
            p * r,
            p * r * w,
            p * r * t,
            p * partial_group,
            p * partial_group * w,
            p * g * partial_word,
            p * partial_group * partial_word,
        )
    ]


def _extra_terms(shape: dict[str, Any]) -> list[float]:
    return [float(shape["p"] * shape.get("k", 1)), float(shape["in"]), float(shape["out"])]


def gather_terms(shape: dict[str, Any]) -> list[float]:
    """`GATHER_TERMS` of a k x k convolution: per output pixel its im2col gather copies one run of
    k_w x in_c bytes per kernel row, word by word, then the last bytes (tr_conv_core.h). A first
    layer over one channel (DS-CNN's 10x4) copies ten runs of four bytes, where a 3x3 over 32
    channels copies three of 96: the taps alone cannot tell them apart. Zero for other ops."""
    if shape.get("kind") != "conv" or "kh" not in shape:
        return [0.0, 0.0, 0.0]
    rows = float(shape["p"] * shape["kh"])
    run = int(shape["run"])
    return [rows, rows * (run // 4), rows * (run % 4)]


ROW_KERNELS = ("tr_depthwise_conv_3x3_int8", "tr_depthwise_conv_3x3_doubled_int8")
ROW_TERMS = (
    "1",
    "w",
    "G",
    "G*rows",
    "g*rows_in*w",
    "g*rows_in*in_w",
    "[v]*rows_in*w",
    "[v]*v*rows_in*w",
    "g*p",
    "[v]*p",
    "[v]*v*p",
)  # g, v = channels // 4, channels % 4; G = g + [v]; in_w the input width


def row_terms(shape: dict[str, Any]) -> list[float]:
    """`ROW_TERMS` of a kernel that widens its input row by row into scratch (the 3x3 depthwise):
    per group of four channels it builds each input row once (a stored column per output column,
    each input column widened once), then runs every output row and pixel; the last, partial
    group builds its rows channel by channel and requantizes them one by one."""
    channels, rows_in, p, w = int(shape["o"]), int(shape["rows_in"]), int(shape["p"]), int(shape["w"])
    g, v = channels // 4, channels % 4
    partial = int(v > 0)
    in_w = shape["in"] / max(rows_in * channels, 1)
    return [
        float(t)
        for t in (
            1,
            w,
            g + partial,
            (g + partial) * shape["rows"],
            g * rows_in * w,
            g * rows_in * in_w,
            partial * rows_in * w,
            partial * v * rows_in * w,
            g * p,
            partial * p,
            partial * v * p,
        )
    ]


# A step of a fused call (a pair's layer, a spatial or Tucker step) with at most
# `thin_max_depth` inputs per output (codegen's own limit: deeper for a pair's layers on a DSP
# target) runs from a thin int16 stream (tr_thin.h): its own per-MAC, per-group and per-row
# (widening) costs. The last group, partial, runs the loop once more into a stack buffer on the
# DSP path, in plain C on the plain C path (p*[R], p*[R]*W); so does the plain C path's last,
# partial word per group; the DSP path widens a partial word apart (p*[T]).
THIN_TERMS = ("p*G", "p", "p*W", "p*[R]", "p*[R]*W", "p*G*[T]", "p*R", "p*[T]")


def core_has_dsp(core: str) -> bool:
    """Whether codegen targets a cost-model core (`core_of`) with the DSP path's layouts."""
    return core != "m3"


def is_thin(shape: dict[str, Any], ops: int, dsp: bool = True) -> bool:
    """Whether the generator runs this op of a call of `ops` ops from a thin stream (a step of a
    fused pair, spatial pair or Tucker chain with few inputs, `thin_max_depth`, on a target with
    the DSP path or not; the doubled full-range requantization it also needs is the rule)."""
    pair = ops == 2 and shape.get("kind") in ("fc", "pw")
    depth = thin_max_depth(pair=pair, dsp=dsp)
    return ops in (2, 3) and shape.get("kind") in MATMUL_KINDS and int(shape["i"]) <= depth


# A step of a fused pair of one row (a FULLY_CONNECTED pair, or a pointwise pair over one pixel)
# into more than four outputs with no thin stream runs from the row stream on DSP targets
# (codegen's fully_connected.takes_row_stream; a Cortex-M0/M3 is generated with the matmul layout,
# and its own fit gives these terms its own loop's cost): its own per-MAC, per-group and
# per-row-word (the prepared row) costs, the same loop for either step of the pair.
STREAM_TERMS = ("p*G*W", "p*G", "p*W")


def is_row_stream(shape: dict[str, Any], ops: int, dsp: bool = True) -> bool:
    """Whether the generator runs this op of a fused pair from the row stream (`STREAM_TERMS`)."""
    return (
        ops == 2
        and shape.get("kind") in ("fc", "pw")
        and takes_row_stream(int(shape["p"]), int(shape["o"]), dsp=True)
        and not is_thin(shape, ops, dsp)
    )


def call_terms(shapes: list[dict[str, Any]], kernel: str | None = None, dsp: bool = True) -> np.ndarray:
    """The terms of a call. One op: a constant, `block_terms` for all positions and again for an
    odd last one (rows run in pairs), taps per position (im2col), input and output values. A
    fused call (several ops, few measurements each): a constant, the main MAC loop of each op
    on its own (int8 loops, a thin stream or a row stream, `is_thin`, `is_row_stream`: separate
    terms), the other terms summed over its ops with one coefficient each, the thin ops' groups,
    rows and row words, and the row-stream ops' groups and row words. A kernel that
    prepares its input row by row (`ROW_KERNELS`) has terms of its own (`row_terms`). `dsp`: the
    core runs the DSP path (`core_has_dsp`), which takes deeper thin layers."""
    if kernel in ROW_KERNELS and len(shapes) == 1:
        return np.array(row_terms(shapes[0]))
    if len(shapes) == 1:
        shape = shapes[0]
        odd = block_terms({**shape, "p": shape["p"] % 2})
        return np.array([1.0, *block_terms(shape), *odd, *_extra_terms(shape), *gather_terms(shape)])
    own: list[float] = []
    shared = np.zeros(len(SHARED_TERMS))
    thin = np.zeros(len(THIN_TERMS))
    stream = np.zeros(len(STREAM_TERMS))
    for shape in shapes:
        terms = block_terms(shape)
        streamed, row_stream = is_thin(shape, len(shapes), dsp), is_row_stream(shape, len(shapes), dsp)
        padded = terms[2] + terms[8]  # a partial last group padded to a whole one
        # int8 matmul loops or the thin stream (the row stream: `stream` below)
        own += [0.0, terms[2]] if streamed else [0.0, 0.0] if row_stream else [padded, 0.0]
        shared += [*terms[:2], *terms[3:], *_extra_terms(shape), *gather_terms(shape)]
        if streamed:
            row_words = float(shape["p"] * (int(shape["i"]) // 4))
            partial_word = float(shape["p"] * (int(shape["i"]) % 4 > 0))
            thin += [terms[1], terms[0], row_words, terms[7], terms[8], terms[9], terms[4], partial_word]
        if row_stream:
            stream += [padded, terms[1] + terms[7], float(-(-int(shape["i"]) // 4))]
    return np.array([1.0, *own, *shared, *thin, *stream])


def term_names(ops: int, kernel: str | None = None) -> list[str]:
    """Names of `call_terms` for a call of `ops` graph ops (kept in the data file for readers)."""
    if kernel in ROW_KERNELS and ops == 1:
        return list(ROW_TERMS)
    if ops == 1:
        return ["1", *BLOCK_TERMS, *(f"odd:{t}" for t in BLOCK_TERMS), "p*k", "in", "out", *GATHER_TERMS]
    own = [name for n in range(ops) for name in (f"op{n}:p*G*W", f"op{n}:thin:p*G*W")]
    return [
        "1",
        *own,
        *(f"sum:{t}" for t in SHARED_TERMS),
        *(f"thin:{t}" for t in THIN_TERMS),
        *(f"stream:{t}" for t in STREAM_TERMS),
    ]


def generic_terms(shapes: list[dict[str, Any]]) -> np.ndarray:
    """A constant, then `GENERIC_TERMS` summed over the call's ops."""
    total = np.zeros(len(GENERIC_TERMS))
    for shape in shapes:
        p, i, o = float(shape["p"]), float(shape["i"]), float(shape["o"])
        total += [p * o, p * o * i, p * i, float(shape["in"]), float(shape["out"])]
    return np.array([1.0, *total])


# Entry points of one kernel that share its fitted entry: codegen calls a factored pair of one row
# with a row-stream layer by a name of its own (so the two-row form checks no flags), but it runs
# the same steps on the same shapes, and `call_terms` tells the row-stream steps apart already.
SAME_KERNEL = {form: PAIR_KERNELS[0] for form in PAIR_KERNELS[1:]}  # a pair's forms share one fit


def kernel_key(kernel: str, shapes: list[dict[str, Any]]) -> str:
    """What coefficients are fitted for: the kernel function (`SAME_KERNEL`: the entry point whose
    fit it shares) and how many graph ops it runs."""
    kernel = SAME_KERNEL.get(kernel, kernel)
    return kernel if len(shapes) == 1 else f"{kernel}/{len(shapes)}"


def signature(shapes: list[dict[str, Any]]) -> str:
    """The kinds of a call's graph ops, e.g. 'fc+fc' (a factored pair) or 'pw+conv+pw' (Tucker)."""
    return "+".join(shape["kind"] for shape in shapes)


def _lacks_fields(kernel: str, shapes: list[dict[str, Any]]) -> bool:
    """Whether a call's shapes miss a field its terms read: the rows of a `ROW_KERNELS` depthwise,
    the kernel rows of a lone k x k convolution (`gather_terms`)."""
    if kernel in ROW_KERNELS:
        return any("rows_in" not in shape for shape in shapes)
    return len(shapes) == 1 and shapes[0].get("kind") == "conv" and "kh" not in shapes[0]


@dataclass
class CostModel:
    """Fitted coefficients of one core."""

    core: str
    kernels: dict[str, dict[str, Any]]
    fusions: dict[str, str] = field(default_factory=dict)  # signature -> kernel that ran it
    borrowed_from: str | None = None  # set when the board's core was not measured itself

    def predict_call(self, kernel: str | None, shapes: list[dict[str, Any]]) -> tuple[float, bool]:
        """(instructions, fitted): `fitted` is False where the kernel fell back to the generic model."""
        if kernel is None:
            return 0.0, True  # a memory alias: no code runs
        if kernel_key(kernel, shapes) not in self.kernels and kernel in STAND_IN_KERNELS:
            kernel = STAND_IN_KERNELS[kernel]
        entry = self.kernels.get(kernel_key(kernel, shapes))
        if entry is not None and _lacks_fields(kernel, shapes):
            entry = None  # a shape from an older model_info.json, or a layer not yet generated
        if entry is not None:
            terms = call_terms(shapes, kernel, core_has_dsp(self.core))
            if len(entry["coefficients"]) != len(terms):
                raise TinyrankError(
                    f"{DATA_PATH}: the cost model of {kernel} was fitted on other terms than this version "
                    "computes; run `make costmodel`"
                )
            return float(np.dot(entry["coefficients"], terms)), True
        generic = self.kernels[GENERIC]
        return float(np.dot(generic["coefficients"], generic_terms(shapes))), False

    def predicts(self, kernel: str | None, shapes: list[dict[str, Any]]) -> bool:
        """Whether `predict_call` means anything for the call: False for a kernel without a fitted
        entry whose op shape the generic fallback cannot describe (`UNMODELLED_KINDS`)."""
        if kernel is not None and kernel_key(kernel, shapes) not in self.kernels:
            kernel = STAND_IN_KERNELS.get(kernel, kernel)
        if kernel is None or kernel_key(kernel, shapes) in self.kernels:
            return True
        return not any(shape.get("kind") in UNMODELLED_KINDS for shape in shapes)

    def predict_ops(self, info: dict[str, Any]) -> list[float]:
        """Predicted instructions of every op of a model_info.json, in order."""
        ops = info.get("ops", [])
        if any("shapes" not in op for op in ops):
            raise TinyrankError(
                "model_info.json has no op shapes (made by an older tinyrank); run `tinyrank codegen` again"
            )
        return [self.predict_call(op.get("kernel"), op["shapes"])[0] for op in ops]

    def predict_layers(self, shapes: list[dict[str, Any]]) -> float:
        """Instructions of a run of graph ops, grouped into calls as codegen may fuse them: the
        longest run whose kinds match a fused kernel seen in the grid, else one call per op.
        Whether codegen fuses a group depends on the whole model's arena (`fusion_choice`), so a
        group counts as the slower of its fused call and its ops one by one: a budget built from
        these figures holds whichever plan codegen picks."""
        total, start = 0.0, 0
        while start < len(shapes):
            for end in range(len(shapes), start, -1):
                group = shapes[start:end]
                kernel = self.fusions.get(signature(group))
                if kernel is None and end - start == 1:
                    kernel = self._single_kernel(group[0])
                if kernel is not None:
                    cost = self.predict_call(kernel, group)[0]
                    if end - start > 1:
                        apart = sum(self.predict_call(self._single_kernel(s), [s])[0] for s in group)
                        cost = max(cost, apart)
                    total += cost
                    start = end
                    break
        return total

    @cached_property
    def _singles(self) -> dict[str, str]:
        """Op kind -> the kernel the grid ran for one op of that kind."""
        return {sig: kernel for sig, kernel in self.fusions.items() if "+" not in sig}

    def _single_kernel(self, shape: dict[str, Any]) -> str:
        """The kernel the grid ran for one op of this kind (a placeholder name if none: the
        generic fallback predicts it)."""
        return self._singles.get(shape["kind"], f"<{shape['kind']}>")


def load_data(path: Path = DATA_PATH) -> dict[str, Any]:
    if not path.is_file():
        raise TinyrankError(f"{path}: the cost model's data is missing; run `make costmodel`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TinyrankError(f"{path}: unreadable cost model data ({err}); run `make costmodel`") from err


@lru_cache(maxsize=8)
def _load_core(core: str, path: Path) -> CostModel:
    data = load_data(path)
    cores = data.get("cores", {})
    if core not in cores:
        raise TinyrankError(f"{path}: no cost model for core '{core}'; run `make costmodel`")
    entry = cores[core]
    return CostModel(core, entry["kernels"], entry.get("fusions", {}))


def load_cost_model(board: Any, path: Path = DATA_PATH) -> CostModel:
    """The cost model of a board's core (a `Board` or a board id)."""
    from toolchain.firmware.boards import load_board

    board = load_board(board)
    core = core_of(board)
    model = _load_core(core, path)
    if board.core not in ("cortex-m4", "cortex-m4f", "cortex-m3", "cortex-m33"):
        model = CostModel(model.core, model.kernels, model.fusions, borrowed_from=core)
    return model


def latency_unit(board: Any) -> str:
    """What a latency budget on this board counts: cycles on a real board, instructions in QEMU."""
    return "instructions" if board.is_emulated else "cycles"


def to_board_units(instructions: float, board: Any) -> float:
    """Predicted instructions as the board's latency unit (see `CYCLES_PER_INSTRUCTION`)."""
    return instructions if board.is_emulated else instructions * CYCLES_PER_INSTRUCTION
