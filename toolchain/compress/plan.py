"""Which layers are factored, and how: explicit ranks, a rule (energy, VBMF) or a budget search.

A plan maps every layer with weights to a `Factorization`, or to the reason it stays as it
is; `layer_rows` turns a plan into the rows of the compress report.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from toolchain.compress import budget as budget_search
from toolchain.compress.budget import Candidate, int8_bytes
from toolchain.compress.graph import call_count
from toolchain.compress.layers import (
    METHODS,
    Factorization,
    LayerInfo,
    chain_cost,
    check_ranks,
    describe_layer,
    factorize,
    method_for,
    rank_limits,
    saves_parameters,
)
from toolchain.compress.ranks import auto_choice, reference_method, rule_ranks
from toolchain.compress.search import Width
from toolchain.errors import ModelError, UnsupportedError

TRAINED_REPAIR_ERROR = 0.1  # below this fine-tuning recovers any allocation the search makes


def describe_model(model: Any) -> list[LayerInfo]:
    """Every layer with weights, as `LayerInfo` (how often it is called included)."""
    return [
        describe_layer(i, layer, call_count(model, layer))
        for i, layer in enumerate(model.layers)
        if layer.get_weights()
    ]


def check_explicit_layers(model: Any, ranks: dict, infos: list[LayerInfo]) -> None:
    """Every layer named in --ranks exists and can be factored."""
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


def plan_by_rule(infos, method, ranks, energy, vbmf, seed) -> dict[str, Factorization | str]:
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
                f"method {method} does not apply to {info.class_name} "
                f"with a {info.kernel.shape[0]}x{info.kernel.shape[1]} kernel"
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


def plan_by_budget(model, infos, method, x_calib, kind, budget_value, seed, table=None, trainer=None):
    """Per layer a Factorization or the reason it stays whole, chosen by the joint search
    (`search.joint_search`) for `kind` (params or MACs) within `budget_value`; also the candidate
    table, which a --pareto sweep reuses, and the search's findings for the report.

    `trainer(model) -> held-out loss` (a short fine-tune) turns on the trained repair
    (`trained_search.trained_repair`) when the chosen model starts far from the original
    (joint output error of at least TRAINED_REPAIR_ERROR)."""
    from toolchain.compress.graph import rebuild
    from toolchain.compress.search import bottleneck_rows, joint_search, measure_choice
    from toolchain.compress.trained_search import trained_repair, uniform_width

    factorable = [i for i in infos if i.kind is not None and (method == "auto" or method_for(i, method))]
    if table is None:
        table = budget_search.candidate_table(
            model, factorable, budget_search.layer_methods(factorable, method), x_calib, seed=seed
        )
    fixed_infos = [i for i in infos if i.name not in table]
    fixed = sum(budget_search.layer_cost(i, kind) for i in fixed_infos)
    widths = layer_widths(infos)
    found = joint_search(model, table, {kind: budget_value}, {kind: fixed}, x_calib, widths)
    choice, trained = found.choice, None
    if trainer is not None and found.joint_error >= TRAINED_REPAIR_ERROR:

        def held_out_loss(trial: dict) -> float:
            with threadpool_limits(limits=1, user_api="blas"):
                trial_plan = _factorize_choice(infos, table, trial, method, seed)
            replace = {n: e.specs for n, e in trial_plan.items() if isinstance(e, Factorization)}
            return trainer(rebuild(model, replace))

        by_name = {i.name: i for i in factorable}
        limits, fixed_costs = {kind: budget_value}, {kind: fixed}
        uniform = uniform_width(_at_width(by_name, table, choice), limits, fixed_costs, _widest(by_name))
        alternatives = {f"one width of {uniform[0]}": uniform[1]} if uniform else {}
        choice, trained = trained_repair(
            choice, _rank_steps(by_name), limits, fixed_costs, held_out_loss, alternatives=alternatives
        )
    with threadpool_limits(limits=1, user_api="blas"):  # small matrices: see budget.candidate_table
        plan = _factorize_choice(infos, table, choice, method, seed)
    joint, in_combination, bottlenecks = found.joint_error, found.in_combination, found.bottlenecks
    alone = {name: c.error for name, c in choice.items()}
    if choice is not found.choice:  # measure what the trained repair chose, with the kernels it builds
        built = {
            name: dataclasses.replace(c, kernel=plan[name].approx_kernel) if c.method else c
            for name, c in choice.items()
        }
        joint, in_combination, alone = measure_choice(model, table, x_calib, built)
        for name, entry in plan.items():
            if isinstance(entry, Factorization):
                entry.extra["output_error"] = alone[name]
        why = "the held-out loss after a short fine-tune was lowest with it (trained repair)"
        bottlenecks = bottleneck_rows(choice, widths, why)
    search = {
        "joint_output_error": joint,
        "output_error_alone": alone,
        "output_error_in_combination": in_combination,
        "bottlenecks": bottlenecks,
        "evaluations": found.evaluations,
        "repairs": found.repairs,
    }
    if trained is not None:
        search["trained_repair"] = trained
    return plan, table, search


def layer_widths(infos: list[LayerInfo]) -> dict[str, Width]:
    """Every layer with weights, in model order, as the bottleneck check sees it: the rank it has
    kept whole (a depthwise convolution: its channels) and each method's largest ranks."""
    widths = {}
    for info in infos:
        if info.class_name == "DepthwiseConv2D":
            full = int(info.kernel.shape[-2] * info.kernel.shape[-1])
        else:
            full = int(min(np.prod(info.kernel.shape[:-1]), info.kernel.shape[-1]))
        actual = {method_for(info, m) for m in METHODS} if info.kind else set()
        widths[info.name] = Width(full, {m: rank_limits(info, m) for m in actual if m})
    return widths


def _widest(infos: dict[str, LayerInfo]) -> int:
    """The largest rank any factor of these layers can have (where a uniform width starts)."""
    return max(
        (max(top) for w in layer_widths(list(infos.values())).values() for top in w.tops.values()), default=1
    )


def _at_width(infos: dict[str, LayerInfo], table: dict[str, list[Candidate]], choice: dict[str, Candidate]):
    """`at_width(w)`: every layer of `choice` with each rank of its method capped at w, or kept
    whole where that saves nothing (the method: the one the search chose, else the table's first)."""

    def at_width(width: int) -> dict[str, Candidate]:
        found = {}
        for name, cand in choice.items():
            info, kept = infos[name], next(c for c in table[name] if c.method is None)
            method = cand.method or next((c.method for c in table[name] if c.method), None)
            ranks = tuple(min(width, top) for top in rank_limits(info, method)) if method else ()
            if method is None or not saves_parameters(info, method, ranks):
                found[name] = kept
                continue
            params, macs = chain_cost(info, method, ranks)
            found[name] = Candidate(
                method, ranks, float("nan"), params, macs, int8_bytes(params, info.bias_params)
            )
        return found

    return at_width


def _rank_steps(infos: dict[str, LayerInfo]):
    """`steps(layer, candidate)`: the same method about a tenth (at least one) of each rank up
    and down, within the rank limits and still smaller than the layer; nothing for a kept layer."""

    def steps(name: str, cand: Candidate) -> list[Candidate]:
        info = infos[name]
        if cand.method is None:
            return []
        limits = rank_limits(info, cand.method)
        found = []
        for sign in (1, -1):
            ranks = tuple(r + sign * max(1, round(0.1 * r)) for r in cand.ranks)
            if all(1 <= r <= top for r, top in zip(ranks, limits, strict=True)) and saves_parameters(
                info, cand.method, ranks
            ):
                params, macs = chain_cost(info, cand.method, ranks)
                found.append(
                    Candidate(
                        cand.method, ranks, float("nan"), params, macs, int8_bytes(params, info.bias_params)
                    )
                )
        return found

    return steps


def _factorize_choice(infos, table, choice, method, seed) -> dict[str, Factorization | str]:
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
    return plan


def layer_rows(infos, plan, method, search: dict | None = None) -> list[dict]:
    """The per-layer rows of the compress report; `search` adds each layer's output errors."""
    search = search or {}
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
        if info.name in search.get("output_error_in_combination", {}):
            row["output_error"] = search["output_error_alone"][info.name]
            row["output_error_in_combination"] = search["output_error_in_combination"][info.name]
        rows.append(row)
    return rows
