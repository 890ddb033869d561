"""Accuracy that survives compression: the joint rank search, converging fine-tuning, int8-aware
epochs and the same-size dense baseline, on small real models (digits)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.digits_models import tiny_digits_mlp
from toolchain.compress import compress
from toolchain.data import Dataset


def _held_out(dataset: Dataset):
    cut = int(len(dataset.x_train) * 0.9)
    return dataset.x_train[cut:], dataset.y_train[cut:]


def test_joint_search_beats_the_additive_pick_on_the_whole_model(mlp, digits):
    from toolchain.compress import budget
    from toolchain.compress.pipeline import _calibration
    from toolchain.compress.plan import describe_model as _describe
    from toolchain.compress.plan import layer_widths
    from toolchain.compress.search import BOTTLENECK_RATIO, _JointError, joint_search, width_of

    infos = [i for i in _describe(mlp) if i.kind is not None]
    x = _calibration(digits, 0)
    table = budget.candidate_table(mlp, infos, budget.layer_methods(infos, "svd"), x)
    limit = 0.15 * sum(i.params for i in infos)
    additive = budget.select(table, "params", limit, 0)
    widths = layer_widths(infos)
    found = joint_search(mlp, table, {"params": limit}, {"params": 0}, x, widths)
    assert sum(c.params for c in found.choice.values()) <= limit
    measure = _JointError(mlp, table, x)
    assert found.joint_error == pytest.approx(measure(found.choice))
    assert found.joint_error <= measure(additive) + 1e-9
    names = [i.name for i in infos]
    chosen = [width_of(found.choice[n], widths[n]) for n in names]
    flagged = {neck["layer"] for neck in found.bottlenecks}
    for i, name in enumerate(names):  # a crushed layer is only kept when the search measured it and says so
        neighbours = [chosen[j] for j in (i - 1, i + 1) if 0 <= j < len(names)]
        crushed = found.choice[name].method is not None and all(
            chosen[i] < BOTTLENECK_RATIO * n for n in neighbours
        )
        assert (name in flagged) == crushed  # and a layer kept whole is never called a bottleneck


def test_report_shows_each_layer_alone_and_in_combination(mlp, digits):
    _, report = compress(mlp, digits, target_params=0.3, finetune_epochs=0)
    rows = [row for row in report["layers"] if "output_error_in_combination" in row]
    assert len(rows) == len(report["layers"])
    assert report["search"]["joint_output_error"] > 0
    for row in rows:
        if row["status"] == "kept":
            assert row["output_error"] == 0
            assert row["output_error_in_combination"] == pytest.approx(0, abs=1e-12)
        else:
            assert row["output_error"] > 0


def test_a_classifier_is_judged_by_its_labels_not_by_how_closely_it_copies_the_original() -> None:
    from toolchain.compress.finetune import _label_key

    labels = np.array([0, 1, 1])
    teacher = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])  # wrong on the second sample
    copy = np.array([[0.61, 0.39], [0.69, 0.31], [0.21, 0.79]])  # the original's mistake, copied
    better = np.array([[0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])  # further from it, right on all three
    assert np.sum((copy - teacher) ** 2) < np.sum((better - teacher) ** 2)  # distillation prefers the copy
    assert _label_key(better, labels) > _label_key(copy, labels)
    # logits score as their softmax would
    logits = np.log(better) + 3.0
    assert _label_key(logits, labels) == pytest.approx(_label_key(better, labels))


def test_finetuning_never_returns_a_worse_model_and_leaves_an_original_alone(mlp, digits):
    import keras

    from toolchain.compress.finetune import evaluate, finetune

    x_held, y_held = _held_out(digits)
    model = keras.models.clone_model(mlp)
    model.set_weights(mlp.get_weights())
    before = evaluate(model, x_held, y_held)[1]
    info = finetune(model, mlp, digits.x_train, digits.y_train, epochs=3, learning_rate=0.3, verbose=0)
    assert evaluate(model, x_held, y_held)[1] >= before
    assert info["kept_start_weights"] is True  # a rate this high wrecks it: the start is returned

    _, report = compress(mlp, digits, energy=1.0, finetune_epochs=3)  # nothing worth factoring
    assert report["finetune"]["epochs_run"] == 0 and "skipped" in report["finetune"]
    assert report["accuracy"]["finetuned"] == report["accuracy"]["original"]


def test_learning_rate_follows_how_far_the_model_starts():
    from toolchain.compress.finetune import LR_FAR, LR_NEAR, suited_learning_rate

    rates = [suited_learning_rate(e) for e in (0.0, 0.01, 0.05, 0.2, 0.5, 3.0)]
    assert rates[0] == rates[1] == pytest.approx(LR_NEAR) and rates[-1] == pytest.approx(LR_FAR)
    assert rates == sorted(rates) and rates[2] < rates[3]


def test_fake_quantized_kernels_round_like_the_converter(rng):
    from toolchain.compress.qat import _fake_quant_kernel

    kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    expected = np.round(kernel / scale) * scale
    assert np.allclose(np.asarray(_fake_quant_kernel(kernel, False)), expected, atol=1e-6)
    depthwise = rng.normal(size=(3, 1, 4, 2)).astype(np.float32)  # (kh, kw, C, multiplier)
    flat = depthwise.reshape(3, 1, 8)
    scale = np.abs(flat).max(axis=(0, 1)) / 127
    expected = (np.round(flat / scale) * scale).reshape(depthwise.shape)
    assert np.allclose(np.asarray(_fake_quant_kernel(depthwise, True)), expected, atol=1e-6)


def test_quantization_aware_finetuning_keeps_int8_close_to_float(digits):

    from toolchain.compress.finetune import finetune
    from toolchain.convert import convert_model, evaluate

    tiny = tiny_digits_mlp()
    info = finetune(tiny, None, digits.x_train, digits.y_train, epochs=10, learning_rate=3e-3, verbose=0)
    assert info["qat_epochs"] == 2 and not info["kept_start_weights"]
    scores = evaluate(tiny, convert_model(tiny, digits.x_train), digits)
    assert scores["float"]["accuracy"] > 0.85
    assert abs(scores["int8"]["accuracy"] - scores["float"]["accuracy"]) <= 0.01


def test_baseline_is_a_narrower_model_of_the_same_design_in_the_report(mlp, digits):
    from toolchain.compress.baseline import narrower, output_layers, width_scale_for

    assert output_layers(mlp) == {"classes"}
    half = narrower(mlp, 0.5)
    assert half.get_layer("classes").units == 10
    assert half.get_layer("dense_1").units == mlp.get_layer("dense_1").units // 2
    scale = width_scale_for(mlp, 2000)
    assert narrower(mlp, scale).count_params() <= 2000 < narrower(mlp, min(1.0, scale * 1.2)).count_params()

    _, report = compress(mlp, digits, target_params=0.3, finetune_epochs=6, baseline=True)
    base = report["baseline"]
    assert base["params"] <= report["params"]["after"] and base["epochs_cap"] == 6
    assert report["accuracy"]["baseline"] == base["accuracy"] > 0.5
    assert json.loads(json.dumps(report))["baseline"]["widths"]["classes"] == 10
