"""What a layer costs on the device, kept whole or factored: the cost side of the rank search.

Each candidate gets a cost vector: parameters, MACs, flash bytes as codegen stores them
(int8 weights plus an int32 bias, multiplier, shift and rounding constant per output
channel of every generated layer; int16 weights for the steps a fused call runs from a thin
stream), RAM (the largest input + output a call holds at once)
and predicted instructions from the board's cost model (`toolchain.firmware.costmodel`),
grouping the replacement layers into calls the way codegen fuses them.

The model-wide figures (the original's instructions, flash and RAM) come from generating
the original's C once and asking the firmware budget model, so compress and build count
the same bytes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.compress.layers import LayerInfo
from toolchain.compress.replacements import pair
from toolchain.errors import BudgetError, UnsupportedError

CHANNEL_BYTES = 16  # int32 bias, multiplier, shift and rounding constant per output channel
ADDITIVE = ("params", "macs", "bytes", "flash_bytes", "instructions")  # summed over layers
PEAK = ("ram_bytes",)  # the largest over layers


def _op(
    kind: str, p: int, i: int, o: int, values_in: int, k: int = 1, kernel_rows: int = 1
) -> dict[str, Any]:
    shape = {
        "kind": kind,
        "p": int(p),
        "i": int(i),
        "o": int(o),
        "k": int(k),
        "in": int(values_in),
        "out": int(p * o),
    }
    if kind == "conv":  # what its im2col gather copies: `kernel_rows` runs of i / kernel_rows bytes
        shape.update(kh=int(kernel_rows), run=int(i) // int(kernel_rows))
    return shape


def layer_shapes(info: LayerInfo, method: str | None, ranks: tuple[int, ...]) -> list[dict[str, Any]]:
    """The graph ops (`toolchain.codegen.shapes` form) of a layer kept whole (method None) or factored."""
    if info.kind == "dense":
        m, n = info.kernel.shape
        p = info.positions
        if method is None:
            return [_op("fc", p, m, n, p * m)]
        (r,) = ranks
        return [_op("fc", p, m, r, p * m), _op("fc", p, r, n, p * r)]
    kh, kw, c, n = info.kernel.shape
    h_in, w_in = int(info.in_shape[0] or 0), int(info.in_shape[1] or 0)
    h_out, w_out = int(info.out_shape[0]), int(info.out_shape[1])
    p_in, p_out = h_in * w_in, h_out * w_out
    kind = "pw" if (kh, kw) == (1, 1) else "conv"
    if method is None:
        return [_op(kind, p_out, kh * kw * c, n, p_in * c, kh * kw, kh)]
    if method in ("svd", "seminmf"):
        (r,) = ranks
        return [_op("pw", p_out, c, r, p_in * c), _op("pw", p_out, r, n, p_out * r)]
    if method == "tucker":
        r1, r2 = ranks
        return [
            _op("pw", p_in, c, r1, p_in * c),
            _op("conv", p_out, kh * kw * r1, r2, p_in * r1, kh * kw, kh),
            _op("pw", p_out, r2, n, p_out * r2),
        ]
    if method == "spatial":
        (r,) = ranks
        return [
            _op("conv", h_out * w_in, kh * c, r, p_in * c, kh, kh),
            _op("conv", p_out, kw * r, n, h_out * w_in * r, kw),
        ]
    if method == "cp":
        (r,) = ranks
        strided = pair(info.config["strides"]) != (1, 1)
        p_mid = p_in if strided else h_out * w_in
        p_last = p_in if strided else p_out
        return [
            _op("pw", p_in, c, r, p_in * c),
            _op("dw", p_mid, kh, r, p_in * r, kh),
            _op("dw", p_last, kw, r, p_mid * r, kw),
            _op("pw", p_out, r, n, p_last * r),
        ]
    raise UnsupportedError(f"layer '{info.name}': no device cost for method {method}")


def _round4(n: int) -> int:
    return (int(n) + 3) // 4 * 4


def _int8_layout_bytes(shape: dict[str, Any]) -> int:
    """A matmul step stored as codegen's int8 layout: weights for inputs and outputs each rounded
    up to four, and `CHANNEL_BYTES` per output rounded up to four (a 256->11 layer: 3,072 B of
    weights, 192 B of constants); a depthwise step's weights as they are."""
    if shape["kind"] == "dw":
        return int(shape["i"] * shape["o"] + CHANNEL_BYTES * shape["o"])
    return _round4(shape["o"]) * (_round4(shape["i"]) + CHANNEL_BYTES)


def _thin_layout_bytes(shape: dict[str, Any]) -> int:
    """A fused step stored as a thin int16 stream (codegen's packing.pack_thin): per group of four
    outputs four biases, 32 bytes per word of four inputs and three constants per output (a 28->256
    step: 64 groups of 288 B)."""
    groups, words = (int(shape["o"]) + 3) // 4, (int(shape["i"]) + 3) // 4
    return groups * (16 + 32 * words + 48)


def flash_bytes_apart(shapes: list[dict[str, Any]]) -> int:
    """Flash of the steps' constants when codegen runs each as a call of its own (int8 layout)."""
    return int(sum(_int8_layout_bytes(shape) for shape in shapes))


def flash_bytes(shapes: list[dict[str, Any]], dsp: bool = True) -> int:
    """Flash of a layer's constants as codegen may store them: the larger of its steps apart and
    fused, where each step that runs from a thin stream (costmodel.is_thin) takes two bytes a
    weight. Which groups codegen fuses depends on the whole model (fusion_choice), so the larger
    holds whichever it picks, as `CostModel.predict_layers` does for instructions (the digits
    MLP's 64-28-256 pair: 22,464 B fused, 13,824 B apart, against 20,480 B for the dense layer)."""
    from toolchain.firmware.costmodel import is_thin

    apart = flash_bytes_apart(shapes)
    if len(shapes) == 1:
        return apart
    fused = sum(
        _thin_layout_bytes(shape) if is_thin(shape, len(shapes), dsp) else _int8_layout_bytes(shape)
        for shape in shapes
    )
    return int(max(apart, fused))


def ram_bytes(shapes: list[dict[str, Any]]) -> int:
    """The largest input + output one of the layers holds in the arena at once."""
    return int(max(shape["in"] + shape["out"] for shape in shapes))


@dataclass
class DeviceCosts:
    """Predicts candidates' device costs on one board."""

    board: Any
    cost_model: Any = None

    def vector(self, info: LayerInfo, method: str | None, ranks: tuple[int, ...]) -> dict[str, float]:
        shapes = layer_shapes(info, method, ranks)
        return {
            "flash_bytes": flash_bytes(shapes, dsp=bool(self.board.has_dsp)),
            "flash_bytes_apart": flash_bytes_apart(shapes),
            "ram_bytes": ram_bytes(shapes),
            "instructions": self.cost_model.predict_layers(shapes) if self.cost_model else 0.0,
        }


def device_costs(board: Any) -> DeviceCosts:
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.costmodel import load_cost_model

    board = load_board(board)
    return DeviceCosts(board, load_cost_model(board))


@dataclass
class DeviceBaseline:
    """The original model on the board: predicted instructions per op and the budget model's usage."""

    board: Any
    instructions: float
    usage: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)


def device_baseline(model: Any, x_calib: np.ndarray, board: Any) -> DeviceBaseline:
    """Convert and generate the original model once, then ask the cost and budget models about it."""
    from toolchain.codegen import generate
    from toolchain.convert import convert_model
    from toolchain.firmware import predict_usage
    from toolchain.firmware.costmodel import load_cost_model

    with tempfile.TemporaryDirectory(prefix="tinyrank-baseline-") as tmp:
        tflite = Path(tmp) / "original.tflite"
        tflite.write_bytes(convert_model(model, x_calib, samples=min(len(x_calib), 64)))
        info = generate(tflite, Path(tmp) / "gen", tflm_arena=False, dsp=board.has_dsp)
        usage = predict_usage(Path(tmp) / "gen", board)
    predicted = load_cost_model(board).predict_ops(info)
    ops = [
        {"opcode": op["opcode"], "kernel": op["kernel"], "predicted": round(value)}
        for op, value in zip(info["ops"], predicted, strict=True)
    ]
    return DeviceBaseline(board, float(sum(predicted)), usage, ops)


def activation_bytes(model: Any) -> int:
    """Largest int8 input + output of any layer: a lower bound of the tensor arena."""
    largest = 0
    for layer in model.layers:
        try:
            tensors = [layer.input, layer.output]
        except (AttributeError, ValueError):
            continue
        size = 0
        for t in tensors:
            for one in t if isinstance(t, (list, tuple)) else [t]:
                size += int(np.prod([d for d in one.shape[1:] if d is not None], dtype=np.int64))
        largest = max(largest, size)
    return largest


def check_activations(model: Any, baseline: DeviceBaseline) -> None:
    """Factoring shrinks weights, never activations: refuse up front a model whose largest
    layer input plus output cannot fit the RAM the board leaves for the arena."""
    usage = baseline.usage
    room = usage["ram_limit"] - (usage["ram_bytes"] - usage["ram"]["arena"])
    need = activation_bytes(model)
    if need > room:
        raise BudgetError(
            f"board '{baseline.board.id}': activations need about {need} bytes of RAM but {room} are left "
            f"for them (RAM {usage['ram_limit']}); low-rank factoring cannot reduce them"
        )


def board_limits(
    baseline: DeviceBaseline, kept: dict[str, dict[str, float]], latency: float | None
) -> tuple[dict[str, float], dict[str, float]]:
    """(limits, fixed) for `select`: the board's flash and RAM (and the latency budget in
    instructions) less what stays the same whatever the search picks.

    `kept` holds the cost vector of every searched layer kept whole; the parts of the original
    outside those layers (other layers, code, runtime, stack) are fixed.
    """
    usage = baseline.usage
    flash_fixed = usage["flash_bytes"] - sum(v["flash_bytes"] for v in kept.values())
    ram_room = usage["ram_limit"] - (usage["ram_bytes"] - usage["ram"]["arena"])
    limits = {"flash_bytes": float(usage["flash_limit"]), "ram_bytes": float(ram_room)}
    fixed = {"flash_bytes": float(flash_fixed), "ram_bytes": 0.0}
    if latency is not None:
        limits["instructions"] = float(latency)
        fixed["instructions"] = baseline.instructions - sum(v["instructions"] for v in kept.values())
    if flash_fixed > usage["flash_limit"]:
        raise BudgetError(
            f"board '{baseline.board.id}': the parts that cannot be factored already need "
            f"{flash_fixed:.0f} B of flash > {usage['flash_limit']} B"
        )
    return limits, fixed


def latency_instructions(
    baseline: DeviceBaseline, target_latency: float | None, max_latency_ms: float | None
) -> tuple[float | None, dict[str, Any]]:
    """The latency budget in predicted instructions, and how it was asked, for the report."""
    from toolchain.firmware.costmodel import CYCLES_PER_INSTRUCTION, latency_unit

    board = baseline.board
    if target_latency is not None:
        budget = target_latency * baseline.instructions
        return budget, {"target_latency": target_latency, "instructions": round(budget)}
    if max_latency_ms is None:
        return None, {}
    unit = latency_unit(board)
    counted = max_latency_ms * 1e-3 * board.clock_hz
    budget = counted if unit == "instructions" else counted / CYCLES_PER_INSTRUCTION
    return budget, {"max_latency_ms": max_latency_ms, unit: round(counted), "instructions": round(budget)}


def add_device_costs(
    table: dict[str, list[Any]], infos: dict[str, LayerInfo], device: DeviceCosts
) -> dict[str, str]:
    """Fill every candidate's device costs and drop those slower or bigger on this core than the
    layer kept whole; returns, per layer that lost every factored candidate, why it stays whole."""
    notes = {}
    for name, candidates in table.items():
        info = infos[name]
        for cand in candidates:
            for key, value in device.vector(info, cand.method, cand.ranks).items():
                setattr(cand, key, value)
        keep = next(c for c in candidates if c.method is None)
        worse = [c for c in candidates if c.method is not None and _worse_than(c, keep)]
        table[name] = [c for c in candidates if c not in worse]
        if worse and len(table[name]) == 1:
            notes[name] = _why_whole(worse, keep, device)
    return notes


def _worse_than(cand: Any, keep: Any) -> bool:
    """Slower than the layer kept whole, or bigger even as separate calls: a factored layer that
    is bigger only fused (two bytes a thin weight) is fused by codegen for its speed, and the
    budget counts it at that size."""
    return cand.instructions > keep.instructions or cand.flash_bytes_apart > keep.flash_bytes


def _why_whole(worse: list[Any], keep: Any, device: DeviceCosts) -> str:
    fastest = min(worse, key=lambda c: c.instructions)
    slower = fastest.instructions > keep.instructions
    what = "slower" if slower else "bigger"
    figures = (
        f"{fastest.instructions:,.0f} vs {keep.instructions:,.0f} predicted instructions"
        if slower
        else f"{fastest.flash_bytes_apart:,.0f} vs {keep.flash_bytes:,.0f} flash bytes"
    )
    return f"kept whole: every factored form is {what} on {device.board.id} ({figures} at best)"


def select_within(
    table: dict[str, list[Any]], limits: dict[str, float], fixed: dict[str, float]
) -> dict[str, Any]:
    """The candidate per layer with the least total error such that, for every limit,
    fixed + the sum (or, for RAM, the largest) of the chosen costs stays within it.

    Peak limits drop the candidates that exceed them; additive limits are met with one
    Lagrange multiplier on the sum of each cost over the room it has, then leftover room buys
    back error greedily.
    """
    table = {name: [c for c in cands if _fits_peaks(c, limits, fixed)] for name, cands in table.items()}
    empty = [name for name, cands in table.items() if not cands]
    if empty:
        raise BudgetError(
            f"layer '{empty[0]}' cannot fit the RAM left ({limits['ram_bytes']:.0f} B) in any form"
        )
    additive = {k: v for k, v in limits.items() if k in ADDITIVE}
    room = {k: max(v - fixed.get(k, 0.0), 1e-9) for k, v in additive.items()}

    def used(choice: dict[str, Any], kind: str) -> float:
        return fixed.get(kind, 0.0) + sum(c.cost(kind) for c in choice.values())

    def fits(choice: dict[str, Any]) -> bool:
        return all(used(choice, k) <= v * (1 + 1e-9) for k, v in additive.items())

    def pick(lam: float) -> dict[str, Any]:
        weight = lambda c: sum(c.cost(k) / room[k] for k in additive)  # noqa: E731
        return {
            name: min(cands, key=lambda c: (c.error + lam * weight(c), weight(c)))
            for name, cands in table.items()
        }

    cheapest = {
        name: min(cands, key=lambda c: sum(c.cost(k) / room[k] for k in additive))
        for name, cands in table.items()
    }
    if not fits(cheapest):
        over = [k for k in additive if used(cheapest, k) > additive[k]]
        raise BudgetError(
            "budget cannot be met: the smallest factored model needs "
            + ", ".join(f"{used(cheapest, k):,.0f} {k} > {additive[k]:,.0f}" for k in over)
        )
    if fits(pick(0.0)):
        return pick(0.0)
    lo, hi = -12.0, 12.0
    while not fits(pick(10.0**hi)):
        hi += 6.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(pick(10.0**mid)) else (mid, hi)
    return _spend_leftover(table, pick(10.0**hi), fits)


def _fits_peaks(cand: Any, limits: dict[str, float], fixed: dict[str, float]) -> bool:
    return all(fixed.get(k, 0.0) + cand.cost(k) <= limits[k] for k in PEAK if k in limits)


def _spend_leftover(table: dict[str, list[Any]], choice: dict[str, Any], fits) -> dict[str, Any]:
    """Upgrades with what the multiplier left unspent, the most error saved first."""
    while True:
        best = None
        for name, cands in table.items():
            for cand in cands:
                gain = choice[name].error - cand.error
                if gain > 0 and (best is None or gain > best[0]) and fits({**choice, name: cand}):
                    best = (gain, name, cand)
        if best is None:
            return choice
        choice[best[1]] = best[2]
