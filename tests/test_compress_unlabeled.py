"""Data without labels: a classifier is compressed against the original's outputs, and only a
model whose output has its input's shape is taken for an autoencoder."""

from __future__ import annotations

import numpy as np

from toolchain.compress import compress
from toolchain.compress.unlabeled import NOTE, is_autoencoder


def _keyword_cnn():
    """A small DS-CNN-like classifier on 49x10 MFCC-like input: its output is not its input."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((49, 10, 1))
    x = keras.layers.Conv2D(16, (5, 3), strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(12, activation="softmax")(x)
    return keras.Model(inp, out, name="kws")


def test_classifier_without_labels_fine_tunes_against_the_original():
    model = _keyword_cnn()
    x = np.random.default_rng(0).normal(size=(32, 49, 10, 1)).astype(np.float32)
    assert not is_autoencoder(model)
    small, report = compress(model, {"x_train": x}, ranks="conv2d_1=4", finetune_epochs=1)
    assert report["labels"] == NOTE
    assert "original model outputs" in report["finetune"]["target"]
    assert report["metric"] == "accuracy"
    assert report["accuracy"]["original"] == 1.0  # scored against its own predictions
    assert 0.0 <= report["accuracy"]["finetuned"] <= 1.0
    assert small.outputs[0].shape[1:] == (12,)


def test_a_model_whose_output_has_its_input_shape_is_an_autoencoder():
    import keras

    inp = keras.Input((16,))
    auto = keras.Model(inp, keras.layers.Dense(16)(keras.layers.Dense(4)(inp)))
    x = np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32)
    assert is_autoencoder(auto)
    _, report = compress(auto, {"x_train": x}, energy=0.9)
    assert report["labels"] == "from the data"
    assert report["metric"] == "mse"
