"""The one budget model: predicted flash and RAM of a board's firmware, and the check against its limits.

`build`, `compress --board` and `deploy` all ask this module, so the figures a user sees
before building are the ones the build checks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from toolchain.errors import BudgetError
from toolchain.firmware.boards import Board, load_board
from toolchain.firmware.compile import cross_compile
from toolchain.firmware.project import HEAP_BYTES, _model_files, read_model_info

_C_TYPE_BYTES = {
    "int8_t": 1,
    "uint8_t": 1,
    "int16_t": 2,
    "uint16_t": 2,
    "int32_t": 4,
    "uint32_t": 4,
    "float": 4,
    "int64_t": 8,
}
_WEIGHT_ARRAY = re.compile(r"^const\s+(\w+)\s+(\w+)((?:\[\d+\])+)", re.MULTILINE)


def _largest_weights(model_dir: Path) -> list[dict]:
    """Constant arrays defined in model_weights.c with their sizes, largest first."""
    path = model_dir / "model_weights.c"
    if not path.is_file():
        return []
    entries = []
    for c_type, name, dims in _WEIGHT_ARRAY.findall(path.read_text(encoding="utf-8", errors="replace")):
        shape = [int(d) for d in re.findall(r"\d+", dims)]
        count = 1
        for d in shape:
            count *= d
        entries.append({"name": name, "shape": shape, "bytes": count * _C_TYPE_BYTES.get(c_type, 4)})
    return sorted(entries, key=lambda e: -e["bytes"])


def _largest_activations(model_dir: Path, info: dict) -> list[dict]:
    """Non-constant tensors of the .tflite (next to the model folder), largest first.

    Without the .tflite, the model's inputs and outputs from model_info.json stand in.
    """
    name = info.get("tflite", "model.tflite")
    candidates = [model_dir / name, model_dir.parent / name]
    tflite_path = next((p for p in candidates if p.is_file()), None)
    if tflite_path is None:
        edges = info.get("inputs", []) + info.get("outputs", [])
        return sorted(
            (
                {"name": e.get("name", "?"), "shape": e.get("shape", []), "bytes": e.get("size", 0)}
                for e in edges
            ),
            key=lambda e: -e["bytes"],
        )
    from tflite.Model import Model

    itemsize = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}  # TensorType -> bytes
    model = Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    entries = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            if buffer is not None and buffer.DataLength() > 0:
                continue  # a constant: counted with the weights
            shape = [int(tensor.Shape(i)) for i in range(tensor.ShapeLength())]
            count = 1
            for d in shape:
                count *= max(d, 1)
            entries.append(
                {
                    "name": tensor.Name().decode("utf-8", "replace"),
                    "shape": shape,
                    "bytes": count * itemsize.get(tensor.Type(), 4),
                }
            )
    return sorted(entries, key=lambda e: -e["bytes"])


def _describe(entries: list[dict], count: int = 3) -> str:
    return ", ".join(f"'{e['name']}' {e['shape']} {e['bytes']} B" for e in entries[:count]) or "n/a"


def predict_usage(model_dir: str | os.PathLike, board: Board | str) -> dict:
    """Predicted flash and RAM of the firmware, by part, before PlatformIO runs.

    Code size is measured, not guessed: the model's sources other than the weights are
    compiled for the board's core; the weights are `weights_bytes` of model_info.json.
    """
    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    sources, _ = _model_files(model_dir)
    code_sources = [p for p in sources if p.name != "model_weights.c"]
    objects = cross_compile(model_dir, board, sources=code_sources, werror=False)["objects"]
    code_bytes = sum(o["text"] + o["data"] for o in objects.values())
    model_static_ram = sum(o["data"] + o["bss"] for o in objects.values())
    arena_bytes = int(info["arena_bytes"])
    flash = {
        "weights": int(info["weights_bytes"]),
        "model_code": code_bytes,
        "runtime": board.runtime_flash_bytes,
    }
    # The arena is a static array of model.c when codegen puts it there; count it once.
    ram = {
        "arena_and_model": max(arena_bytes, model_static_ram),
        "stack": board.stack_bytes,
        "runtime": board.runtime_ram_bytes,
        "heap": HEAP_BYTES,
    }
    return {
        "board": board.id,
        "flash": flash,
        "flash_bytes": sum(flash.values()),
        "flash_limit": board.flash_bytes,
        "ram": ram,
        "ram_bytes": sum(ram.values()),
        "ram_limit": board.ram_bytes,
        "static_ram_bytes": ram["arena_and_model"] + ram["runtime"],
    }


def check_budget(model_dir: str | os.PathLike, board: Board | str) -> dict:
    """The predicted usage (see `predict_usage`); raises BudgetError if it cannot fit the board."""
    board = load_board(board)
    usage = predict_usage(model_dir, board)
    over = [kind for kind in ("flash", "ram") if usage[f"{kind}_bytes"] > usage[f"{kind}_limit"]]
    if not over:
        return usage
    info = read_model_info(model_dir)
    weights, activations = _largest_weights(Path(model_dir)), _largest_activations(Path(model_dir), info)
    totals = "; ".join(
        f"{kind}: needs {usage[f'{kind}_bytes']} B ("
        + ", ".join(f"{part} {size}" for part, size in usage[kind].items())
        + f") > {usage[f'{kind}_limit']} B"
        for kind in over
    )
    factor = max(usage[f"{k}_bytes"] / usage[f"{k}_limit"] for k in over)
    raise BudgetError(
        f"model {model_dir} does not fit board '{board.id}' ({board.name}): {totals}; "
        f"largest weights: {_describe(weights)}; largest tensors: {_describe(activations)}; "
        f"shrink it about {factor:.1f}x, e.g. `tinyrank compress MODEL.keras --board {board.id}`"
    )
