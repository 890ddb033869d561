"""Data without labels: the original model's own outputs become the targets.

With no `y_train`, a model whose output has its input's shape is an autoencoder and learns
to reproduce its input. Any other model (a classifier, a regressor) is compressed against
what the original computes: class labels from its predictions for a classifier, its raw
outputs otherwise, and fine-tuning distils from it. The report says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from toolchain.data import Dataset
from toolchain.models import predict_outputs

NOTE = "no labels in the data: fine-tuned and scored against the original model's outputs"


def is_autoencoder(model: Any) -> bool:
    """One output with exactly its input's shape."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    return tuple(model.inputs[0].shape[1:]) == tuple(model.outputs[0].shape[1:])


def needs_teacher_labels(model: Any, dataset: Dataset | None) -> bool:
    return dataset is not None and dataset.y_train is None and not is_autoencoder(model)


def teacher_labels(model: Any, x: np.ndarray) -> np.ndarray:
    """Class indices when the model outputs one score per class, else its outputs as they are."""
    (outputs,) = predict_outputs(model, x)[:1]
    if outputs.ndim == 2 and outputs.shape[1] >= 2:
        return np.argmax(outputs, axis=1).astype(np.int64)
    return np.asarray(outputs, dtype=np.float32)


def label_with_teacher(model: Any, dataset: Dataset) -> Dataset:
    """The data set with `y_train` (and `y_test`) taken from the original model."""
    y_test = teacher_labels(model, dataset.x_test) if dataset.x_test is not None else None
    return replace(dataset, y_train=teacher_labels(model, dataset.x_train), y_test=y_test)
