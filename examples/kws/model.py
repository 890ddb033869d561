"""The keyword-spotting network: MLPerf Tiny's DS-CNN, and its short training run."""

from __future__ import annotations

from typing import Any

from toolchain.data import Dataset

FILTERS = 64
DS_BLOCKS = 4


def build_ds_cnn(classes: int, seed: int = 0) -> Any:
    """DS-CNN (small) as in MLPerf Tiny: a strided 10x4 convolution, four depthwise-separable
    blocks of 64 channels, average pooling and a Dense classifier (about 23k weights)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    l2 = keras.regularizers.l2(1e-4)
    inputs = keras.Input((49, 10, 1), name="mfcc")
    x = layers.Conv2D(FILTERS, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=l2, name="conv_1")(
        inputs
    )
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Dropout(0.2)(x)
    for block in range(1, DS_BLOCKS + 1):
        x = layers.DepthwiseConv2D(3, padding="same", depthwise_regularizer=l2, name=f"dw_{block}")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(FILTERS, 1, kernel_regularizer=l2, name=f"pw_{block}")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="ds_cnn_kws")


def train(dataset: Dataset, classes: int, epochs: int = 25, seed: int = 0) -> Any:
    """Adam with a cosine learning-rate decay; the last 10% of the training set is the validation set."""
    import keras

    from toolchain.console import fit_progress

    model = build_ds_cnn(classes, seed)
    steps = epochs * ((int(len(dataset.x_train) * 0.9) + 63) // 64)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        dataset.x_train,
        dataset.y_train,
        epochs=epochs,
        batch_size=64,
        validation_split=0.1,
        callbacks=[fit_progress(epochs, "DS-CNN")],
        verbose=0,
    )
    return model
