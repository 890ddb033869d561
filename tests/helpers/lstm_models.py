"""Small Keras LSTMs converted to full int8 here, for the UNIDIRECTIONAL_SEQUENCE_LSTM tests
(and benchmarks/bench_lstm.py).

TensorFlow 2.21's converter fuses a tf_keras (Keras 2) LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM
with int8 weights and an int16 cell state; a Keras 3 LSTM does not fuse (its TensorList ops
fail to lower), so the test models are built with tf_keras and go through
`toolchain.convert.convert_model`, which traces recurrent models with a batch of one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TIME_STEPS, FEATURES = 8, 6


def lstm_model(
    stacked: bool,
    seed: int = 0,
    *,
    time_steps: int = TIME_STEPS,
    features: int = FEATURES,
    units: tuple[int, int] = (12, 8),
) -> Any:
    """Input (8, 6) -> LSTM(12) -> Dense(4); stacked: LSTM(12, return_sequences) -> LSTM(8) -> Dense(4)."""
    import tensorflow as tf
    import tf_keras

    tf.random.set_seed(seed)
    x = tf_keras.Input((time_steps, features))
    h = x
    if stacked:
        h = tf_keras.layers.LSTM(units[0], return_sequences=True, name="lstm_a")(h)
        h = tf_keras.layers.LSTM(units[1], name="lstm_b")(h)
    else:
        h = tf_keras.layers.LSTM(units[0], name="lstm")(h)
    y = tf_keras.layers.Dense(4, name="dense")(h)
    return tf_keras.Model(x, y, name="stacked_lstm" if stacked else "lstm")


def sequences(
    count: int, seed: int = 0, *, time_steps: int = TIME_STEPS, features: int = FEATURES
) -> np.ndarray:
    """Smooth random sequences (a random walk per feature), float32 [count, time_steps, features]."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.6, size=(count, time_steps, features))
    return np.cumsum(steps, axis=1).astype(np.float32)


def converted(stacked: bool, seed: int = 0, **sizes: Any) -> bytes:
    """The full-int8 flatbuffer of `lstm_model(stacked, **sizes)`, calibrated on `sequences`."""
    from toolchain.convert import convert_model

    shape = {k: v for k, v in sizes.items() if k in ("time_steps", "features")}
    return convert_model(lstm_model(stacked, seed, **sizes), sequences(200, seed + 1, **shape), samples=100)
