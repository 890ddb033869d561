"""The model every export test packages: a small CNN generated with prefix 'shapes', and its data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = "circle,square,cross"


def generate_shapes_model(root: Path) -> dict[str, Path]:
    """A small CNN (conv, depthwise, pointwise, pooling, dense, softmax) generated with prefix 'shapes'
    into `root`: {"gen": codegen folder, "tflite": model, "data": data set, "root": root}."""
    import keras

    from toolchain.codegen import generate
    from toolchain.convert import convert_model
    from toolchain.data import save_dataset

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            keras.layers.Conv2D(6, 1, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8, 8, 1)).astype("float32")
    (root / "model.tflite").write_bytes(convert_model(model, x, samples=32))
    generate(root / "model.tflite", root / "gen", prefix="shapes", tflm_arena=False)
    data = save_dataset(
        root / "data.npz", x_train=x, y_train=rng.integers(0, 3, 40), x_test=x[:8], y_test=np.arange(8) % 3
    )
    return {"gen": root / "gen", "tflite": root / "model.tflite", "data": data, "root": root}
