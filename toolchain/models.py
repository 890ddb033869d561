"""Loading and saving `.keras` files with errors that name the file.

Keras raises a zoo of exceptions for a bad file (ValueError, OSError, zipfile errors,
TypeError for an unknown custom layer); users should see one line saying which file and why.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import ModelError
from toolchain.fileio import check_distinct


def load_keras_model(path: str | Path) -> Any:
    """Load a `.keras` model for inference and rebuilding (never compiled-in custom objects)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p}: no such file")
    if p.suffix not in (".keras", ".h5"):
        raise ModelError(f"model file {p}: expected a .keras (or legacy .h5) Keras model")
    if p.stat().st_size == 0:
        raise ModelError(f"model file {p}: is empty")
    if p.suffix == ".keras" and not zipfile.is_zipfile(p):
        raise ModelError(f"model file {p}: not a .keras archive (Keras saves a zip file; this is not one)")
    import keras

    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to a user.
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Could not locate" in cause or "Unknown layer" in cause or "custom" in cause.lower():
            raise ModelError(
                f"model file {p}: uses a custom layer or object that tinyrank cannot rebuild ({cause[:200]})"
            ) from exc
        raise ModelError(f"model file {p}: not a readable Keras model ({cause[:200]})") from exc
    check_finite_weights(model, p)
    return model


def check_finite_weights(model: Any, path: str | Path) -> None:
    """NaN or Inf weights poison every later stage with confusing errors; name the layer here."""
    for layer in model.layers:
        for weight in layer.weights:
            values = np.asarray(weight)
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad = int(values.size - np.count_nonzero(np.isfinite(values)))
                raise ModelError(
                    f"model file {path}: layer '{layer.name}' weight '{weight.name}' holds {bad} NaN or Inf "
                    "values; retrain or fix the model"
                )


def save_keras_model(model: Any, path: str | Path, source: str | Path | None = None) -> Path:
    """Save atomically (temp file + rename); refuse to overwrite the `source` model."""
    target = Path(path)
    if target.suffix != ".keras":
        raise ModelError(f"output {target}: Keras 3 saves to .keras files; name the output *.keras")
    if source is not None:
        check_distinct(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".keras", dir=target.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def predict_outputs(model: Any, x: Any, batch_size: int = 1024) -> list[np.ndarray]:
    """All outputs of `model` on `x`, one array per output.

    Calls the model directly: `model.predict` traces a new function for every model it
    sees, which is slow and warns when many models (compression candidates, tests) are measured.
    """
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size], training=False)
        chunks.append([np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks, strict=True)]


def model_input_shape(model: Any) -> tuple:
    """The first input's shape without the batch dimension."""
    shape = model.inputs[0].shape
    return tuple(shape[1:])
