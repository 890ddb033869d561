"""Choosing a layer's rank: given explicitly, by kept energy, or by VBMF; and `auto`.

Energy and VBMF look at singular values of the matrix each method factors: the kernel
matrix for svd/semi-NMF, the (kh*C) x (kw*N) matrix for spatial SVD, and the two channel
unfoldings for Tucker-2 (Kim et al. 2016). CP has no such spectrum; it takes the larger of
the two Tucker ranks, which keeps about the same energy per channel mode.
"""

from __future__ import annotations

import math
from typing import Any

from toolchain.compress import conv
from toolchain.compress.layers import (
    LayerInfo,
    chain_cost,
    check_ranks,
    factorize,
    method_for,
    rank_limits,
)
from toolchain.compress.matrix import energy_rank, singular_values, vbmf_rank
from toolchain.errors import TinyrankError, UnsupportedError

Ranks = tuple[int, ...]


def parse_ranks(text: str) -> dict[str, Ranks]:
    """`dense_1=32,conv2d_3=16:16` -> {"dense_1": (32,), "conv2d_3": (16, 16)}."""
    ranks: dict[str, Ranks] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            values = tuple(int(v) for v in value.split(":"))
        except ValueError:
            values = ()
        if not sep or not name.strip() or not values or len(values) > 2:
            raise UnsupportedError(f"--ranks: '{item}' is not LAYER=R or LAYER=R1:R2")
        for r in values:
            if r <= 0:
                raise UnsupportedError(f"--ranks: layer '{name.strip()}': rank {r} must be at least 1")
        ranks[name.strip()] = values
    return ranks


def _spectrum_rank(matrix: Any, energy: float | None, vbmf: bool) -> int:
    if vbmf:
        return vbmf_rank(matrix)
    if energy is None:
        raise TinyrankError("a rank rule needs an energy threshold (--energy) or --vbmf")
    return energy_rank(singular_values(matrix), energy)


def rule_ranks(info: LayerInfo, method: str, energy: float | None, vbmf: bool) -> Ranks:
    """Ranks from the energy or VBMF rule for `method` on this layer."""
    if method in ("svd", "seminmf"):
        return (_spectrum_rank(info.matrix, energy, vbmf),)
    if method == "spatial":
        return (_spectrum_rank(conv.spatial_matrix(info.kernel), energy, vbmf),)
    r_in = _spectrum_rank(conv.mode_matrix(info.kernel, 2), energy, vbmf)
    r_out = _spectrum_rank(conv.mode_matrix(info.kernel, 3), energy, vbmf)
    if method == "tucker":
        return (r_in, r_out)
    return (min(max(r_in, r_out), rank_limits(info, "cp")[0]),)


def largest_ranks_within(info: LayerInfo, method: str, params: int) -> Ranks | None:
    """The largest ranks of `method` whose layers hold at most `params` parameters."""
    limits = rank_limits(info, method)
    best: Ranks | None = None
    if len(limits) == 1:
        for r in range(1, limits[0] + 1):
            if chain_cost(info, method, (r,))[0] > params:
                break
            best = (r,)
        return best
    steps = 64
    for i in range(1, steps + 1):  # Tucker: grow both ranks in proportion to their limits
        ranks = tuple(max(1, math.ceil(top * i / steps)) for top in limits)
        if chain_cost(info, method, ranks)[0] > params:
            break
        best = ranks
    return best


def auto_choice(info: LayerInfo, reference: tuple[str, Ranks], seed: int = 0):
    """Among the methods for this layer kind, the one with the least error at the
    parameter count of the reference choice (the rank rule applied to Tucker or SVD)."""
    ref_method, ref_ranks = reference
    check_ranks(info, ref_method, ref_ranks)
    budget = chain_cost(info, ref_method, ref_ranks)[0]
    methods = ("svd",) if info.kind in ("dense", "pointwise") else ("tucker", "cp", "spatial")
    best = None
    tried = {}
    for method in methods:
        ranks = ref_ranks if method == ref_method else largest_ranks_within(info, method, budget)
        if ranks is None:
            continue
        result = factorize(info, method, ranks, seed=seed)
        tried[method] = {"ranks": list(ranks), "rel_error": result.rel_error, "params": result.params}
        if best is None or result.rel_error < best.rel_error:
            best = result
    if best is None:
        raise TinyrankError(f"layer '{info.name}': no factorization fits {budget} parameters")
    best.extra["auto_candidates"] = tried
    return best


def reference_method(info: LayerInfo, method: str, explicit: Ranks | None) -> str | None:
    """The method a rank rule (or explicit ranks) is read for when method is `auto`."""
    if method != "auto":
        return method_for(info, method)
    if info.kind in ("dense", "pointwise"):
        return "svd"
    return "spatial" if explicit is not None and len(explicit) == 1 else "tucker"
