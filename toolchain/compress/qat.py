"""Quantization-aware fine-tuning: train through the int8 rounding the converter will apply.

The converter (`toolchain.convert`) quantizes every Dense, Conv2D and DepthwiseConv2D
kernel symmetrically per output channel (scale = max |w| / 127, zero point 0) and every
op output per tensor over the min/max seen on calibration samples. A float model never
saw that rounding, so int8 loses accuracy, most where a layer is small (a factored chain
of rank-r layers rounds r channels twice). Here a copy of the model computes with the
same rounding, fake-quantized, while gradients pass straight through (Jacob et al. 2018),
so the last epochs settle where int8 rounding costs little. The trained kernels are then
copied back into the plain model already rounded to that grid (`int8_grid_kernel`): the
converter finds the same per-channel scales and stores exactly those values, so the float
model and the int8 model compute with the same weights and differ only in activation
rounding, which the fake-quantized epochs have trained for.

Output ranges are the running min/max over the training batches, the statistic the
converter computes over its calibration samples. A Dense or Conv2D whose activation is
softmax has its logits quantized, as TFLite quantizes the FULLY_CONNECTED output before
its SOFTMAX op; other activations are fused, so their output is what gets quantized.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

QUANTIZED_CLASSES = ("Dense", "Conv2D", "DepthwiseConv2D")


def int8_grid_kernel(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """`kernel` rounded as the converter stores it: per output channel, scale = max |w| / 127.

    Rounding twice gives the same values (the largest weight stays on the grid, so the scale
    is unchanged), which is why a kernel rounded here converts to exactly these weights.
    """
    kernel = np.asarray(kernel, np.float32)
    flat = kernel.reshape(*kernel.shape[:-2], 1, -1) if depthwise else kernel
    axes = tuple(range(flat.ndim - 1))
    scale = np.maximum(np.abs(flat).max(axis=axes), 1e-8) / 127.0
    rounded = (np.clip(np.round(flat / scale), -127, 127) * scale).astype(np.float32)
    return rounded.reshape(kernel.shape)


def _fake_quant_kernel(kernel: Any, depthwise: bool) -> Any:
    """Symmetric per-output-channel int8 rounding of a kernel (narrow range -127..127)."""
    import tensorflow as tf

    shape = ops.shape(kernel)
    flat = ops.reshape(kernel, (*shape[:-2], 1, shape[-2] * shape[-1])) if depthwise else kernel
    axes = tuple(range(len(flat.shape) - 1))
    top = ops.stop_gradient(ops.maximum(ops.max(ops.abs(flat), axis=axes), 1e-8))
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        flat, -top, top, num_bits=8, narrow_range=True
    )
    return ops.reshape(quantized, shape) if depthwise else quantized


class _FakeQuantMixin:
    """Kernel rounding and output range tracking shared by the three layer kinds."""

    # Provided by the Keras layer class each mixed-in class also derives from.
    add_weight: Any
    bias: Any
    real_activation: Any
    set_weights: Any
    from_config: Any

    def _init_quant(self) -> None:
        self.out_min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="out_min")
        self.out_max = self.add_weight(shape=(), initializer="zeros", trainable=False, name="out_max")

    calibrating = False  # set by `calibrate`: inference passes that only widen the output ranges

    def _quantize_output(self, x: Any, training: bool) -> Any:
        import tensorflow as tf

        low, high = self.out_min, self.out_max
        if training or self.calibrating:
            low = ops.minimum(low, ops.stop_gradient(ops.min(x)))
            high = ops.maximum(high, ops.stop_gradient(ops.max(x)))
            self.out_min.assign(low)
            self.out_max.assign(high)
        high = ops.maximum(high, low + 1e-6)
        return tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=False)

    def _finish(self, x: Any, training: bool) -> Any:
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.real_activation is keras.activations.softmax:
            return self.real_activation(self._quantize_output(x, training))
        return self._quantize_output(self.real_activation(x), training)


class QuantDense(_FakeQuantMixin, keras.layers.Dense):
    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._init_quant()

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self._finish(ops.matmul(inputs, _fake_quant_kernel(self._kernel, False)), training)


class QuantConv2D(_FakeQuantMixin, keras.layers.Conv2D):
    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._init_quant()

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self._finish(self.convolution_op(inputs, _fake_quant_kernel(self._kernel, False)), training)


class QuantDepthwiseConv2D(_FakeQuantMixin, keras.layers.DepthwiseConv2D):
    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._init_quant()

    def call(self, inputs: Any, training: bool = False) -> Any:
        outputs = ops.depthwise_conv(
            inputs,
            _fake_quant_kernel(self.kernel, True),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return self._finish(outputs, training)


_QUANT_CLASS = {"Dense": QuantDense, "Conv2D": QuantConv2D, "DepthwiseConv2D": QuantDepthwiseConv2D}


def fake_quant_copy(model: Any) -> Any:
    """A copy of `model` whose Dense/Conv2D/DepthwiseConv2D layers round like int8 TFLite."""

    def clone(layer: Any) -> Any:
        cls = _QUANT_CLASS.get(type(layer).__name__)
        config = layer.get_config()
        if cls is None or config.get("data_format", "channels_last") != "channels_last":
            return layer.__class__.from_config(config)
        activation = config.get("activation", "linear")
        config["activation"] = "linear"
        quant = cls.from_config(config)
        quant.real_activation = keras.activations.get(activation)
        return quant

    # clone_model re-compiles the copy from the model's compile config, which cannot hold the
    # fine-tuning loss (a closure); the copy is compiled by its caller anyway.
    compiled, model.compiled = model.compiled, False
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    finally:
        model.compiled = compiled
    for layer in model.layers:
        target = copy.get_layer(layer.name)
        weights = layer.get_weights()
        if isinstance(target, _FakeQuantMixin):
            target.set_weights(weights + [np.zeros((), np.float32)] * 2)
        elif weights:
            target.set_weights(weights)
    return copy


def calibrate(quant: Any, x: np.ndarray, batch_size: int = 256) -> Any:
    """Widen `quant`'s output ranges over `x` in inference mode (as the converter's calibration
    does over its samples), so a model that never trained fake-quantized can be scored as int8."""
    layers = [layer for layer in quant.layers if isinstance(layer, _FakeQuantMixin)]
    for layer in layers:
        layer.calibrating = True
    try:
        for start in range(0, len(x), batch_size):
            quant(x[start : start + batch_size], training=False)
    finally:
        for layer in layers:
            layer.calibrating = False
    return quant


def copy_back(quant: Any, model: Any) -> None:
    """Copy trained weights from the fake-quantized copy into the plain model (range variables
    dropped), kernels rounded to the converter's per-channel int8 grid (`int8_grid_kernel`)."""
    for layer in model.layers:
        count = len(layer.get_weights())
        if not count:
            continue
        source = quant.get_layer(layer.name)
        weights = source.get_weights()[:count]
        if isinstance(source, _FakeQuantMixin):
            weights[0] = int8_grid_kernel(weights[0], isinstance(source, QuantDepthwiseConv2D))
        layer.set_weights(weights)


def count_quantized(model: Any) -> int:
    """How many layers of `model` quantization-aware training would round."""
    return sum(type(layer).__name__ in QUANTIZED_CLASSES for layer in model.layers)
