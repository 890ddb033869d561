"""Keras models sized for the digits data set, shared by the compress tests."""

from __future__ import annotations

from typing import Any


def tiny_digits_mlp(seed: int = 0) -> Any:
    """A 64-12-10 MLP ("hidden", "classes"), untrained, seeded: small enough to fine-tune in seconds."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(12, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation="softmax", name="classes"),
        ]
    )
