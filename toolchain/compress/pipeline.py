"""`compress(model, data, ...)`: the compress stage from a Keras model to a factored one.

Order of work: check the options and data, fold batch norms, describe every layer, choose
a method and ranks per layer (explicit, energy, VBMF or a budget search), build the
factored model, measure it, fine-tune it, measure it again, and say all of it in a report.
The input model is never changed: every step builds a new model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.compress import budget as budget_search
from toolchain.compress.graph import call_count, fold_batchnorms, rebuild
from toolchain.compress.layers import (
    METHODS,
    Factorization,
    describe_layer,
)
from toolchain.compress.plan import (
    check_explicit_layers,
    describe_model,
    layer_rows,
    plan_by_budget,
    plan_by_rule,
)
from toolchain.compress.ranks import parse_ranks
from toolchain.compress.unlabeled import NOTE as TEACHER_NOTE
from toolchain.compress.unlabeled import label_with_teacher, needs_teacher_labels
from toolchain.data import Dataset, check_input_shape, check_labels, dataset_from_arrays, load_dataset
from toolchain.errors import BudgetError, DataError, ModelError, UnsupportedError

DEFAULT_ENERGY = 0.95
LATENCY_TARGETS = ("target_latency", "max_latency_ms")
PARETO_FRACTIONS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)


def to_dataset(data: Any) -> Dataset | None:
    """Accept a Dataset, a path to an .npz, or a dict of arrays (checked like a file)."""
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    if isinstance(data, dict):
        return dataset_from_arrays(data)
    raise DataError(f"data: expected a Dataset, an .npz path or a dict of arrays, got {type(data).__name__}")


def _check_options(method, ranks, energy, vbmf, targets) -> None:
    if method not in (*METHODS, "auto"):
        raise UnsupportedError(f"--method {method}: choose one of {', '.join((*METHODS, 'auto'))}")
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


def _check_model(model: Any) -> None:
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            w = np.asarray(w)
            if np.issubdtype(w.dtype, np.floating) and not np.all(np.isfinite(w)):
                raise ModelError(f"layer '{layer.name}': weight {i} holds NaN or Inf values")


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
    finetune_epochs: int = 0,
    distill: bool = False,
    seed: int = 0,
    verbose: int = 0,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
) -> tuple[Any, dict]:
    """Factor a Keras model's Dense and Conv2D layers; return (new model, report dict).

    `data` is a `toolchain.data.Dataset`, a path to an `.npz`, or a dict of arrays; it is
    needed for budget search, fine-tuning and accuracy numbers. With no rank option, ranks
    keep 95% of the energy. See `toolchain/lowrank/layers.py` for the names of new layers.

    Report keys: `layers` (per layer: status, method, ranks, params/MACs before and after,
    rel_error, and `reason` when kept), `params`/`macs`/`int8_flash_bytes` ({before, after}),
    `metric` ("accuracy" or "mse") and under that key {original, factored, finetuned},
    `finetune`, `folded_batchnorm`, `budget`, `pareto` (with pareto=True), `compress_seconds`
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
    _check_options(method, ranks, energy, vbmf, targets)
    if finetune_epochs < 0:
        raise UnsupportedError(f"--finetune-epochs {finetune_epochs}: must be 0 or more")
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
    needs_data = pareto or finetune_epochs > 0 or any(v is not None for v in targets.values())
    if dataset is None and needs_data:
        raise DataError("this compression needs data (budget search, --pareto or fine-tuning): pass --data")
    _check_model(model)

    started = time.perf_counter()
    folded, folds = fold_batchnorms(model)
    infos = describe_model(folded)
    check_explicit_layers(folded, ranks, infos)
    x_calib = _calibration(dataset, seed) if dataset is not None else None
    before = model_cost(model)
    budget_info: dict = {}
    table = state = None
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
        plan, table = plan_by_budget(folded, infos, method, x_calib, kind, value, seed)
        selection = "budget"
    else:
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
        "layers": layer_rows(infos, plan, method),
        **{key: {"before": before[key], "after": after[key]} for key in before},
        "params_ratio": before["params"] / max(after["params"], 1),
        "new_layers": [layer.name for layer in factored.layers],
        "compress_seconds": compress_seconds,
        "labels": labels_note or "from the data",
    }
    for row in report["layers"]:
        if row["name"] in budget_info.get("layer_costs", {}):
            row["device"] = budget_info["layer_costs"][row["name"]]
    if dataset is not None:
        metric, original = _evaluate(model, dataset)
        scores = {"original": original, "factored": _evaluate(factored, dataset)[1]}
        if finetune_epochs > 0:
            report["finetune"] = _finetune(
                factored, model, dataset, finetune_epochs, distill, seed, verbose, batch_size, learning_rate
            )
            scores["finetuned"] = _evaluate(factored, dataset)[1]
        report["metric"] = metric
        report[metric] = scores
    if pareto:
        report["pareto"] = _pareto(
            model,
            folded,
            infos,
            method,
            dataset,
            x_calib,
            seed,
            table,
            finetune_epochs,
            distill,
            batch_size,
            learning_rate,
            state,
            budget_info,
        )
    return factored, report


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


def _evaluate(model: Any, dataset: Dataset) -> tuple[str, float]:
    from toolchain.compress.finetune import evaluate

    return evaluate(model, dataset.eval_x, dataset.eval_y)


def _finetune(model, teacher, dataset, epochs, distill, seed, verbose, batch_size, learning_rate) -> dict:
    from toolchain.compress.finetune import finetune

    return finetune(
        model,
        teacher,
        dataset.x_train,
        dataset.y_train,
        epochs=epochs,
        distill=distill,
        seed=seed,
        verbose=verbose,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )


def _pareto(
    model,
    folded,
    infos,
    method,
    dataset,
    x_calib,
    seed,
    table,
    epochs,
    distill,
    batch_size,
    lr,
    state,
    limits,
):
    """Accuracy against parameters over a sweep of parameter budgets (one candidate table); with a
    board (`state`), each point also gets its predicted device cost and whether it fits."""
    before = model_cost(model)["params"]
    points = []
    for fraction in PARETO_FRACTIONS:
        try:
            plan, table = plan_by_budget(
                folded, infos, method, x_calib, "params", fraction * before, seed, table
            )
        except BudgetError:
            continue
        replace = {n: e.specs for n, e in plan.items() if isinstance(e, Factorization)}
        candidate = rebuild(folded, replace) if replace else _copy_model(folded)
        point = {
            "target_params": fraction,
            "params": model_cost(candidate)["params"],
            "ranks": {n: list(e.ranks) for n, e in plan.items() if isinstance(e, Factorization)},
            "factored": _evaluate(candidate, dataset)[1],
        }
        if state is not None:
            from toolchain.compress.device import point_costs

            point.update(point_costs(state, plan, limits))
        if epochs > 0:
            _finetune(candidate, model, dataset, epochs, distill, seed, 0, batch_size, lr)
            point["finetuned"] = _evaluate(candidate, dataset)[1]
        points.append(point)
    return points
