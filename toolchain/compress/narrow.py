"""Narrowing (`--method narrow`): the same design with fewer hidden units, started from the original's.

Why a method that is not low-rank: at a tenth of its size a factored digits MLP passes its
inputs through ranks of 5-7 numbers (64-6-256, 256-5-128, 128-6-10), and over originals
trained with seeds 0-2 it ended at 97.41% int8 where a 64-52-26-10 MLP of the same size
trained from scratch reached 98.61%. The same 64-52-26-10 design, started from the 52 and 26
most important hidden units of the original and fine-tuned with distillation like a
factored model, reached 98.80% (98.89/98.89/98.61). Low-rank keeps every hidden unit and
squeezes what flows between them; at that budget keeping fewer, whole units is better.

A unit's importance is the norm of the weights that feed it times the norm of the weights
it feeds: a unit with small weights on either side changes the next layer little. The
narrower model is `baseline.narrower` (the widths the dense baseline gets), so the
comparison with the baseline is between two starts of one design.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.compress.baseline import narrower, width_scale_for
from toolchain.errors import UnsupportedError

WEIGHTED = ("Dense", "Conv2D")
# Layers that keep the channel order and count, so a kept unit of one weighted layer is a kept
# input of the next.
CHANNEL_PRESERVING = (
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "Dropout",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
)


def weighted_chain(model: Any) -> list[Any]:
    """The model's Dense, Conv2D and DepthwiseConv2D layers in order; UnsupportedError, naming the
    layer, where the model is not one chain of them joined by channel-preserving layers (only then
    does a kept unit map to one input of the next weighted layer). A depthwise layer keeps its
    input's channels, so it takes the kept channels of the layer before it."""
    chain: list[Any] = []
    previous = None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if previous is not None and not _follows(layer, previous):
            raise UnsupportedError(
                f"--method narrow: layer '{layer.name}' does not take the output of '{previous.name}': "
                "narrowing needs a plain chain of layers (use a factoring method)"
            )
        previous = layer
        if kind in WEIGHTED or kind == "DepthwiseConv2D":
            _check_weighted(layer, kind)
            chain.append(layer)
        elif kind == "Flatten" and (not chain or _spatial_size(layer) == 1):
            continue  # before any weighted layer, or on 1x1 maps, it keeps the channel order
        elif kind not in CHANNEL_PRESERVING:
            raise UnsupportedError(
                f"--method narrow: layer '{layer.name}' ({kind}) does not keep the channel order between "
                "weighted layers (use a factoring method)"
            )
    if sum(type(layer).__name__ in WEIGHTED for layer in chain) < 2:
        raise UnsupportedError("--method narrow: the model has no hidden Dense or Conv2D layer to narrow")
    return chain


def _check_weighted(layer: Any, kind: str) -> None:
    config = layer.get_config()
    if kind == "Conv2D" and int(config.get("groups", 1)) != 1:
        raise UnsupportedError(f"--method narrow: Conv2D '{layer.name}' is grouped")
    if kind == "DepthwiseConv2D" and int(config.get("depth_multiplier", 1)) != 1:
        raise UnsupportedError(f"--method narrow: DepthwiseConv2D '{layer.name}' has a depth multiplier")


def _spatial_size(layer: Any) -> int:
    return int(np.prod([d or 0 for d in layer.input.shape[1:-1]]))


def _follows(layer: Any, previous: Any) -> bool:
    try:
        return layer.input is previous.output
    except (AttributeError, ValueError):  # a layer called more than once has no single input
        return False


def importance(kernel: np.ndarray, next_kernel: np.ndarray) -> np.ndarray:
    """Per output unit of `kernel` (last axis): the norm of its incoming weights times the norm of
    its outgoing weights in `next_kernel` (whose second-to-last axis is that unit)."""
    incoming = np.sqrt(np.sum(kernel.reshape(-1, kernel.shape[-1]) ** 2, axis=0))
    outgoing = np.sqrt(
        np.sum(np.moveaxis(next_kernel, -2, 0).reshape(next_kernel.shape[-2], -1) ** 2, axis=1)
    )
    return incoming * outgoing


def channel_norms(depthwise_kernel: np.ndarray) -> np.ndarray:
    """Per channel of a depthwise kernel (kh, kw, channels, 1): the norm of its filter."""
    return np.sqrt(np.sum(depthwise_kernel**2, axis=(0, 1, 3)))


def narrow_model(model: Any, params: int, seed: int = 0) -> tuple[Any, list[dict]]:
    """(narrower model of at most `params` parameters holding the original's most important
    units, one row per weighted layer: widths and the share of the kernel's weight norm dropped).

    A unit of a Dense or Conv2D layer is scored by its incoming weights, the filters of the
    depthwise layers it passes through (each scales that channel alone) and its outgoing
    weights in the next Dense or Conv2D layer."""
    chain = weighted_chain(model)
    small = narrower(model, width_scale_for(model, params), seed)
    rows = []
    kept: np.ndarray | None = None  # the channels of the previous layer's output that stay
    for index, layer in enumerate(chain):
        weights = layer.get_weights()
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        axis = -2 if not depthwise else 2  # the input channels (for a depthwise layer, its channels)
        kernel = weights[0] if kept is None else np.take(weights[0], kept, axis=axis)
        if depthwise:  # it keeps the channels kept before it: `kept` stays
            new = [kernel, *(w if kept is None else w[kept] for w in weights[1:])]
        else:
            width = int(small.get_layer(layer.name).get_weights()[0].shape[-1])
            keep = np.arange(kernel.shape[-1])
            if width < kernel.shape[-1]:
                keep = np.sort(np.argsort(-_score(kernel, chain[index + 1 :]), kind="stable")[:width])
            new = [kernel[..., keep], *(w[keep] for w in weights[1:])]
        small.get_layer(layer.name).set_weights(new)
        dropped = 1.0 - float(np.sum(new[0] ** 2)) / max(float(np.sum(weights[0] ** 2)), 1e-30)
        rows.append(
            {
                "name": layer.name,
                "width_before": int(weights[0].shape[2 if depthwise else -1]),
                "width_after": int(new[0].shape[2 if depthwise else -1]),
                "rel_error": float(np.sqrt(max(dropped, 0.0))),
            }
        )
        if not depthwise:
            kept = keep
    return small, rows


def _score(kernel: np.ndarray, rest: list[Any]) -> np.ndarray:
    """Importance of `kernel`'s output units: through the depthwise layers that follow, into the
    next Dense or Conv2D layer of `rest`."""
    scale = np.ones(kernel.shape[-1])
    for layer in rest:
        if type(layer).__name__ == "DepthwiseConv2D":
            scale = scale * channel_norms(layer.get_weights()[0])
            continue
        return importance(kernel, layer.get_weights()[0]) * scale
    raise AssertionError("a narrowed layer always has a Dense or Conv2D layer after it")


def can_narrow(model: Any) -> bool:
    """Whether `narrow_model` takes this model (one chain of Dense and Conv2D layers)."""
    try:
        weighted_chain(model)
    except UnsupportedError:
        return False
    return True


def narrow_hint(model: Any, bottlenecks: list[dict]) -> str | None:
    """A warning for a factored model whose budget left bottlenecks (search.bottleneck_rows),
    where narrowing could take the model instead; None otherwise."""
    if not bottlenecks or not can_narrow(model):
        return None
    names = ", ".join(f"'{row['layer']}' (width {row['width']})" for row in bottlenecks)
    return (
        f"the budget leaves bottlenecks: {names}; --method narrow keeps fewer whole units instead "
        "(on a digits MLP at a tenth of its size it kept 1.4 points more than factoring)"
    )
