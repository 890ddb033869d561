"""The obvious alternative to compression: a narrower model of the same design, trained from scratch.

Factoring only pays if it keeps more accuracy than this, so `compress --baseline` (and every
`--pareto` point) measures it: every hidden Dense and Conv2D gets its width (units, filters)
scaled by one factor, chosen as the largest that fits the compressed model's parameter
count; layers that produce a model output keep their width (the task fixes it). It is
trained on the same data, with the same epoch cap, schedule, early stopping and
quantization-aware epochs as fine-tuning, from a fresh initialization and labels only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from toolchain.errors import ModelError

# A fresh model starts far from any solution: a small digits MLP got 92% in 10 epochs at 3e-3, 68% at 1e-3.
SCRATCH_LEARNING_RATE = 3e-3
WIDTH_KEYS = {"Dense": "units", "Conv2D": "filters"}


def output_layers(model: Any) -> set[str]:
    """Weighted layers whose output reaches a model output through weightless layers only."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [t._keras_history for t in model.outputs]
    while stack:
        layer, node_index, _ = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if layer.weights:
            found.add(layer.name)
            continue
        node = layer._inbound_nodes[node_index] if layer._inbound_nodes else None
        for tensor in node.input_tensors if node is not None else []:
            stack.append(tensor._keras_history)
    return found


def narrower(model: Any, scale: float, seed: int = 0) -> Any:
    """A fresh, untrained copy of `model` with hidden Dense/Conv2D widths times `scale`."""
    import keras

    keep = output_layers(model)
    config = model.get_config()
    for entry in config["layers"]:
        entry.pop("build_config", None)  # the saved input shapes are the old widths
        key = WIDTH_KEYS.get(entry["class_name"])
        layer_config = entry["config"]
        if key and layer_config["name"] not in keep:
            layer_config[key] = max(1, round(layer_config[key] * scale))
    keras.utils.set_random_seed(seed)
    try:
        return type(model).from_config(config)
    except Exception as exc:  # shapes that must match (a residual Add to the input) cannot scale
        raise ModelError(
            f"model '{model.name}': cannot build a narrower model of the same design for the baseline: "
            f"{str(exc).splitlines()[0][:200]}"
        ) from exc


def width_scale_for(model: Any, params: int) -> float:
    """The largest width factor in (0, 1] whose narrower model holds at most `params` parameters."""
    lo, hi = 0.0, 1.0
    if narrower(model, 1.0).count_params() <= params:
        return 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if narrower(model, mid).count_params() <= params:
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-3)


def train_baseline(
    model: Any,
    params: int,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    epochs: int,
    qat: bool = True,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[Any, dict]:
    """(trained narrower model, what was done): at most `params` parameters, trained from scratch."""
    from toolchain.compress.finetune import finetune

    started = time.perf_counter()
    scale = width_scale_for(model, params)
    small = narrower(model, scale, seed)
    info = finetune(
        small,
        None,
        x,
        y,
        epochs=epochs,
        learning_rate=SCRATCH_LEARNING_RATE,
        qat=qat,
        batch_size=batch_size,
        seed=seed,
        verbose=0,
    )
    widths = {
        layer.name: getattr(layer, WIDTH_KEYS[type(layer).__name__])
        for layer in small.layers
        if type(layer).__name__ in WIDTH_KEYS
    }
    return small, {
        "params": int(small.count_params()),
        "width_scale": scale,
        "widths": widths,
        "epochs_run": info["epochs_run"],
        "epochs_cap": epochs,
        "train_seconds": time.perf_counter() - started,
    }
