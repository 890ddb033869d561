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
    LayerInfo,
    chain_cost,
    check_ranks,
    describe_layer,
    factorize,
    method_for,
    saves_parameters,
)
from toolchain.compress.ranks import auto_choice, parse_ranks, reference_method, rule_ranks
from toolchain.compress.unlabeled import NOTE as TEACHER_NOTE
from toolchain.compress.unlabeled import label_with_teacher, needs_teacher_labels
from toolchain.data import Dataset, check_input_shape, load_dataset
from toolchain.errors import BudgetError, DataError, ModelError, UnsupportedError

DEFAULT_ENERGY = 0.95
LATENCY_TARGETS = ("target_latency", "max_latency_ms")
PARETO_FRACTIONS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)


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


def to_dataset(data: Any) -> Dataset | None:
    """Accept a Dataset, a path to an .npz, or a dict of arrays (checked like a file)."""
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    if isinstance(data, dict):
        if "x_train" not in data:
            raise DataError("data dict: missing key 'x_train'")
        arrays = {k: np.asarray(v) for k, v in data.items() if v is not None}
        for key, array in arrays.items():
            if not np.issubdtype(array.dtype, np.number):
                raise DataError(f"data dict: key '{key}' has dtype {array.dtype}; expected numbers")
            if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
                raise DataError(f"data dict: key '{key}' holds NaN or Inf values")
        return Dataset(
            Path("<arrays>"),
            arrays["x_train"],
            arrays.get("y_train"),
            arrays.get("x_test"),
            arrays.get("y_test"),
        )
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


def _describe(model: Any) -> list[LayerInfo]:
    return [
        describe_layer(i, layer, call_count(model, layer))
        for i, layer in enumerate(model.layers)
        if layer.get_weights()
    ]


def _explicit_layers(model: Any, ranks: dict, infos: list[LayerInfo]) -> None:
    by_name = {info.name: info for info in infos}
    names = [layer.name for layer in model.layers]
    for name in ranks:
        if name not in names:
            raise ModelError(
                f"--ranks: layer '{name}' does not exist in model '{model.name}' "
                f"(layers: {', '.join(n for n in names if n in by_name)})"
            )
        if name not in by_name or by_name[name].kind is None:
            reason = by_name[name].reason if name in by_name else "no weights"
            raise UnsupportedError(f"--ranks: layer '{name}' cannot be factored: {reason}")


def _plan_by_rule(infos, method, ranks, energy, vbmf, seed) -> dict[str, Factorization | str]:
    """Per layer: a Factorization, or the reason it stays as it is."""
    plan: dict[str, Factorization | str] = {}
    for info in infos:
        if info.kind is None:
            plan[info.name] = info.reason
            continue
        explicit = ranks.get(info.name)
        if ranks and explicit is None and energy is None and not vbmf:
            plan[info.name] = "no rank given for this layer in --ranks"
            continue
        ref = reference_method(info, method, explicit)
        if ref is None:
            plan[info.name] = (
                f"method {method} does not apply to {info.class_name} with a {info.kernel.shape[0]}x{info.kernel.shape[1]} kernel"
            )
            continue
        chosen = explicit if explicit is not None else rule_ranks(info, ref, energy, vbmf)
        check_ranks(info, ref, chosen)
        if not saves_parameters(info, ref, chosen):
            params = chain_cost(info, ref, chosen)[0]
            plan[info.name] = (
                f"{ref} rank {':'.join(map(str, chosen))} would not make it smaller "
                f"({params} parameters vs {info.params})"
            )
            continue
        plan[info.name] = (
            auto_choice(info, (ref, chosen), seed) if method == "auto" else factorize(info, ref, chosen, seed)
        )
    return plan


def _plan_by_budget(model, infos, method, x_calib, kind, budget_value, seed, table=None):
    factorable = [i for i in infos if i.kind is not None and (method == "auto" or method_for(i, method))]
    if table is None:
        table = budget_search.candidate_table(
            model, factorable, budget_search.layer_methods(factorable, method), x_calib, seed=seed
        )
    fixed_infos = [i for i in infos if i.name not in table]
    fixed = sum(budget_search.layer_cost(i, kind) for i in fixed_infos)
    choice = budget_search.select(table, kind, budget_value, fixed)
    plan: dict[str, Factorization | str] = {}
    for info in infos:
        cand = choice.get(info.name)
        if info.kind is None or info.name not in table:
            plan[info.name] = info.reason or f"method {method} does not apply to this layer"
        elif cand.method is None:
            plan[info.name] = "kept whole: the budget search found it worth its size"
        else:
            result = factorize(info, cand.method, cand.ranks, seed)
            result.extra["output_error"] = cand.error
            plan[info.name] = result
    return plan, table


def _layer_rows(infos, plan, method) -> list[dict]:
    rows = []
    for info in infos:
        entry = plan[info.name]
        row = {
            "index": info.index,
            "name": info.name,
            "class": info.class_name,
            "params_before": info.params,
            "macs_before": info.macs,
        }
        if isinstance(entry, Factorization):
            row.update(
                status="factored",
                method=entry.method,
                ranks=list(entry.ranks),
                params_after=entry.params,
                macs_after=entry.macs,
                rel_error=entry.rel_error,
                layers=[spec.config["name"] for spec in entry.specs],
                **entry.extra,
            )
            if entry.method == "seminmf":
                svd = factorize(info, "svd", entry.ranks)
                row["svd_rel_error"] = svd.rel_error
        else:
            row.update(
                status="kept",
                method=None,
                ranks=None,
                params_after=info.params,
                macs_after=info.macs,
                rel_error=0.0,
                reason=entry,
            )
        rows.append(row)
    return rows


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
    labels_note = None
    if needs_teacher_labels(model, dataset):
        dataset, labels_note, distill = label_with_teacher(model, dataset), TEACHER_NOTE, True
    needs_data = pareto or finetune_epochs > 0 or any(v is not None for v in targets.values())
    if dataset is None and needs_data:
        raise DataError("this compression needs data (budget search, --pareto or fine-tuning): pass --data")
    _check_model(model)

    started = time.perf_counter()
    folded, folds = fold_batchnorms(model)
    infos = _describe(folded)
    _explicit_layers(folded, ranks, infos)
    x_calib = _calibration(dataset, seed) if dataset is not None else None
    before = model_cost(model)
    budget_info: dict = {}
    table = state = None
    if board is not None:
        from toolchain.compress import device

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
        plan, table = _plan_by_budget(folded, infos, method, x_calib, kind, value, seed)
        selection = "budget"
    else:
        plan = _plan_by_rule(infos, method, ranks, energy, vbmf, seed)
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
        "layers": _layer_rows(infos, plan, method),
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
            plan, table = _plan_by_budget(
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
