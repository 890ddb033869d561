"""Checking what `compress` is given before any work starts: options, data and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolchain.compress.layers import METHODS
from toolchain.data import Dataset, dataset_from_arrays, load_dataset
from toolchain.errors import DataError, UnsupportedError

LATENCY_TARGETS = ("target_latency", "max_latency_ms")


def to_dataset(data: Any) -> Dataset | None:
    """Accept a Dataset, a path to an .npz, or a dict of arrays (checked like a file)."""
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    if isinstance(data, dict):
        return dataset_from_arrays(data)
    raise DataError(f"data: expected a Dataset, an .npz path or a dict of arrays, got {type(data).__name__}")


def check_options(method, ranks, energy, vbmf, targets) -> None:
    """Refuse contradictory or out-of-range rank and budget options before any work."""
    if method not in (*METHODS, "auto", "narrow"):
        raise UnsupportedError(f"--method {method}: choose one of {', '.join((*METHODS, 'auto', 'narrow'))}")
    if energy is not None and not 0.0 < energy <= 1.0:
        raise UnsupportedError(f"--energy {energy}: must be in (0, 1]")
    if energy is not None and vbmf:
        raise UnsupportedError("--energy and --vbmf both choose ranks; give one")
    chosen = [k for k, v in targets.items() if v is not None and k != "board"]
    if len(chosen) > 1:
        raise UnsupportedError(f"give one budget, not {' and '.join(chosen)}")
    if targets.get("board") is None and any(targets.get(k) is not None for k in LATENCY_TARGETS):
        key = next(k for k in LATENCY_TARGETS if targets.get(k) is not None)
        raise UnsupportedError(
            f"--{key.replace('_', '-')} is measured on a board: add --board (e.g. qemu_m4)"
        )
    if targets.get("max_latency_ms") is not None and not targets["max_latency_ms"] > 0:
        raise UnsupportedError(f"--max-latency-ms {targets['max_latency_ms']}: must be above 0")
    if chosen == [] and targets.get("board") is not None:
        chosen = ["board"]
    for key in ("target_params", "target_macs", "target_latency"):
        value = targets.get(key)
        if value is not None and not 0.0 < value <= 1.0:
            raise UnsupportedError(f"--{key.replace('_', '-')} {value}: must be a fraction in (0, 1]")
    if chosen and (ranks or energy is not None or vbmf):
        raise UnsupportedError(
            f"--{chosen[0].replace('_', '-')} chooses the ranks itself; drop --ranks/--energy/--vbmf"
        )


def check_narrow_options(targets: dict, pareto: bool) -> None:
    """`--method narrow` keeps whole units to a parameter budget: refuse what it cannot honour."""
    others = [k for k, v in targets.items() if v is not None and k != "target_params"]
    if others or pareto:
        what = "--pareto" if pareto else f"--{others[0].replace('_', '-')}"
        raise UnsupportedError(f"--method narrow takes --target-params only, not {what}")
    if targets.get("target_params") is None:
        raise UnsupportedError("--method narrow needs --target-params (the fraction of parameters to keep)")


def check_model(model: Any) -> None:
    """Refuse a model whose weights hold NaN or Inf: nothing useful comes out of compressing it."""
    from toolchain.models import check_finite_weights

    check_finite_weights(model, f"model '{model.name}'")
