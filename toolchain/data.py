"""The data contract shared by every stage: one `.npz` file.

Keys: `x_train`, `y_train` (fine-tuning and int8 calibration), and optionally `x_test`,
`y_test` (evaluation). Checked up front so a shape mistake is reported before minutes of
work, naming the key, the shape found and the shape expected. Every stage goes through
`load_dataset` (real numbers, finite, at least one sample per array, lengths agree), then
`check_input_shape` against its model's input and `check_labels` against its model's classes.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Arrays of one `.npz` file; `y_*` may be None for models without labels."""

    path: Path
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    @property
    def eval_x(self) -> np.ndarray:
        """The samples to evaluate on: `x_test` when given, else `x_train`."""
        return self.x_test if self.x_test is not None else self.x_train

    @property
    def eval_y(self) -> np.ndarray | None:
        return self.y_test if self.x_test is not None else self.y_train


def _check_finite(where: str, key: str, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{where}: key '{key}' has dtype {array.dtype}; expected real numbers")
    if array.ndim == 0:
        raise DataError(f"{where}: key '{key}' is a single number; expected one row per sample")
    if len(array) == 0:
        raise DataError(f"{where}: key '{key}' is empty; it needs at least one sample")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise DataError(f"{where}: key '{key}' holds {bad} NaN or Inf values")


def load_dataset(path: str | Path) -> Dataset:
    """Read and sanity-check an `.npz` data set (keys present, numeric, finite, lengths agree)."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"data file {p}: is a folder; expected an .npz file")
    if not p.is_file():
        raise DataError(f"data file {p}: no such file")
    if not zipfile.is_zipfile(p):
        raise DataError(
            f"data file {p}: not a readable .npz archive (np.savez writes one; a single .npy is not)"
        )
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DataError(f"data file {p}: not a readable .npz archive ({exc})") from exc
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # np.load hands back the raw bytes of other members
            raise DataError(f"data file {p}: member '{key}' is not a .npy array")
    return dataset_from_arrays(arrays, p, where=f"data file {p}")


def dataset_from_arrays(
    arrays: Mapping[str, Any], path: Path = Path("<arrays>"), *, where: str = "data dict"
) -> Dataset:
    """The checks of an `.npz` file, on arrays in memory; `where` starts every error message.

    The one place the data contract is checked: `load_dataset` reads a file into this.
    """
    arrays = {key: np.asarray(value) for key, value in arrays.items() if value is not None}
    if "x_train" not in arrays:
        raise DataError(f"{where}: missing key 'x_train' (found: {', '.join(sorted(arrays)) or 'none'})")
    if ("x_test" in arrays) != ("y_test" in arrays) and "y_train" in arrays:
        missing = "y_test" if "x_test" in arrays else "x_test"
        raise DataError(f"{where}: has {'x_test' if missing == 'y_test' else 'y_test'} but not '{missing}'")
    for key, array in arrays.items():
        _check_finite(where, key, array)
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if x_key in arrays and y_key in arrays and len(arrays[x_key]) != len(arrays[y_key]):
            raise DataError(
                f"{where}: '{x_key}' has {len(arrays[x_key])} samples but '{y_key}' has {len(arrays[y_key])}"
            )
    return Dataset(
        path=path,
        x_train=arrays["x_train"],
        y_train=arrays.get("y_train"),
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
    )


def check_input_shape(dataset: Dataset, expected: Sequence[int | None], where: str = "model") -> None:
    """Check `x_train`/`x_test` against a model input shape (batch dimension excluded or None)."""
    want = tuple(int(d) if d is not None else None for d in expected)
    if want and want[0] is None:
        want = want[1:]
    for key in ("x_train", "x_test"):
        array = getattr(dataset, key)
        if array is None:
            continue
        found = tuple(array.shape[1:])
        fits = len(found) == len(want) and all(w is None or w == f for w, f in zip(want, found, strict=True))
        if not fits:
            raise DataError(
                f"{dataset.path}: key '{key}' has samples of shape {found}; the {where} expects {want}"
            )


def check_labels(dataset: Dataset, classes: int, where: str = "model") -> None:
    """Class labels (when the labels are classes) inside the model's range: 0..classes-1, or 0/1
    for a single sigmoid output; a label outside would fail deep inside TensorFlow."""
    limit = 2 if classes == 1 else classes
    for key in ("y_train", "y_test"):
        labels = class_labels(getattr(dataset, key))
        if labels is None or labels.size == 0:
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise DataError(
                f"{dataset.path}: key '{key}' holds class {bad}; the {where} has {classes} output"
                f"{'s' if classes != 1 else ''}, so labels must be 0..{limit - 1}"
            )


def class_labels(y: np.ndarray | None) -> np.ndarray | None:
    """Integer class labels from `y` (rank-1 integers, or one-hot rows), or None when `y` is not classes.

    Every stage reads the task from the labels the same way: classes mean accuracy and
    cross-entropy; anything else, or no labels (an autoencoder), means mean squared error.
    """
    if y is None:
        return None
    if y.ndim == 2 and y.shape[1] >= 2 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return y
    return None


def is_classification(dataset: Dataset) -> bool:
    """Integer (or one-hot) labels mean classes; anything else is regression or reconstruction."""
    return class_labels(dataset.y_train) is not None


def score_outputs(outputs: np.ndarray, y: np.ndarray | None, x: np.ndarray) -> dict[str, float]:
    """{'accuracy': ...} against class labels, else {'mse': ...} against `y` (or the input `x`)."""
    labels = class_labels(y)
    if labels is not None:
        return {"accuracy": float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=1) == labels))}
    target = np.asarray(x if y is None else y, dtype=np.float32)
    if y is None and np.asarray(outputs).size != target.size:  # not an autoencoder: nothing to score against
        return {"unlabeled": float("nan")}
    return {"mse": float(np.mean((np.asarray(outputs, np.float32).reshape(target.shape) - target) ** 2))}


def save_dataset(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an `.npz` atomically (used by the demo and tests to make data sets)."""
    import io

    from toolchain.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return atomic_write_bytes(path, buffer.getvalue())
