"""The Keras layers that replace a factored layer: class name, config and weights of each.

The configs start from the original layer's, so everything the factoring does not change
(padding, dilation, dtype, regularizers of the last layer) carries over; the naming of the
replacement layers is in `layers.py`'s docstring.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from toolchain.compress.layers import LayerInfo


@dataclass
class LayerSpec:
    """One replacement layer: enough to write it into a model config and load its weights."""

    class_name: str
    config: dict
    weights: list[np.ndarray]


def _last_weights(info: LayerInfo, kernel: np.ndarray) -> list[np.ndarray]:
    return [kernel] if info.bias is None else [kernel, info.bias]


def _first(info: LayerInfo, suffix: str, **changes: Any) -> dict:
    """A copy of the original config for a bias-free, linear leading factor."""
    cfg = copy.deepcopy(info.config)
    cfg.update(name=f"{info.name}{suffix}", use_bias=False, activation="linear", **changes)
    cfg.pop("activity_regularizer", None)
    cfg.pop("bias_regularizer", None)
    return cfg


def _last(info: LayerInfo, **changes: Any) -> dict:
    cfg = copy.deepcopy(info.config)
    cfg.update(**changes)
    return cfg


def pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def matrix_specs(info: LayerInfo, a: np.ndarray, b: np.ndarray) -> list[LayerSpec]:
    r = a.shape[1]
    if info.kind == "dense":
        return [
            LayerSpec("Dense", _first(info, "_u", units=r), [a]),
            LayerSpec("Dense", _last(info), _last_weights(info, b)),
        ]
    one = dict(kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1))
    return [
        LayerSpec("Conv2D", _first(info, "_u", filters=r), [a[None, None]]),
        LayerSpec("Conv2D", _last(info, **one), _last_weights(info, b[None, None])),
    ]


def tucker_specs(info: LayerInfo, kernels: list[np.ndarray]) -> list[LayerSpec]:
    k_in, core, k_out = kernels
    one = dict(kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1))
    return [
        LayerSpec("Conv2D", _first(info, "_in", filters=k_in.shape[-1], **one), [k_in]),
        LayerSpec("Conv2D", _first(info, "_core", filters=core.shape[-1]), [core]),
        LayerSpec("Conv2D", _last(info, **one), _last_weights(info, k_out)),
    ]


def _depthwise_config(info: LayerInfo, suffix: str, kernel_size, strides, dilation, padding: str) -> dict:
    return {
        "name": f"{info.name}{suffix}",
        "trainable": info.config.get("trainable", True),
        "dtype": info.config.get("dtype"),
        "kernel_size": kernel_size,
        "strides": strides,
        "padding": padding,
        "depth_multiplier": 1,
        "data_format": "channels_last",
        "dilation_rate": dilation,
        "activation": "linear",
        "use_bias": False,
    }


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) of one dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def cp_specs(info: LayerInfo, kernels: list[np.ndarray]) -> list[LayerSpec]:
    """The CP chain. TensorFlow's depthwise convolution needs equal strides in both
    dimensions, so a strided layer runs both depthwise steps at stride 1 (after explicit
    'same' padding) and lets the final 1x1 convolution pick every stride-th output."""
    k_in, k_h, k_w, k_out = kernels
    (sh, sw), (dh, dw) = pair(info.config["strides"]), pair(info.config["dilation_rate"])
    kh, kw = info.kernel.shape[:2]
    one = dict(kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1))
    specs = [LayerSpec("Conv2D", _first(info, "_in", filters=k_in.shape[-1], **one), [k_in])]
    if (sh, sw) == (1, 1):
        h_stride, w_stride, last = (1, 1), (1, 1), _last(info, **one)
    else:
        h_stride, w_stride, last = (1, 1), (1, 1), _last(info, **{**one, "strides": (sh, sw)})
        if info.config["padding"] == "same":
            pads = (
                same_padding(info.in_shape[0], kh, sh, dh),
                same_padding(info.in_shape[1], kw, sw, dw),
            )
            specs.append(LayerSpec("ZeroPadding2D", _padding_config(info, pads), []))
    depthwise_padding = info.config["padding"] if (sh, sw) == (1, 1) else "valid"
    specs += [
        LayerSpec(
            "DepthwiseConv2D",
            _depthwise_config(info, "_kh", (kh, 1), h_stride, (dh, 1), depthwise_padding),
            [k_h],
        ),
        LayerSpec(
            "DepthwiseConv2D",
            _depthwise_config(info, "_kw", (1, kw), w_stride, (1, dw), depthwise_padding),
            [k_w],
        ),
        LayerSpec("Conv2D", last, _last_weights(info, k_out)),
    ]
    return specs


def _padding_config(info: LayerInfo, pads) -> dict:
    return {
        "name": f"{info.name}_pad",
        "trainable": info.config.get("trainable", True),
        "dtype": info.config.get("dtype"),
        "padding": [list(pads[0]), list(pads[1])],
        "data_format": "channels_last",
    }


def spatial_specs(info: LayerInfo, kernels: list[np.ndarray]) -> list[LayerSpec]:
    vertical, horizontal = kernels
    (sh, sw), (dh, dw) = pair(info.config["strides"]), pair(info.config["dilation_rate"])
    kh, kw = info.kernel.shape[:2]
    first = _first(
        info, "_kh", filters=vertical.shape[-1], kernel_size=(kh, 1), strides=(sh, 1), dilation_rate=(dh, 1)
    )
    last = _last(info, kernel_size=(1, kw), strides=(1, sw), dilation_rate=(1, dw))
    return [
        LayerSpec("Conv2D", first, [vertical]),
        LayerSpec("Conv2D", last, _last_weights(info, horizontal)),
    ]
