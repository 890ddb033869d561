"""`toolchain.compress.compress` on the real digits data: ranks, budgets, fine-tuning, report."""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.compress import compress
from toolchain.errors import BudgetError, DataError, ModelError, UnsupportedError


def _small_cnn():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv_2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="softmax", name="classes"),
        ],
        name="cnn",
    )


def test_energy_svd_with_finetuning_keeps_accuracy_and_the_input_model(mlp, digits):
    weights_before = [w.copy() for w in mlp.get_weights()]
    small, report = compress(mlp, digits, method="svd", energy=0.8, finetune_epochs=4)
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, mlp.get_weights(), strict=True))
    assert [type(layer).__name__ for layer in small.layers].count("Dense") > len(mlp.layers)
    assert small.layers[-1].name == mlp.layers[-1].name and small.inputs[0].name == mlp.inputs[0].name
    first = next(row for row in report["layers"] if row["status"] == "factored")
    assert first["layers"] == [f"{first['name']}_u", first["name"]]
    assert small.get_layer(f"{first['name']}_u").units == first["ranks"][0]
    assert report["params"]["after"] < report["params"]["before"]
    assert report["int8_flash_bytes"]["after"] < report["int8_flash_bytes"]["before"]
    assert report["metric"] == "accuracy"
    acc = report["accuracy"]
    assert acc["original"] > 0.9
    assert acc["finetuned"] >= acc["original"] - 0.03
    assert report["finetune"]["epochs_run"] >= 1
    assert report["finetune"]["target"] == "labels + original model outputs"  # distillation by default
    assert 0 < report["compress_seconds"] < 30


def test_explicit_ranks_only_touch_named_layers(mlp, digits):
    small, report = compress(mlp, digits, ranks="dense_1=5", finetune_epochs=0)
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["dense_1"]["ranks"] == [5] and rows["dense_1"]["params_after"] == 64 * 5 + 5 * 64 + 64
    assert rows["dense_2"]["status"] == "kept"
    assert small.get_layer("dense_1_u").get_weights()[0].shape == (64, 5)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"ranks": "nosuch=3"}, r"layer 'nosuch' does not exist"),
        ({"ranks": "dense_1=0"}, r"layer 'dense_1': rank 0 must be at least 1"),
        ({"ranks": "dense_1=65"}, r"layer 'dense_1' \(index 0\): rank 65 must be in 1\.\.64"),
        ({"ranks": "dense_1"}, r"'dense_1' is not LAYER=R"),
        ({"energy": 1.5}, r"--energy 1.5"),
        ({"method": "qr"}, r"--method qr"),
        ({"target_params": 0.5, "energy": 0.9}, r"chooses the ranks itself"),
    ],
)
def test_bad_options_name_the_key(mlp, digits, options, message):
    with pytest.raises((ModelError, UnsupportedError), match=message):
        compress(mlp, digits, **options)


def test_wrong_data_is_refused_before_work(mlp):
    x = np.zeros((10, 63), np.float32)
    with pytest.raises(DataError, match=r"'x_train' has samples of shape \(63,\)"):
        compress(mlp, {"x_train": x, "y_train": np.zeros(10, np.int64)})
    bad = np.zeros((10, 64), np.float32)
    bad[3, 5] = np.nan
    with pytest.raises(DataError, match="^data dict: key 'x_train' holds 1 NaN or Inf values"):
        compress(mlp, {"x_train": bad})
    # Arrays in memory get every check a file gets (data.dataset_from_arrays).
    with pytest.raises(DataError, match="^data dict: 'x_train' has 10 samples but 'y_train' has 9"):
        compress(mlp, {"x_train": np.zeros((10, 64), np.float32), "y_train": np.zeros(9, np.int64)})


def test_nan_weights_are_refused(mlp):
    import keras

    broken = keras.models.clone_model(mlp)
    weights = mlp.get_weights()
    weights[2] = weights[2].copy()
    weights[2][0, 0] = np.inf
    broken.set_weights(weights)
    with pytest.raises(ModelError, match="layer 'dense_2'.*NaN or Inf"):
        compress(broken, None)


def test_budget_search_meets_the_parameter_target(mlp, digits):
    small, report = compress(mlp, digits, target_params=0.4, finetune_epochs=0)
    assert report["rank_selection"] == "budget"
    assert report["params"]["after"] <= 0.4 * report["params"]["before"]
    assert report["params"]["after"] > 0.25 * report["params"]["before"]  # the leftover is spent
    assert report["accuracy"]["factored"] > 0.5
    assert any("output_error" in row for row in report["layers"])


def test_budget_search_meets_the_mac_target_and_refuses_the_impossible(mlp, digits):
    _, report = compress(mlp, digits, target_macs=0.5, finetune_epochs=0)
    assert report["macs"]["after"] <= 0.5 * report["macs"]["before"]
    with pytest.raises(BudgetError, match="cannot be met"):
        compress(mlp, digits, target_params=0.01)


def test_board_budget_keeps_a_model_that_already_fits(mlp, digits):
    small, report = compress(mlp, digits, board="nano33")
    assert report["budget"]["board"] == "nano33"
    assert report["budget"]["original_flash_bytes"] <= report["budget"]["flash_limit"]
    # the compressed model generated and sized by the budget model `tinyrank build` checks
    assert report["budget"]["generated_flash_bytes"] == report["budget"]["original_flash_bytes"]
    assert report["budget"]["generated_ram_bytes"] <= report["budget"]["ram_limit"]
    assert all(row["status"] == "kept" for row in report["layers"])
    assert report["params"]["after"] == report["params"]["before"]


def test_auto_picks_the_least_error_at_equal_size():
    model = _small_cnn()
    _, report = compress(model, None, method="auto", energy=0.8)
    row = next(row for row in report["layers"] if row["name"] == "conv_2")
    candidates = row["auto_candidates"]
    assert set(candidates) <= {"tucker", "cp", "spatial"} and len(candidates) >= 2
    assert row["method"] == min(candidates, key=lambda m: candidates[m]["rel_error"])
    reference = candidates["tucker"]["params"]
    assert all(c["params"] <= reference for c in candidates.values())


def test_seminmf_is_reported_next_to_svd(mlp, digits):
    small, report = compress(mlp, digits, method="seminmf", ranks="dense_1=8", finetune_epochs=0)
    row = report["layers"][0]
    assert row["method"] == "seminmf" and row["svd_rel_error"] <= row["rel_error"] + 1e-6
    assert small.get_layer("dense_1").get_weights()[0].min() >= 0


def test_vbmf_ranks_for_a_cnn():
    _, report = compress(_small_cnn(), None, method="tucker", vbmf=True)
    assert report["rank_selection"] == "vbmf"
    convs = [row for row in report["layers"] if row["class"] == "Conv2D"]
    assert convs
    for row in convs:
        if row["status"] == "factored":
            assert row["method"] == "tucker" and len(row["ranks"]) == 2
        else:
            assert "would not make it smaller" in row["reason"]


def test_distillation_and_autoencoder_finetuning(mlp, digits, rng):
    import keras

    _, report = compress(mlp, digits, ranks="dense_1=4", finetune_epochs=2, distill=True)
    assert report["finetune"]["target"] == "labels + original model outputs"
    assert report["accuracy"]["finetuned"] >= report["accuracy"]["factored"] - 0.02

    keras.utils.set_random_seed(0)
    auto = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu", name="enc"),
            keras.layers.Dense(64, name="dec"),
        ]
    )
    auto.compile("adam", "mse")
    auto.fit(digits.x_train, digits.x_train, epochs=3, verbose=0)
    data = {"x_train": digits.x_train, "x_test": digits.x_test}
    _, report = compress(auto, data, ranks="dec=3", finetune_epochs=3, distill=False)
    assert report["metric"] == "mse" and report["finetune"]["target"] == "inputs (autoencoder)"
    assert report["mse"]["finetuned"] < report["mse"]["factored"]


def test_pareto_sweep_and_plot(mlp, digits, tmp_path, monkeypatch):
    from toolchain.compress import pipeline
    from toolchain.compress.report import plot_pareto

    monkeypatch.setattr(pipeline, "PARETO_FRACTIONS", (1.0, 0.5, 0.25, 0.1))  # each point trains two models
    _, report = compress(mlp, digits, target_params=0.5, pareto=True, finetune_epochs=1)
    points = report["pareto"]
    assert len(points) == 4
    assert all(p["baseline_params"] <= p["params"] and 0 < p["baseline"] <= 1 for p in points)
    params = [p["params"] for p in points]
    assert params == sorted(params, reverse=True)
    assert points[0]["factored"] == pytest.approx(report["accuracy"]["original"])
    path = plot_pareto(report, tmp_path / "pareto.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_hot_labels_count_as_classes(mlp, digits):
    one_hot = np.eye(10, dtype=np.float32)[digits.y_train]
    data = {"x_train": digits.x_train, "y_train": one_hot}
    _, report = compress(mlp, data, ranks="dense_1=8", finetune_epochs=1, distill=False)
    assert report["metric"] == "accuracy" and report["finetune"]["target"] == "labels"
    assert report["accuracy"]["finetuned"] > 0.8


def test_board_budget_refuses_activations_that_cannot_fit():
    import keras

    model = keras.Sequential(
        [
            keras.Input((100_000,), name="signal"),
            keras.layers.Reshape((100_000, 1), name="as_sequence"),
            keras.layers.GlobalAveragePooling1D(name="mean"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    data = {"x_train": np.zeros((4, 100_000), np.float32), "y_train": np.zeros(4, np.int64)}
    with pytest.raises(BudgetError, match=r"board 'nano33': activations need about 200000 bytes"):
        compress(model, data, board="nano33")


def test_finetuning_that_only_hurts_is_undone(mlp, digits):
    _, report = compress(mlp, digits, ranks="dense_1=16", finetune_epochs=2, learning_rate=50.0)
    assert report["finetune"]["kept_start_weights"] is True
    assert report["accuracy"]["finetuned"] == report["accuracy"]["factored"]


def test_accuracy_collapse_is_warned_about_and_small_losses_are_not() -> None:
    from toolchain.compress.pipeline import accuracy_warning

    # a latency budget met by crushing a layer: the fine-tuned model is far below the original
    warning = accuracy_warning("accuracy", {"original": 0.9056, "factored": 0.11, "finetuned": 0.26})
    assert warning is not None and "90.56% to 26.00%" in warning and "--finetune-epochs" in warning
    # without fine-tuning the factored score is the one judged
    assert accuracy_warning("accuracy", {"original": 0.98, "factored": 0.80}) is not None
    assert accuracy_warning("accuracy", {"original": 0.9889, "factored": 0.5, "finetuned": 0.9861}) is None
    assert accuracy_warning("mse", {"original": 0.01, "factored": 0.5}) is None  # not a classifier
