"""Fine-tuning, the small-dense baseline and the Pareto sweep, as the compress stage runs them.

Every compressed model is set beside the same-size dense model trained from scratch
(`baseline`), since that is what a user would otherwise do; the sweep does so at each budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolchain.data import Dataset


@dataclass(frozen=True)
class Tuning:
    """How factored models (and baselines) are trained: the compress options of that name."""

    epochs: int
    distill: bool | None = None
    qat: bool = True
    batch_size: int = 32
    learning_rate: float | None = None
    seed: int = 0
    verbose: int = 0


def evaluate_on(model: Any, dataset: Dataset) -> tuple[str, float]:
    """(metric, value) on the test split (or the training split when there is none)."""
    from toolchain.compress.finetune import evaluate

    return evaluate(model, dataset.eval_x, dataset.eval_y)


def tune(model: Any, teacher: Any, dataset: Dataset, tuning: Tuning, factored: bool = True) -> dict:
    """Fine-tune a factored model in place; a model identical to the original is left as it is."""
    from toolchain.compress.finetune import finetune

    if not factored:  # nothing was approximated: training can only move it off its own optimum
        return {"epochs_run": 0, "skipped": "no layer was factored: the model is the original"}
    return finetune(
        model,
        teacher,
        dataset.x_train,
        dataset.y_train,
        epochs=tuning.epochs,
        distill=tuning.distill,
        qat=tuning.qat,
        seed=tuning.seed,
        verbose=tuning.verbose,
        batch_size=tuning.batch_size,
        learning_rate=tuning.learning_rate,
    )


def baseline_for(model: Any, params: int, dataset: Dataset, tuning: Tuning) -> tuple[Any, dict]:
    """(model, report): the same design with at most `params` parameters, trained from scratch, measured."""
    from toolchain.compress.baseline import train_baseline
    from toolchain.compress.pipeline import DEFAULT_FINETUNE_EPOCHS

    small, info = train_baseline(
        model,
        params,
        dataset.x_train,
        dataset.y_train,
        epochs=tuning.epochs or DEFAULT_FINETUNE_EPOCHS,
        qat=tuning.qat,
        batch_size=tuning.batch_size,
        seed=tuning.seed,
    )
    metric, value = evaluate_on(small, dataset)
    info[metric] = value
    return small, info


def pareto_sweep(
    model: Any,
    dataset: Dataset,
    build_at: Callable[[float], tuple[Any, dict, dict]],
    fractions: tuple[float, ...],
    tuning: Tuning,
) -> list[dict]:
    """Per parameter budget: the factored model's score before and after fine-tuning, and the baseline's.

    `build_at(fraction)` gives (factored model, ranks per layer, extra entries for the point).
    """
    from toolchain.compress.pipeline import model_cost
    from toolchain.errors import BudgetError

    points = []
    for fraction in fractions:
        try:
            candidate, ranks, extra = build_at(fraction)
        except BudgetError:
            continue
        params = model_cost(candidate)["params"]
        point = {
            "target_params": fraction,
            "params": params,
            "ranks": ranks,
            "factored": evaluate_on(candidate, dataset)[1],
            **extra,
        }
        if tuning.epochs > 0:
            tune(candidate, model, dataset, tuning, factored=bool(ranks))
            point["finetuned"] = evaluate_on(candidate, dataset)[1]
        _, base = baseline_for(model, params, dataset, tuning)
        point["baseline"] = base[evaluate_on(candidate, dataset)[0]]
        point["baseline_params"] = base["params"]
        points.append(point)
    return points
