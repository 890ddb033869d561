"""The budget search's trained repair and int8-exact quantization-aware fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.digits_models import tiny_digits_mlp
from toolchain.compress.budget import Candidate


def _cand(rank: int, per_rank: int) -> Candidate:
    return Candidate("svd", (rank,), float("nan"), rank * per_rank, 0, rank * per_rank)


PER_RANK = {"a": 10, "b": 4, "c": 3}  # parameters one rank of each layer costs


def _steps(name: str, cand: Candidate) -> list[Candidate]:
    r = cand.ranks[0]
    return [_cand(q, PER_RANK[name]) for q in (r + 1, r - 1) if 1 <= q <= 20]


def _choice(a: int, b: int, c: int) -> dict[str, Candidate]:
    return {"a": _cand(a, 10), "b": _cand(b, 4), "c": _cand(c, 3)}


def test_trained_repair_moves_size_to_where_the_held_out_loss_falls_within_the_limit():
    from toolchain.compress.trained_search import trained_repair

    limit = {"params": 10 * 5 + 4 * 6 + 3 * 5}  # exactly the start (5, 6, 5)
    calls = []

    def loss(choice):  # best where layer a has 7 ranks, whatever the others get
        calls.append(choice)
        return 0.1 + abs(choice["a"].ranks[0] - 7) + 0.01 * abs(choice["c"].ranks[0] - 5)

    chosen, info = trained_repair(_choice(5, 6, 5), _steps, limit, {"params": 0}, loss)
    assert chosen["a"].ranks == (7,)
    assert all(sum(c.params for c in ch.values()) <= limit["params"] for ch in calls)
    assert info["held_out_loss"] == pytest.approx(loss(chosen))
    assert info["held_out_loss"] < info["start_held_out_loss"]
    assert [m["ranks"]["a"] for m in info["moves"]] == [[6], [7]]
    assert info["trials"] == len(info["measured"]) == len(calls) - 1  # each choice trained once


def test_trained_repair_keeps_the_search_choice_unless_a_move_clearly_wins():
    from toolchain.compress.trained_search import TRAINED_MIN_GAIN, trained_repair

    start = _choice(5, 6, 5)

    def loss(choice):  # every move is better, but by less than the noise margin
        return 1.0 if choice == start else 1.0 - TRAINED_MIN_GAIN / 2

    chosen, info = trained_repair(start, _steps, {"params": 200}, {"params": 0}, loss)
    assert chosen is start and info["moves"] == [] and info["trials"] > 1


def test_trained_repair_trains_at_most_max_trials_moves_and_keeps_the_best_measured():
    from toolchain.compress.trained_search import trained_repair

    limit = {"params": 10 * 5 + 4 * 6 + 3 * 5}
    calls = []

    def loss(choice):  # every step of layer a towards 9 ranks helps: unlimited, it would climb 3 rounds
        calls.append(choice)
        return 0.1 + abs(choice["a"].ranks[0] - 9)

    chosen, info = trained_repair(_choice(5, 6, 5), _steps, limit, {"params": 0}, loss, max_trials=3)
    assert len(calls) == 4  # the start and three moves
    assert info["trials"] == 4 and len(info["measured"]) == 4
    assert chosen["a"].ranks == (6,)  # the best of the three measured, though the round was cut short
    assert info["held_out_loss"] < info["start_held_out_loss"]


def test_rank_steps_are_finer_than_the_grid_and_stay_valid(mlp):
    from toolchain.compress.layers import chain_cost
    from toolchain.compress.plan import _rank_steps, describe_model

    infos = {i.name: i for i in describe_model(mlp) if i.kind is not None}
    steps = _rank_steps(infos)
    first = infos["dense_1"]
    cost = chain_cost(first, "svd", (5,))[0]
    found = steps("dense_1", Candidate("svd", (5,), 0.0, cost, 0, cost))
    assert sorted(c.ranks for c in found) == [(4,), (6,)]
    assert all(c.params == chain_cost(first, "svd", c.ranks)[0] for c in found)
    assert steps("dense_1", Candidate(None, (), 0.0, first.params, 0, 0)) == []
    assert [c.ranks for c in steps("dense_1", Candidate("svd", (1,), 0.0, cost, 0, cost))] == [(2,)]


def test_budget_search_reports_the_trained_repair_and_measures_what_it_chose(mlp, digits):
    from toolchain.compress import compress

    _, report = compress(mlp, digits, target_params=0.12, finetune_epochs=4)
    trained = report["search"]["trained_repair"]
    assert trained["trials"] >= 2 and trained["held_out_loss"] <= trained["start_held_out_loss"]
    ranks = {row["name"]: row["ranks"] for row in report["layers"] if row["status"] == "factored"}
    final = trained["moves"][-1]["ranks"] if trained["moves"] else trained["measured"][0]["ranks"]
    assert {k: v for k, v in final.items() if v} == ranks
    assert report["params"]["after"] <= 0.12 * report["params"]["before"]
    for row in report["layers"]:  # errors measured on the chosen kernels, not left unknown
        assert np.isfinite(row.get("output_error", 0.0))
    assert report["search"]["joint_output_error"] > 0


def test_int8_grid_kernel_uses_per_channel_scales_and_is_stable(rng):
    from toolchain.compress.qat import int8_grid_kernel

    kernel = rng.normal(size=(3, 3, 4, 6)).astype(np.float32) * np.linspace(0.01, 3, 6, dtype=np.float32)
    grid = int8_grid_kernel(kernel, False)
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    steps = grid / scale
    assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(steps).max() <= 127 + 1e-3
    assert np.allclose(np.abs(grid).max(axis=(0, 1, 2)), np.abs(kernel).max(axis=(0, 1, 2)))
    assert np.array_equal(int8_grid_kernel(grid, False), grid)  # the converter finds the same scales
    per_tensor = np.round(kernel / (np.abs(kernel).max() / 127)) * (np.abs(kernel).max() / 127)
    assert not np.allclose(grid, per_tensor)  # the small channel keeps its own resolution


def test_quantization_aware_finetuning_returns_the_weights_the_converter_stores(digits):
    from ai_edge_litert.interpreter import Interpreter

    from toolchain.compress.finetune import finetune
    from toolchain.convert import convert_model

    tiny = tiny_digits_mlp()
    info = finetune(tiny, None, digits.x_train, digits.y_train, epochs=5, learning_rate=3e-3, verbose=0)
    assert info["qat_epochs"] == 1 and not info["kept_start_weights"]
    kernel = tiny.get_layer("hidden").get_weights()[0]
    interpreter = Interpreter(model_content=convert_model(tiny, digits.x_train))
    stored = [
        d
        for d in interpreter.get_tensor_details()
        if d["dtype"] == np.int8 and d["shape"].tolist() == [12, 64]
    ]
    assert len(stored) == 1
    q = stored[0]["quantization_parameters"]
    weights = interpreter.get_tensor(stored[0]["index"]).astype(np.float32) * q["scales"][:, None]
    assert np.allclose(weights.T, kernel, atol=1e-6)  # per-channel int8, exactly the Keras kernel


def test_calibrate_widens_output_ranges_without_training(digits):
    import keras

    from toolchain.compress.qat import calibrate, fake_quant_copy

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu", name="hidden")])
    quant = fake_quant_copy(model)
    before = [w.copy() for w in quant.get_layer("hidden").get_weights()[:2]]
    calibrate(quant, digits.x_train[:100])
    layer = quant.get_layer("hidden")
    outputs = np.asarray(model(digits.x_train[:100]))
    assert float(layer.out_max.numpy()) == pytest.approx(outputs.max(), rel=0.01)  # int8-rounded kernel
    assert outputs.max() > 0
    assert float(layer.out_min.numpy()) == 0.0 and layer.calibrating is False
    assert all(np.array_equal(a, b) for a, b in zip(before, layer.get_weights()[:2], strict=True))
