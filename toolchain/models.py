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
    """Load a `.keras` (or Keras 2 `.h5`) model for inference and rebuilding (no custom objects).

    Keras-2-only config keys that change nothing (such as `groups=1` on DepthwiseConv2D) are
    dropped from a copy of an `.h5` before loading; see `toolchain.legacy_keras`.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return load_saved_model(p)
        raise ModelError(f"model file {p}: is a folder, not a file; give the .keras, .h5 or .tflite file")
    if not p.is_file():
        raise ModelError(f"model file {p}: no such file")
    if p.suffix not in (".keras", ".h5"):
        raise ModelError(f"model file {p}: expected a .keras (or legacy .h5) Keras model")
    if p.stat().st_size == 0:
        raise ModelError(f"model file {p}: is empty")
    if p.suffix == ".keras" and not zipfile.is_zipfile(p):
        raise ModelError(f"model file {p}: not a .keras archive (Keras saves a zip file; this is not one)")
    import keras

    from toolchain.legacy_keras import cleaned_h5_copy, unknown_key_message

    with tempfile.TemporaryDirectory(prefix="tinyrank-h5-") as tmp:
        source = cleaned_h5_copy(p, Path(tmp)) if p.suffix == ".h5" else p
        try:
            model = keras.saving.load_model(source, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad file; all mean the same to a user.
            cause = _cause(exc)
            known = unknown_key_message(cause, source)
            if known:
                raise ModelError(f"model file {p}: {known}") from exc
            if "Could not locate" in cause or "Unknown layer" in cause or "custom" in cause.lower():
                raise ModelError(
                    f"model file {p}: uses a custom layer or object that tinyrank cannot rebuild "
                    f"({cause[:300]})"
                ) from exc
            raise ModelError(f"model file {p}: not a readable Keras model ({cause[:300]})") from exc
    check_finite_weights(model, f"model file {p}")
    return model


def check_finite_weights(model: Any, where: str) -> None:
    """NaN or Inf weights (training diverged) poison every later stage with confusing errors; name the
    layer here. `where` starts the message: the file, or the model when it came from memory."""
    for layer in model.layers:
        for weight in layer.weights:
            values = np.asarray(weight)
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad = int(values.size - np.count_nonzero(np.isfinite(values)))
                raise ModelError(
                    f"{where}: layer '{layer.name}' weight '{weight.name}' holds {bad} NaN or Inf "
                    "values; retrain or fix the model"
                )


def _cause(exc: BaseException) -> str:
    """The telling part of a Keras loading error: the nested exception, not the long config dump."""
    text = str(exc).strip()
    if "Exception encountered:" in text:
        text = text.rsplit("Exception encountered:", 1)[1].strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_saved_model(folder: Path) -> Any:
    """A TensorFlow SavedModel folder as a one-input, one-output Keras model (inference only).

    Its serving signature is wrapped in a Keras layer, so conversion and scoring run as for a
    `.keras` model; there are no Keras layers inside to compress.
    """
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(folder))
        signature = loaded.signatures["serving_default"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"SavedModel {folder}: cannot load its serving_default signature ({exc})") from exc
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"SavedModel {folder}: supported: one input and one output "
            f"(found {len(inputs)} and {len(outputs)})"
        )
    spec = next(iter(inputs.values()))
    output_key = next(iter(outputs))
    layer = keras.layers.TFSMLayer(str(folder), call_endpoint="serving_default")
    x = keras.Input(tuple(spec.shape[1:]), dtype=spec.dtype.name)
    y = layer(x)
    return keras.Model(x, y[output_key] if isinstance(y, dict) else y, name=folder.name)


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
