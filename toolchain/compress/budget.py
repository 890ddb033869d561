"""Per-layer ranks that minimize the model's output error within a size budget.

Each candidate (a layer, a method, a rank) is scored by the relative output error of the
whole model on calibration samples when only that layer uses the approximated kernel: a
factored layer computes exactly its approximated kernel, so this is measured by swapping
the kernel into a copy of the model, without building factored models. Errors of
different layers are treated as additive and the choice is made with a Lagrange
multiplier: each layer takes the candidate minimizing `error + lam * cost`, and `lam` is
the smallest that meets the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolchain.compress import conv
from toolchain.compress.layers import LayerInfo, chain_cost, factorize, method_for, rank_limits
from toolchain.errors import BudgetError

CALIBRATION_SAMPLES = 256
CP_SEARCH_POINTS = 4  # CP-ALS is by far the slowest decomposition: fewer and lower ranks
CP_SEARCH_MAX_RANK = 48
COSTS = ("params", "macs", "bytes")


def int8_bytes(params: int, bias_params: int) -> int:
    """Estimated flash bytes of int8 weights: 1 byte a weight, 4 bytes an int32 bias."""
    return int(params - bias_params + 4 * bias_params)


def layer_cost(info: LayerInfo, kind: str) -> int:
    """A layer's size as it stands, in one of the budget units (`COSTS`)."""
    return {"params": info.params, "macs": info.macs, "bytes": int8_bytes(info.params, info.bias_params)}[
        kind
    ]


@dataclass
class Candidate:
    method: str | None  # None: keep the layer as it is
    ranks: tuple[int, ...]
    error: float
    params: int
    macs: int
    bytes: int
    # On-device costs, filled by `toolchain.compress.costs.add_device_costs` when a board is given.
    flash_bytes: float = 0.0
    flash_bytes_apart: float = 0.0  # its steps as separate calls, int8 (costs.flash_bytes_apart)
    ram_bytes: float = 0.0
    instructions: float = 0.0
    # The approximated kernel, swapped into the model by the joint search (keyword only).
    kernel: np.ndarray | None = field(default=None, repr=False, compare=False, kw_only=True)

    def cost(self, kind: str) -> int:
        return getattr(self, kind)


def rank_grid(info: LayerInfo, method: str, points: int) -> list[tuple[int, ...]]:
    """Ranks spread geometrically from 1 up to the largest that still saves parameters."""
    limits = rank_limits(info, method)
    grid = []
    for t in np.geomspace(1.0 / max(limits), 1.0, points * 3):
        ranks = tuple(max(1, math.ceil(top * t)) for top in limits)
        if chain_cost(info, method, ranks)[0] < info.params and ranks not in grid:
            grid.append(ranks)
    if len(grid) > points:
        keep = np.unique(np.round(np.linspace(0, len(grid) - 1, points)).astype(int))
        grid = [grid[i] for i in keep]
    return grid


def _flat_outputs(model: Any, x: Any) -> np.ndarray:
    out = model(x, training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return np.concatenate([np.asarray(o, dtype=np.float64).reshape(len(x), -1) for o in outs], axis=1)


def candidate_table(
    model: Any,
    infos: list[LayerInfo],
    methods: dict[str, list[str]],
    x_calib: np.ndarray,
    points: int = 10,
    seed: int = 0,
) -> dict[str, list[Candidate]]:
    """Every layer's candidates with their measured output error (plus 'keep as is').

    BLAS runs on one thread here: the matrices are small, and on a busy machine a BLAS
    thread pool fighting for the cores made each SVD 25x slower.
    """
    import keras
    from threadpoolctl import threadpool_limits

    work = keras.models.clone_model(model)
    work.set_weights(model.get_weights())
    x = x_calib[:CALIBRATION_SAMPLES]
    reference = _flat_outputs(work, x)
    norm = float(np.sum(reference**2)) or 1.0
    table: dict[str, list[Candidate]] = {}
    for info in infos:
        layer = work.get_layer(info.name)
        original = layer.get_weights()
        keep = Candidate(None, (), 0.0, *(layer_cost(info, kind) for kind in COSTS))
        table[info.name] = [keep]
        for method in methods[info.name]:
            with threadpool_limits(limits=1, user_api="blas"):
                approximations = list(_approximations(info, method, points, seed))
            for ranks, approx, params, macs in approximations:
                layer.set_weights([approx, *original[1:]])
                error = float(np.sum((_flat_outputs(work, x) - reference) ** 2)) / norm
                table[info.name].append(
                    Candidate(
                        method,
                        ranks,
                        error,
                        params,
                        macs,
                        int8_bytes(params, info.bias_params),
                        kernel=approx,
                    )
                )
        layer.set_weights(original)
    return table


def _approximations(info: LayerInfo, method: str, points: int, seed: int):
    """(ranks, approximated kernel, params, MACs) for the rank grid of one layer and method.

    Truncated SVDs of one matrix share one decomposition, so svd candidates cost one SVD;
    Tucker candidates are truncated HOSVDs (two SVDs for all ranks): close enough to rank
    candidates, and the chosen ranks get the full HOOI refinement when the model is built.
    """
    if method == "cp":
        grid = [r for r in rank_grid(info, method, CP_SEARCH_POINTS) if r[0] <= CP_SEARCH_MAX_RANK]
    else:
        grid = rank_grid(info, method, points)
    if method == "tucker":
        u_in = np.linalg.svd(conv.mode_matrix(info.kernel.astype(np.float64), 2), full_matrices=False)[0]
        u_out = np.linalg.svd(conv.mode_matrix(info.kernel.astype(np.float64), 3), full_matrices=False)[0]
        for ranks in grid:
            p_in = u_in[:, : ranks[0]] @ u_in[:, : ranks[0]].T
            p_out = u_out[:, : ranks[1]] @ u_out[:, : ranks[1]].T
            approx = np.einsum("hwcn,cd,ne->hwde", info.kernel.astype(np.float64), p_in, p_out)
            yield (ranks, approx.astype(np.float32), *chain_cost(info, method, ranks))
        return
    if method == "svd":
        u, s, vt = np.linalg.svd(info.matrix.astype(np.float64), full_matrices=False)
        for ranks in grid:
            r = ranks[0]
            approx = ((u[:, :r] * s[:r]) @ vt[:r]).reshape(info.kernel.shape).astype(np.float32)
            yield (ranks, approx, *chain_cost(info, method, ranks))
        return
    for ranks in grid:
        result = factorize(info, method, ranks, seed=seed, search=True)
        yield ranks, result.approx_kernel, result.params, result.macs


def select(table: dict[str, list[Candidate]], kind: str, budget: float, fixed: float) -> dict[str, Candidate]:
    """The candidate per layer minimizing total error with `fixed + sum(cost) <= budget`."""

    def pick(lam: float) -> dict[str, Candidate]:
        return {
            name: min(cands, key=lambda c: (c.error + lam * c.cost(kind), c.cost(kind)))
            for name, cands in table.items()
        }

    def total(choice: dict[str, Candidate]) -> float:
        return fixed + sum(c.cost(kind) for c in choice.values())

    cheapest = fixed + sum(min(c.cost(kind) for c in cands) for cands in table.values())
    if cheapest > budget:
        raise BudgetError(
            f"budget of {budget:.0f} {kind} cannot be met: the smallest factored model has {cheapest:.0f} "
            f"(layers that cannot be factored hold {fixed:.0f})"
        )
    if total(pick(0.0)) <= budget:
        return pick(0.0)
    scale = 1.0 / max(max(c.cost(kind) for c in cands) for cands in table.values())
    lo, hi = -12.0, 12.0  # log10 of lam * max cost
    while total(pick(10.0**hi * scale)) > budget:
        hi += 6.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if total(pick(10.0**mid * scale)) <= budget:
            hi = mid
        else:
            lo = mid
    choice = pick(10.0**hi * scale)
    return _spend_leftover(table, choice, kind, budget, total(choice))


def _spend_leftover(table, choice, kind, budget, used):
    """Greedy upgrades with what the multiplier left unspent (most error saved per unit first)."""
    improved = True
    while improved:
        improved = False
        best = None
        for name, cands in table.items():
            current = choice[name]
            for cand in cands:
                extra = cand.cost(kind) - current.cost(kind)
                gain = current.error - cand.error
                if gain > 0 and used + extra <= budget:
                    score = gain / max(extra, 1)
                    if best is None or score > best[0]:
                        best = (score, name, cand, extra)
        if best is not None:
            _, name, cand, extra = best
            choice[name] = cand
            used += extra
            improved = True
    return choice


def layer_methods(infos: list[LayerInfo], method: str) -> dict[str, list[str]]:
    """Methods the search may use on each layer."""
    result = {}
    for info in infos:
        if method == "auto":
            result[info.name] = (
                ["svd"] if info.kind in ("dense", "pointwise") else ["tucker", "cp", "spatial"]
            )
        else:
            chosen = method_for(info, method)
            result[info.name] = [chosen] if chosen is not None else []
    return result
