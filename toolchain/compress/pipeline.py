"""`compress(model, data, ...)`: the compress stage from a Keras model to a factored one.

Order of work: check the options and data, fold batch norms, describe every layer, choose
a method and ranks per layer (explicit, energy, VBMF or a budget search), build the
factored model, measure it, fine-tune it, measure it again, and say all of it in a report.
The input model is never changed: every step builds a new model.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from toolchain.compress import budget as budget_search
from toolchain.compress.graph import call_count, fold_batchnorms, rebuild
from toolchain.compress.inputs import check_model, check_narrow_options, check_options, to_dataset
from toolchain.compress.layers import Factorization, describe_layer
from toolchain.compress.narrow import can_narrow, narrow_hint
from toolchain.compress.narrow_report import chosen_over, comparison, held_out_better, narrowed
from toolchain.compress.plan import (
    check_explicit_layers,
    describe_model,
    layer_rows,
    plan_by_budget,
    plan_by_rule,
)
from toolchain.compress.ranks import parse_ranks
from toolchain.compress.sweep import Tuning, baseline_for, evaluate_on, pareto_sweep, tune
from toolchain.compress.unlabeled import NOTE as TEACHER_NOTE
from toolchain.compress.unlabeled import label_with_teacher, needs_teacher_labels
from toolchain.data import Dataset, check_input_shape, check_labels
from toolchain.errors import DataError, UnsupportedError

DEFAULT_ENERGY = 0.95
DEFAULT_FINETUNE_EPOCHS = 40  # a cap: early stopping ends fine-tuning once the held-out loss stops falling
TRIAL_EPOCHS = 10  # fine-tuning epochs per candidate in the budget search's trained repair
PARETO_FRACTIONS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)


def model_cost(model: Any) -> dict:
    """Parameters, MACs and estimated int8 flash bytes of a model's weighted layers."""
    params = macs = flash = 0
    for index, layer in enumerate(model.layers):
        weights = layer.get_weights()
        if not weights:
            continue
        info = describe_layer(index, layer, call_count(model, layer))
        params += info.params
        macs += info.macs
        bias = info.bias_params if info.class_name in ("Dense", "Conv2D", "DepthwiseConv2D") else 0
        flash += budget_search.int8_bytes(info.params, bias)
    return {"params": int(params), "macs": int(macs), "int8_flash_bytes": int(flash)}


def compress(
    model: Any,
    data: Any = None,
    *,
    method: str = "svd",
    ranks: dict[str, tuple[int, ...]] | str | None = None,
    energy: float | None = None,
    vbmf: bool = False,
    target_params: float | None = None,
    target_macs: float | None = None,
    target_latency: float | None = None,
    max_latency_ms: float | None = None,
    board: str | None = None,
    pareto: bool = False,
    baseline: bool = False,
    finetune_epochs: int | None = None,
    distill: bool | None = None,
    qat: bool = True,
    seed: int = 0,
    verbose: int = 0,
    batch_size: int = 32,
    learning_rate: float | None = None,
) -> tuple[Any, dict]:
    """Factor a Keras model's Dense and Conv2D layers; return (new model, report dict).

    `data` is a `toolchain.data.Dataset`, a path to an `.npz`, or a dict of arrays; it is
    needed for budget search, fine-tuning and accuracy numbers. With no rank option, ranks
    keep 95% of the energy. See `toolchain/compress/layers.py` for the names of new layers.
    With data, the factored model is fine-tuned for up to `DEFAULT_FINETUNE_EPOCHS` (early
    stopping ends it sooner), distilled from the original and quantization-aware at the
    end (`toolchain/compress/finetune.py`); `finetune_epochs=0` turns that off.

    Report keys: `layers` (per layer: status, method, ranks, params/MACs before and after,
    rel_error, and `reason` when kept; with a budget also `output_error` alone and
    `output_error_in_combination`), `params`/`macs`/`int8_flash_bytes` ({before, after}),
    `metric` ("accuracy" or "mse") and under that key {original, factored, finetuned,
    baseline}, `finetune`, `baseline` (with baseline=True), `search` (with a budget),
    `folded_batchnorm`, `budget`, `pareto` (with pareto=True), `compress_seconds`
    (decomposition and rebuild, without evaluation or fine-tuning).
    """

    if isinstance(model, (str, Path)):
        from toolchain.models import load_keras_model

        model = load_keras_model(model)
    if isinstance(ranks, str):
        ranks = parse_ranks(ranks)
    ranks = dict(ranks or {})
    targets = {
        "target_params": target_params,
        "target_macs": target_macs,
        "target_latency": target_latency,
        "max_latency_ms": max_latency_ms,
        "board": board,
    }
    check_options(method, ranks, energy, vbmf, targets)
    if method == "narrow":
        check_narrow_options(targets, pareto)
    if finetune_epochs is not None and finetune_epochs < 0:
        raise UnsupportedError(f"--finetune-epochs {finetune_epochs}: must be 0 or more")
    if learning_rate is not None and not learning_rate > 0:
        raise UnsupportedError(f"--learning-rate {learning_rate}: must be above 0")
    if not ranks and energy is None and not vbmf and not any(v is not None for v in targets.values()):
        energy = DEFAULT_ENERGY
    dataset = to_dataset(data)
    if dataset is not None and len(model.inputs) == 1:
        check_input_shape(dataset, tuple(model.inputs[0].shape), where=f"model '{model.name}'")
        if len(model.outputs) == 1 and model.outputs[0].shape[-1] is not None:
            check_labels(dataset, int(model.outputs[0].shape[-1]), where=f"model '{model.name}'")
    labels_note = None
    if dataset is not None and needs_teacher_labels(model, dataset):
        dataset, labels_note, distill = label_with_teacher(model, dataset), TEACHER_NOTE, True
    needs_data = pareto or baseline or bool(finetune_epochs) or any(v is not None for v in targets.values())
    if dataset is None and needs_data:
        raise DataError(
            "this compression needs data (budget search, --pareto, --baseline or fine-tuning): pass --data"
        )
    if finetune_epochs is None:
        finetune_epochs = DEFAULT_FINETUNE_EPOCHS if dataset is not None else 0
    check_model(model)
    tuning = Tuning(finetune_epochs, distill, qat, batch_size, learning_rate, seed, verbose)

    started = time.perf_counter()
    folded, folds = fold_batchnorms(model)
    if method == "narrow":
        assert target_params is not None  # check_narrow_options refused its absence
        small, report = narrowed(model, folded, target_params, seed)
        report.update(folded_batchnorm=folds, compress_seconds=time.perf_counter() - started)
        report["labels"] = labels_note or "from the data"
        if dataset is not None:
            _score(report, model, small, dataset, tuning, baseline, changed=True)
        return small, report
    # auto with a parameter budget also tries narrowing (not with --board: the factored plan is the
    # one checked against the board's flash, RAM and latency)
    narrow_too = (
        method == "auto"
        and target_params is not None
        and board is None
        and dataset is not None
        and finetune_epochs > 0
        and can_narrow(folded)
    )
    infos = describe_model(folded)
    check_explicit_layers(folded, ranks, infos)
    x_calib = _calibration(dataset, seed) if dataset is not None else None
    before = model_cost(model)
    budget_info: dict = {}
    table = state = None
    search: dict = {}
    if board is not None:
        from toolchain.compress import device

        if x_calib is None:
            raise DataError("--board needs data to calibrate the original model: pass --data")
        state = device.prepare(folded, infos, method, x_calib, board, seed)
        plan, budget_info = device.plan_on_device(
            state,
            infos,
            method,
            before,
            seed,
            target_params=target_params,
            target_macs=target_macs,
            target_latency=target_latency,
            max_latency_ms=max_latency_ms,
        )
        table = state.table
        selection = "budget"
    elif any(v is not None for v in targets.values()):
        kind, value, budget_info = _budget(before, target_params, target_macs)
        trainer = (
            _short_tuner(model, dataset, tuning) if finetune_epochs > 0 and dataset is not None else None
        )
        plan, table, search = plan_by_budget(
            folded, infos, method, x_calib, kind, value, seed, trainer=trainer
        )
        selection = "budget"
    else:
        with threadpool_limits(limits=1, user_api="blas"):  # small matrices: see budget.candidate_table
            plan = plan_by_rule(infos, method, ranks, energy, vbmf, seed)
        selection = "explicit" if ranks and energy is None and not vbmf else ("vbmf" if vbmf else "energy")
    replace = {name: entry.specs for name, entry in plan.items() if isinstance(entry, Factorization)}
    factored = rebuild(folded, replace) if replace else _copy_model(folded)
    compress_seconds = time.perf_counter() - started

    after = model_cost(factored)
    report = {
        "stage": "compress",
        "model": model.name,
        "method": method,
        "rank_selection": selection,
        "energy": energy,
        "budget": budget_info,
        "folded_batchnorm": folds,
        "layers": layer_rows(infos, plan, method, search),
        **{key: {"before": before[key], "after": after[key]} for key in before},
        "params_ratio": before["params"] / max(after["params"], 1),
        "new_layers": [layer.name for layer in factored.layers],
        "compress_seconds": compress_seconds,
        "labels": labels_note or "from the data",
    }
    hint = narrow_hint(folded, search.get("bottlenecks", [])) if search else None
    if search:
        report["search"] = search
    if hint and not narrow_too:  # auto with a parameter budget measures narrowing itself, below
        report.setdefault("warnings", []).append(hint)
    for row in report["layers"]:
        if row["name"] in budget_info.get("layer_costs", {}):
            row["device"] = budget_info["layer_costs"][row["name"]]
    if dataset is not None:
        _score(report, model, factored, dataset, tuning, baseline, changed=bool(replace))
    if narrow_too and replace:
        assert target_params is not None and dataset is not None
        small, other = narrowed(model, folded, target_params, seed)
        other.update(folded_batchnorm=folds, compress_seconds=report["compress_seconds"])
        other["labels"] = report["labels"]
        _score(other, model, small, dataset, tuning, False, changed=True)
        if held_out_better(other, report):
            return small, chosen_over(other, report)
        report["compared_with"] = comparison(other)
    if state is not None and x_calib is not None:
        generated = _as_generated(factored, x_calib, state, budget_info)
        if "warning" in generated:
            report.setdefault("warnings", []).append(generated.pop("warning"))
        budget_info.update(generated)
    if pareto and dataset is not None:

        def build_at(fraction: float):
            plan, _, _ = plan_by_budget(
                folded, infos, method, x_calib, "params", fraction * before["params"], seed, table
            )
            replace = {n: e.specs for n, e in plan.items() if isinstance(e, Factorization)}
            ranks = {n: list(e.ranks) for n, e in plan.items() if isinstance(e, Factorization)}
            extra = {}
            if state is not None:  # with a board: each point's predicted device cost and whether it fits
                from toolchain.compress.device import point_costs

                extra = point_costs(state, plan, budget_info)
            return (rebuild(folded, replace) if replace else _copy_model(folded)), ranks, extra

        report["pareto"] = pareto_sweep(model, dataset, build_at, PARETO_FRACTIONS, tuning)
    return factored, report


def _score(
    report: dict, model: Any, compressed: Any, dataset: Dataset, tuning: Tuning, baseline: bool, changed: bool
) -> None:
    """Measure the original and the compressed model, fine-tune the compressed one in place (when
    it `changed` and tuning has epochs), train the baseline when asked, and say so in `report`."""
    metric, original = evaluate_on(model, dataset)
    scores = {"original": original, "factored": evaluate_on(compressed, dataset)[1]}
    if tuning.epochs > 0:
        report["finetune"] = tune(compressed, model, dataset, tuning, factored=changed)
        scores["finetuned"] = evaluate_on(compressed, dataset)[1]
    if baseline:
        _, report["baseline"] = baseline_for(model, report["params"]["after"], dataset, tuning)
        scores["baseline"] = report["baseline"][metric]
    report["metric"] = metric
    report[metric] = scores
    warning = accuracy_warning(metric, scores)
    if warning:
        report.setdefault("warnings", []).append(warning)


def _as_generated(factored: Any, x_calib: np.ndarray, state: Any, budget_info: dict) -> dict[str, Any]:
    """The compressed model's predicted cost as codegen will plan it (which factored layers it
    fuses depends on the whole model's arena), beside the search's layer-by-layer estimate: its
    instructions from the cost model, its flash and RAM from the firmware budget model that
    `tinyrank build` checks, and a warning where those exceed the board."""
    from toolchain.compress.costs import device_baseline
    from toolchain.firmware.costmodel import to_board_units

    board = state.baseline.board
    generated = device_baseline(factored, x_calib, board)
    usage = generated.usage
    result: dict[str, Any] = {
        "search_predicted_instructions": budget_info.get("predicted_instructions"),
        "predicted_instructions": round(generated.instructions),
        "predicted_latency": round(to_board_units(generated.instructions, board)),
        "search_predicted_flash_bytes": budget_info.get("predicted", {}).get("flash_bytes"),
        "generated_flash_bytes": int(usage["flash_bytes"]),
        "generated_ram_bytes": int(usage["ram_bytes"]),
    }
    over = [
        f"{what} {usage[key]:,} B > {usage[limit]:,} B"
        for what, key, limit in (("flash", "flash_bytes", "flash_limit"), ("RAM", "ram_bytes", "ram_limit"))
        if usage[key] > usage[limit]
    ]
    if over:
        result["warning"] = (
            f"board '{board.id}': the compressed model as generated needs "
            + " and ".join(over)
            + "; `tinyrank build` will refuse it: tighten the budget (--target-params) or pick a larger board"
        )
    return result


def _short_tuner(teacher: Any, dataset: Dataset, tuning: Tuning):
    """A short float fine-tune of a candidate model, returning its held-out loss (for the trained
    repair of the budget search): a quarter of the epoch cap, at most TRIAL_EPOCHS."""
    trial = dataclasses.replace(
        tuning, epochs=max(2, min(TRIAL_EPOCHS, tuning.epochs // 4)), qat=False, verbose=0
    )

    def held_out_loss(candidate: Any) -> float:
        return float(tune(candidate, teacher, dataset, trial)["end_loss"])

    return held_out_loss


def _copy_model(model: Any) -> Any:
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _calibration(dataset: Dataset, seed: int) -> np.ndarray:
    x = dataset.x_train
    order = np.random.default_rng(seed).permutation(len(x))[: budget_search.CALIBRATION_SAMPLES]
    return np.asarray(x[np.sort(order)], dtype=np.float32)


def _budget(before: dict, target_params, target_macs) -> tuple[str, float, dict]:
    if target_params is not None:
        return "params", target_params * before["params"], {"target_params": target_params}
    return "macs", target_macs * before["macs"], {"target_macs": target_macs}


# Accuracy points a compressed classifier may lose before the report warns that the budget or the
# fine-tuning left it far from the original (a latency budget met by crushing a layer still "fits").
ACCURACY_DROP_WARNING = 0.10


def accuracy_warning(metric: str, scores: dict[str, float]) -> str | None:
    """One line for the report where the compressed classifier's accuracy (fine-tuned if it was)
    fell more than `ACCURACY_DROP_WARNING` below the original's, else None."""
    if metric != "accuracy" or "original" not in scores:
        return None
    final = scores.get("finetuned", scores.get("factored"))
    if final is None or scores["original"] - final <= ACCURACY_DROP_WARNING:
        return None
    return (
        f"accuracy fell from {scores['original']:.2%} to {final:.2%}: the budget leaves the model too "
        "little to recover; loosen the budget or fine-tune longer (--finetune-epochs)"
    )
