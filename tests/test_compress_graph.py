"""Rebuilding models: batch-norm folding, residual branches, several inputs and outputs."""

from __future__ import annotations

import numpy as np

from toolchain.compress import compress
from toolchain.compress.graph import fold_batchnorms


def _randomize_batchnorms(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [rng.random(n) + 0.5, rng.normal(size=n), rng.normal(size=n), rng.random(n) + 0.5]
            )


def _residual_two_io_model():
    """Two inputs, a Conv+BN stem, a residual Add, two outputs (logits and a feature)."""
    import keras

    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((5,), name="extra")
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(image)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Concatenate(name="join")([x, extra])
    feature = keras.layers.Dense(16, activation="relu", name="feature")(x)
    logits = keras.layers.Dense(4, name="logits")(feature)
    return keras.Model([image, extra], [logits, feature], name="two_io")


def test_batchnorm_folding_keeps_the_function(rng):
    model = _residual_two_io_model()
    _randomize_batchnorms(model, rng)
    folded, folds = fold_batchnorms(model)
    assert folds == [{"batchnorm": "stem_bn", "into": "stem"}]
    assert "stem_bn" not in [layer.name for layer in folded.layers]
    x = [rng.normal(size=(3, 8, 8, 3)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)]
    for want, got in zip(model(x), folded(x), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)


def test_batchnorm_after_an_activation_is_not_folded(rng):
    import keras

    model = keras.Sequential(
        [
            keras.Input((6,), name="x"),
            keras.layers.Dense(5, activation="relu", name="d"),
            keras.layers.BatchNormalization(name="bn"),
        ]
    )
    folded, folds = fold_batchnorms(model)
    assert folds == [] and folded is model


def _plant_low_rank(model, rng):
    """Kernels of exact Tucker rank 2:3 (convs) and matrix rank 3 (feature), so factoring
    at those ranks must reproduce the model."""
    for name in ("stem", "branch"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        kh, kw, c, n = kernel.shape
        core = rng.normal(size=(kh, kw, 2, 3))
        kernel = np.einsum("hwab,ca,nb->hwcn", core, rng.normal(size=(c, 2)), rng.normal(size=(n, 3)))
        layer.set_weights([kernel.astype(np.float32), bias])
    layer = model.get_layer("feature")
    m, n = layer.get_weights()[0].shape
    kernel = rng.normal(size=(m, 3)) @ rng.normal(size=(3, n)) / 3
    layer.set_weights([kernel.astype(np.float32), rng.normal(size=n).astype(np.float32)])


def test_functional_model_keeps_topology_and_names(rng):
    model = _residual_two_io_model()
    _randomize_batchnorms(model, rng)
    _plant_low_rank(model, rng)
    ranks = {"stem": (2, 3), "branch": (2, 3), "feature": (3,)}
    small, report = compress(model, None, method="tucker", ranks=ranks)
    names = [layer.name for layer in small.layers]
    assert [t.name for t in small.inputs] == ["image", "extra"]
    assert small.output_names == ["logits", "feature"]
    for expected in (
        "stem_in",
        "stem_core",
        "stem",
        "branch_in",
        "branch_core",
        "branch",
        "feature_u",
        "residual",
    ):
        assert expected in names
    x = [rng.normal(size=(2, 8, 8, 3)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)]
    for want, got in zip(model(x), small(x), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-4)
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["logits"]["status"] == "kept" and "no rank given" in rows["logits"]["reason"]
    assert rows["branch"]["status"] == "factored" and rows["branch"]["rel_error"] < 1e-4
    assert rows["feature"]["params_after"] == 13 * 3 + 3 * 16 + 16
    assert report["folded_batchnorm"] == [{"batchnorm": "stem_bn", "into": "stem"}]


def test_a_rank_that_saves_nothing_keeps_the_layer(rng):
    model = _residual_two_io_model()
    small, report = compress(model, None, method="tucker", ranks={"branch": (8, 8)})
    row = next(row for row in report["layers"] if row["name"] == "branch")
    assert row["status"] == "kept" and "would not make it smaller" in row["reason"]
    assert [layer.name for layer in small.layers] == [
        layer.name for layer in fold_batchnorms(model)[0].layers
    ]


def test_shared_and_depthwise_layers_stay_with_a_reason(rng):
    import keras

    inp = keras.Input((6, 6, 4), name="x")
    shared = keras.layers.Dense(4, name="shared")
    a = shared(inp)
    b = shared(keras.layers.ReLU()(inp))
    x = keras.layers.Add()([a, b])
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    model = keras.Model(inp, x)
    small, report = compress(model, None, energy=0.5)
    rows = {row["name"]: row for row in report["layers"]}
    assert "shared layer (called 2 times)" in rows["shared"]["reason"]
    assert "depthwise" in rows["dw"]["reason"]
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(model(x)), atol=1e-5)
