"""Choosing every layer's rank together, measuring the whole model as ranks are lowered.

A layer's error measured alone says little about the model: errors of successive layers
compound, and a layer squeezed to a few channels (64 inputs through rank 3) starves every
layer after it, so adding up errors measured one layer at a time lets the budget crush one
layer. Here every step is measured on the whole model, all chosen approximations at once
(kernels swapped into one copy of the model, no rebuilding):

1. descent: start from the model as it is and, until every limit is met, lower the rank of
   the layer whose next cheaper candidate adds the least whole-model error per unit of
   size saved;
2. leftover: spend what the last step left unused on the upgrades that remove the most
   error per unit of size;
3. repair: try moving size from one layer to another (one layer up, another down) while
   that lowers the whole-model error, layers that are bottlenecks first.

4. trained repair (`trained_search.trained_repair`, when the chosen model starts far from the
   original and will be fine-tuned).

A rank far below its neighbours' widths (`BOTTLENECK_RATIO`) is kept only when the repair
measured that lifting it does not help; the report lists each such layer and what was
measured. The neighbours are the layers beside it in the model, those that cannot be factored
included: a pointwise convolution of a depthwise-separable block sits between two 64-channel
depthwise ones, and its rank is a bottleneck against them, not against the next pointwise.

Sizes come from `Candidate.cost(kind)` for every kind in `limits`, so several limits
(parameters, flash, RAM, instructions) apply at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolchain.compress.budget import CALIBRATION_SAMPLES, Candidate
from toolchain.errors import BudgetError

BOTTLENECK_RATIO = 0.25  # a width below a quarter of both neighbours' is a bottleneck
NEXT_CANDIDATES = 3  # cheaper candidates of a layer tried per descent step
REPAIR_ROUNDS = 12


@dataclass
class SearchResult:
    choice: dict[str, Candidate]
    joint_error: float  # whole-model relative output error with every chosen approximation
    in_combination: dict[str, float]  # per layer: joint error minus joint error with that layer exact
    bottlenecks: list[dict] = field(default_factory=list)
    evaluations: int = 0
    repairs: int = 0


class _JointError:
    """Whole-model output error of a choice, measured by swapping kernels into one model copy."""

    def __init__(self, model: Any, table: dict[str, list[Candidate]], x_calib: np.ndarray) -> None:
        import keras

        self.work = keras.models.clone_model(model)
        self.work.set_weights(model.get_weights())
        self.x = x_calib[:CALIBRATION_SAMPLES]
        self.original = {name: self.work.get_layer(name).get_weights() for name in table}
        self.current: dict[str, int] = {name: id(None) for name in table}
        self.reference = self._outputs()
        self.norm = float(np.sum(self.reference**2)) or 1.0
        self.cache: dict[tuple, float] = {}
        self.evaluations = 0

    def _outputs(self) -> np.ndarray:
        out = self.work(self.x, training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return np.concatenate([np.asarray(o, np.float64).reshape(len(self.x), -1) for o in outs], axis=1)

    def __call__(self, choice: dict[str, Candidate]) -> float:
        key = tuple(id(choice[name]) for name in sorted(choice))
        if key not in self.cache:
            for name, cand in choice.items():
                if self.current[name] != id(cand):
                    weights = self.original[name]
                    kernel = weights[0] if cand.kernel is None else cand.kernel
                    self.work.get_layer(name).set_weights([kernel, *weights[1:]])
                    self.current[name] = id(cand)
            error = float(np.sum((self._outputs() - self.reference) ** 2)) / self.norm
            self.cache[key] = error if np.isfinite(error) else float("inf")
            self.evaluations += 1
        return self.cache[key]


def _sizes(choice: dict[str, Candidate], limits: dict[str, float], fixed: dict[str, float]) -> dict:
    return {kind: fixed.get(kind, 0.0) + sum(c.cost(kind) for c in choice.values()) for kind in limits}


def overage(choice, limits, fixed) -> float:
    """How far past the limits a choice is, each limit counted relative to itself (0: fits)."""
    sizes = _sizes(choice, limits, fixed)
    return sum(max(0.0, sizes[k] - limits[k]) / max(limits[k], 1.0) for k in limits)


def candidate_size(cand: Candidate, limits: dict[str, float]) -> float:
    """One number for a candidate's size: its share of every limit, summed."""
    return sum(cand.cost(kind) / max(limits[kind], 1.0) for kind in limits)


def joint_search(
    model: Any,
    table: dict[str, list[Candidate]],
    limits: dict[str, float],
    fixed: dict[str, float],
    x_calib: np.ndarray,
    widths: dict[str, Width] | None = None,
) -> SearchResult:
    """The candidate per layer with the least whole-model error within every limit.

    `widths` gives every layer with weights (in `table` or not) its `Width`, in model order,
    for the bottleneck check; None skips that check.
    """
    cheapest = {name: min(cands, key=lambda c: candidate_size(c, limits)) for name, cands in table.items()}
    if overage(cheapest, limits, fixed) > 0:
        sizes = _sizes(cheapest, limits, fixed)
        kind = next(k for k in limits if sizes[k] > limits[k])
        raise BudgetError(
            f"budget of {limits[kind]:.0f} {kind} cannot be met: the smallest factored model has "
            f"{sizes[kind]:.0f} (layers that cannot be factored hold {fixed.get(kind, 0):.0f})"
        )
    measure = _JointError(model, table, x_calib)
    choice = {name: next(c for c in cands if c.method is None) for name, cands in table.items()}
    choice = _descend(choice, table, limits, fixed, measure)
    choice = _spend_leftover(choice, table, limits, fixed, measure)
    choice, repairs = _repair(choice, table, limits, fixed, measure, _bottlenecks(choice, widths))
    joint, in_combination = _in_combination(measure, choice, table)
    bottlenecks = bottleneck_rows(choice, widths, "lifting it did not lower the measured whole-model error")
    return SearchResult(choice, joint, in_combination, bottlenecks, measure.evaluations, repairs)


def bottleneck_rows(choice: dict[str, Candidate], widths: dict[str, Width] | None, why: str) -> list[dict]:
    """The report's rows for the bottlenecks of `choice`, with why each stays."""
    return [
        {
            "layer": name,
            "width": width_of(choice[name], (widths or {})[name]),
            "neighbour_widths": neighbours,
            "kept_because": why,
        }
        for name, neighbours in _bottlenecks(choice, widths).items()
    ]


def _in_combination(measure: _JointError, choice, table) -> tuple[float, dict[str, float]]:
    """The joint error, and per layer how much of it goes when that layer alone is exact."""
    joint = measure(choice)
    in_combination = {}
    for name in table:
        exact = dict(choice, **{name: next(c for c in table[name] if c.method is None)})
        in_combination[name] = joint - measure(exact)
    return joint, in_combination


def measure_choice(model: Any, table: dict[str, list[Candidate]], x_calib: np.ndarray, choice) -> tuple:
    """(joint error, per-layer error alone, per-layer error in combination) of a choice the search
    did not end on (its candidates carry their approximated kernels)."""
    measure = _JointError(model, table, x_calib)
    exact = {name: next(c for c in table[name] if c.method is None) for name in table}
    alone = {name: measure(dict(exact, **{name: choice[name]})) for name in table}
    return (*_in_combination(measure, choice, table), alone)


def _descend(choice, table, limits, fixed, measure) -> dict[str, Candidate]:
    while overage(choice, limits, fixed) > 0:
        error = measure(choice)
        best = None
        for name, cands in table.items():
            current = candidate_size(choice[name], limits)
            cheaper = sorted(
                (c for c in cands if candidate_size(c, limits) < current),
                key=lambda c: -candidate_size(c, limits),
            )
            for cand in cheaper[:NEXT_CANDIDATES]:
                trial = dict(choice, **{name: cand})
                score = (measure(trial) - error) / (current - candidate_size(cand, limits))
                if best is None or score < best[0]:
                    best = (score, name, cand)
        if best is None:
            break
        choice = dict(choice, **{best[1]: best[2]})
    return choice


def _spend_leftover(choice, table, limits, fixed, measure) -> dict[str, Candidate]:
    while True:
        error = measure(choice)
        best = None
        for name, cands in table.items():
            current = candidate_size(choice[name], limits)
            for cand in cands:
                extra = candidate_size(cand, limits) - current
                trial = dict(choice, **{name: cand})
                if extra <= 0 or overage(trial, limits, fixed) > 0:
                    continue
                gain = error - measure(trial)
                if gain > 0 and (best is None or gain / extra > best[0]):
                    best = (gain / extra, name, cand)
        if best is None:
            return choice
        choice = dict(choice, **{best[1]: best[2]})


def _repair(choice, table, limits, fixed, measure, first: dict) -> tuple[dict[str, Candidate], int]:
    """Move size between two layers while that lowers the whole-model error."""
    repairs = 0
    for _ in range(REPAIR_ROUNDS):
        error = measure(choice)
        best = None
        names = sorted(table, key=lambda n: n not in first)
        for up in names:
            bigger = sorted(
                (c for c in table[up] if candidate_size(c, limits) > candidate_size(choice[up], limits)),
                key=lambda c: candidate_size(c, limits),
            )[:NEXT_CANDIDATES]
            for raised in bigger:
                for down in table:
                    if down == up:
                        continue
                    trial = _smallest_downgrade(dict(choice, **{up: raised}), down, table, limits, fixed)
                    if trial is None:
                        continue
                    trial_error = measure(trial)
                    if trial_error < error * (1 - 1e-6) and (best is None or trial_error < best[0]):
                        best = (trial_error, trial)
        if best is None:
            break
        choice = _spend_leftover(best[1], table, limits, fixed, measure)
        repairs += 1
    return choice, repairs


def _smallest_downgrade(choice, name, table, limits, fixed) -> dict[str, Candidate] | None:
    """`choice` with layer `name` lowered just enough to fit every limit (None: it cannot be)."""
    current = candidate_size(choice[name], limits)
    for cand in sorted(table[name], key=lambda c: -candidate_size(c, limits)):
        if candidate_size(cand, limits) < current:
            trial = dict(choice, **{name: cand})
            if overage(trial, limits, fixed) == 0:
                return trial
    return None


@dataclass
class Width:
    """How wide a layer with weights is, for the bottleneck check.

    `full` is the rank the layer has kept whole (min of its inputs and outputs; a depthwise
    convolution's channels); `tops` gives, per factoring method, each factor's largest rank,
    since a factor at its largest narrows nothing (Tucker-2's input rank 1 on a one-channel
    first convolution)."""

    full: int
    tops: dict[str, tuple[int, ...]] = field(default_factory=dict)


def width_of(cand: Candidate | None, width: Width) -> int:
    """How many numbers per position pass through the layer as `cand` factors it."""
    if cand is None or cand.method is None:
        return width.full
    tops = width.tops.get(cand.method, ())
    narrowed = [r for i, r in enumerate(cand.ranks) if i >= len(tops) or r < tops[i]]
    return min((*narrowed, width.full))


def _bottlenecks(choice, widths: dict[str, Width] | None) -> dict[str, list[int]]:
    """Factored layers whose width is below BOTTLENECK_RATIO of both neighbours' in model order
    (`widths` lists every layer with weights, those outside `choice` at their full width). A
    layer kept whole is the designer's width (a first convolution on one input channel has
    width 1), so it is never reported as one."""
    if not widths:
        return {}
    order = list(widths)
    chosen = [width_of(choice.get(name), widths[name]) for name in order]
    found = {}
    for i, name in enumerate(order):
        if name not in choice or choice[name].method is None:
            continue
        neighbours = [chosen[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]
        if neighbours and all(chosen[i] < BOTTLENECK_RATIO * n for n in neighbours):
            found[name] = neighbours
    return found
