"""`--method narrow`: the kept units are the original's most important ones, with their weights, so a
model whose dropped units do nothing computes exactly what the original does; models that are not
one chain, and options narrowing cannot honour, are refused with the layer or flag named."""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.compress import compress
from toolchain.compress.narrow import importance, narrow_hint, narrow_model, weighted_chain
from toolchain.compress.report import print_report
from toolchain.errors import UnsupportedError


def _mlp(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(40, activation="relu", name="hidden_1"),
            keras.layers.Dense(20, activation="relu", name="hidden_2"),
            keras.layers.Dense(3, activation="softmax", name="classes"),
        ]
    )


def _silence(model, layer: str, units: np.ndarray, following: str) -> None:
    """Make `units` of `layer` contribute nothing: zero outgoing weights in `following`."""
    kernel, bias = model.get_layer(following).get_weights()
    kernel[..., units, :] = 0.0
    model.get_layer(following).set_weights([kernel, bias])


def _three_classes(seed: int) -> dict:
    """200 samples of 12 inputs, the class set by the signs of the first two."""
    x = np.random.default_rng(seed).normal(size=(200, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return {"x_train": x[:160], "y_train": y[:160], "x_test": x[160:], "y_test": y[160:]}


def test_importance_is_incoming_times_outgoing_norm():
    kernel = np.array([[3.0, 0.0], [4.0, 1.0]])  # unit 0 in: 5, unit 1 in: 1
    following = np.array([[1.0], [10.0]])  # unit 0 out: 1, unit 1 out: 10
    assert importance(kernel, following).tolist() == [5.0, 10.0]


def test_units_that_do_nothing_are_the_ones_dropped_and_the_outputs_stay_exact():
    model = _mlp()
    rng = np.random.default_rng(0)
    # hidden_1 keeps 8 live units of 40, hidden_2 4 of 20 (the widths of a fifth of the design)
    _silence(model, "hidden_1", np.setdiff1d(np.arange(40), rng.choice(40, 8, replace=False)), "hidden_2")
    _silence(model, "hidden_2", np.setdiff1d(np.arange(20), rng.choice(20, 4, replace=False)), "classes")
    small, rows = narrow_model(model, params=12 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3, seed=0)
    widths = {row["name"]: (row["width_before"], row["width_after"]) for row in rows}
    assert widths == {"hidden_1": (40, 8), "hidden_2": (20, 4), "classes": (3, 3)}
    x = rng.normal(size=(64, 12)).astype(np.float32)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_conv_chain_through_pooling_narrows_channels_exactly():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(4, name="classes"),
        ]
    )
    _silence(model, "conv_1", np.arange(4, 16), "conv_2")
    _silence(model, "conv_2", np.arange(0, 12), "classes")
    small, rows = narrow_model(model, params=9 * 4 + 4 + 9 * 4 * 4 + 4 + 4 * 4 + 4, seed=0)
    assert [row["width_after"] for row in rows] == [4, 4, 4]
    x = np.random.default_rng(1).normal(size=(16, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_a_residual_model_is_refused_naming_the_layer():
    import keras

    inp = keras.Input((8,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    joined = keras.layers.Add(name="skip")([inp, hidden])
    out = keras.layers.Dense(2, name="classes")(joined)
    with pytest.raises(UnsupportedError, match="'skip'"):
        weighted_chain(keras.Model(inp, out))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_macs": 0.3}, "--target-macs"),
        ({"target_params": 0.3, "pareto": True}, "--pareto"),
        ({}, "needs --target-params"),
    ],
)
def test_options_narrowing_cannot_honour_are_refused(options, message):
    with pytest.raises(UnsupportedError, match=message):
        compress(_mlp(), None, method="narrow", **options)


def test_compress_narrow_meets_the_budget_and_reports_each_layer():
    model = _mlp()
    data = _three_classes(2)
    small, report = compress(model, data, method="narrow", target_params=0.3, finetune_epochs=2, verbose=0)
    assert report["method"] == "narrow"
    assert report["params"]["after"] == small.count_params() <= 0.3 * model.count_params()
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["hidden_1"]["status"] == "narrowed" and rows["hidden_1"]["width_after"] < 40
    assert rows["classes"]["width_after"] == 3
    assert report["finetune"]["epochs_run"] >= 1
    assert set(report["accuracy"]) == {"original", "factored", "finetuned"}
    assert model.get_layer("hidden_1").get_weights()[0].shape == (12, 40)  # the input model untouched


def test_bottlenecks_bring_the_hint_only_where_narrowing_applies():
    import keras

    necks = [{"layer": "hidden_2", "width": 4}]
    hint = narrow_hint(_mlp(), necks)
    assert hint is not None and "'hidden_2' (width 4)" in hint and "--method narrow" in hint
    assert narrow_hint(_mlp(), []) is None
    inp = keras.Input((8,))
    joined = keras.layers.Add(name="skip")([inp, keras.layers.Dense(8, name="hidden")(inp)])
    assert narrow_hint(keras.Model(inp, keras.layers.Dense(2)(joined)), necks) is None


def test_auto_with_a_parameter_budget_keeps_the_lower_held_out_loss_of_factoring_and_narrowing(capsys):
    model = _mlp()
    data = _three_classes(3)
    small, report = compress(model, data, method="auto", target_params=0.3, finetune_epochs=2, baseline=True)
    print_report(report)
    assert f"compared with {report['compared_with']['method']}" in capsys.readouterr().out
    other = report["compared_with"]
    assert {report["method"], other["method"]} == {"auto", "narrow"}
    assert report["finetune"]["end_loss"] <= other["held_out_loss"]
    assert report["params"]["after"] == small.count_params() <= 0.3 * model.count_params()
    assert "baseline" in report and "baseline" in report["accuracy"]  # trained once, kept by the winner
    if report["method"] == "narrow":
        assert "search" in report  # the factored search stays on record
    # narrowing was measured either way: no warning suggests trying it
    assert not any("--method narrow" in w for w in report.get("warnings", []))


def _ds_chain(seed: int = 2):
    """conv (8 channels) -> depthwise -> pointwise (8) -> average pool to 1x1 -> flatten -> dense."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 4, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_1")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw_1")(x)
    x = keras.layers.ReLU(name="relu_dw")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu", name="pw_1")(x)
    x = keras.layers.AveragePooling2D((6, 4), name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inp, keras.layers.Dense(3, name="classes")(x))


def test_a_depthwise_separable_chain_narrows_its_channels_through_the_depthwise_layer():
    model = _ds_chain()
    # conv_1 channels 0, 3, 5 and 6 reach pw_1 only through dw_1 filters that are zero
    kernel, bias = model.get_layer("dw_1").get_weights()
    kernel[:, :, [0, 3, 5, 6], :] = 0.0
    bias[[0, 3, 5, 6]] = 0.0
    model.get_layer("dw_1").set_weights([kernel, bias])
    _silence(model, "pw_1", np.array([1, 2, 4, 7]), "classes")
    # widths x0.5: conv_1 and pw_1 keep 4 of 8 (the depthwise layer follows conv_1)
    params = 9 * 4 + 4 + 9 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3
    small, rows = narrow_model(model, params=params, seed=0)
    assert [row["width_after"] for row in rows] == [4, 4, 4, 3]
    x = np.random.default_rng(4).normal(size=(16, 6, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_a_flatten_of_a_spatial_map_is_refused():
    import keras

    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_1")(inp)
    x = keras.layers.Flatten(name="flat")(x)
    with pytest.raises(UnsupportedError, match="'flat'"):
        weighted_chain(keras.Model(inp, keras.layers.Dense(2, name="classes")(x)))
