"""`model_info.json` is read back from disk, so it may have been edited by hand: check what is used.

Only the keys the build and the benchmark read are checked, with the types and ranges they
rely on; other keys pass through, so the file can grow without touching this module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _fail(path: Path, key: str, value: Any, expected: str) -> TinyrankError:
    return TinyrankError(
        f"{path}: key '{key}' is {str(value)[:60]!r}; expected {expected} (was the file edited?)"
    )


def _check_edge(path: Path, key: str, edge: Any) -> None:
    if not isinstance(edge, dict):
        raise _fail(path, key, edge, "an object with name, shape, size, scale and zero_point")
    shape, size = edge.get("shape"), edge.get("size")
    if not isinstance(shape, list) or not all(_is_int(d, 1, 1 << 26) for d in shape):
        raise _fail(path, f"{key}.shape", shape, "a list of positive integers")
    if not _is_int(size, 1, 1 << 26) or math.prod(shape) != size:
        raise _fail(path, f"{key}.size", size, f"the product of the shape, {math.prod(shape)}")
    scale = edge.get("scale")
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not (math.isfinite(scale) and scale > 0)
    ):
        raise _fail(path, f"{key}.scale", scale, "a positive finite number")
    if not _is_int(edge.get("zero_point"), -128, 127):
        raise _fail(path, f"{key}.zero_point", edge.get("zero_point"), "an integer in -128..127")
    if not isinstance(edge.get("name", ""), str):
        raise _fail(path, f"{key}.name", edge.get("name"), "a string")


def check_model_info(info: Any, path: Path) -> dict:
    """`info` if every key the build and bench use has a sane type and range; else a one-line error."""
    if not isinstance(info, dict):
        raise TinyrankError(f"{path}: expected a JSON object, found {type(info).__name__}")
    for key in ("arena_bytes", "weights_bytes"):
        if not _is_int(info.get(key), 0, 1 << 31):
            raise _fail(path, key, info.get(key), "a byte count (0..2^31)")
    if "model_hash32" in info and not _is_int(info["model_hash32"], 0, 2**32 - 1):
        raise _fail(path, "model_hash32", info["model_hash32"], "an unsigned 32-bit integer")
    if not isinstance(info.get("ops"), list) or not all(isinstance(op, dict) for op in info["ops"]):
        raise _fail(path, "ops", info.get("ops"), "a list of objects")
    for key in ("inputs", "outputs"):
        if key in info:
            edges = info[key]
            if not isinstance(edges, list) or not edges:
                raise _fail(path, key, edges, "a non-empty list")
            for i, edge in enumerate(edges):
                _check_edge(path, f"{key}[{i}]", edge)
    for key in ("prefix", "tflite", "tflite_path", "model_sha256"):
        if key in info and not isinstance(info[key], str):
            raise _fail(path, key, info[key], "a string")
    if "prefix" in info:
        from toolchain.codegen import check_prefix

        try:
            check_prefix(info["prefix"])
        except TinyrankError:
            raise _fail(
                path, "prefix", info["prefix"], "a lower-case C identifier of 1..16 characters"
            ) from None
    return info
