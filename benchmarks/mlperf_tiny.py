"""Keras builders of the MLPerf Tiny architectures (random weights), for benchmarks and tests.

Layer lists follow the MLPerf Tiny reference models: DS-CNN keyword spotting, ResNet-8
(CIFAR-10), MobileNetV1-0.25 at 96x96 (visual wake words), the ToyADMOS FC autoencoder;
plus a 1024-512-512-10 MLP. Weights are random (seeded): code size, arena and speed do
not depend on training, and bit-exactness is checked against TFLite Micro either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _layers():
    import keras

    return keras, keras.layers


# He initialisation keeps activations alive through many random ReLU layers; with Keras'
# default Glorot they shrink towards zero and the int8 scales degenerate.
INIT = "he_normal"


def _conv_bn_relu(x: Any, filters: int, kernel: tuple[int, int], strides: int | tuple[int, int] = 1) -> Any:
    _, L = _layers()
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, kernel_initializer=INIT)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


def _dw_bn_relu(x: Any, strides: int = 1) -> Any:
    _, L = _layers()
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, depthwise_initializer=INIT)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


def ds_cnn(seed: int = 0) -> Any:
    """DS-CNN (small) keyword spotting: 49x10 MFCC input, 64 channels, 12 classes."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((49, 10, 1))
    x = _conv_bn_relu(inp, 64, (10, 4), strides=(2, 2))
    for _ in range(4):
        x = _dw_bn_relu(x)
        x = _conv_bn_relu(x, 64, (1, 1))
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    out = L.Dense(12, activation="softmax")(x)
    return keras.Model(inp, out, name="ds_cnn")


def resnet8(seed: int = 0) -> Any:
    """ResNet-8 for CIFAR-10: three residual stacks of 16, 32, 64 filters."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3))
    x = _conv_bn_relu(inp, 16, (3, 3))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = _conv_bn_relu(x, filters, (3, 3), strides=stride)
        y = L.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=INIT)(y)
        y = L.BatchNormalization()(y)
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same", kernel_initializer=INIT)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.AveragePooling2D(pool_size=8)(x)
    x = L.Flatten()(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="resnet8")


def mobilenet_v1_025(seed: int = 0, size: int = 96) -> Any:
    """MobileNetV1 with width 0.25 at 96x96x3 (visual wake words, 2 classes)."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = _conv_bn_relu(inp, 8, (3, 3), strides=2)
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for filters, stride in blocks:
        x = _dw_bn_relu(x, stride)
        x = _conv_bn_relu(x, filters, (1, 1))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(2, activation="softmax")(x)
    return keras.Model(inp, out, name="mobilenet_v1_025")


def fc_autoencoder(seed: int = 0) -> Any:
    """ToyADMOS anomaly detection autoencoder: 640 -> 128x4 -> 8 -> 128x4 -> 640."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((640,))
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.Dense(units, kernel_initializer=INIT)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    out = L.Dense(640)(x)
    return keras.Model(inp, out, name="fc_autoencoder")


def mlp(seed: int = 0) -> Any:
    """A 1024-512-512-10 MLP."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((1024,))
    x = L.Dense(512, activation="relu", kernel_initializer=INIT)(inp)
    x = L.Dense(512, activation="relu", kernel_initializer=INIT)(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="mlp")


def micro_speech(seed: int = 0) -> Any:
    """TFLite Micro's micro_speech model: one 10x8 depthwise convolution with depth multiplier 8
    (stride 2, SAME) over a 49x40 spectrogram, then a 4000->4 fully connected layer and softmax."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((49, 40, 1))
    x = L.DepthwiseConv2D(
        (10, 8), strides=2, padding="same", depth_multiplier=8, activation="relu", depthwise_initializer=INIT
    )(inp)
    out = L.Dense(4, activation="softmax")(L.Flatten()(x))
    return keras.Model(inp, out, name="micro_speech")


MODELS: dict[str, Callable[..., Any]] = {
    "ds_cnn": ds_cnn,
    "resnet8": resnet8,
    "mobilenet_v1_025": mobilenet_v1_025,
    "fc_autoencoder": fc_autoencoder,
    "mlp": mlp,
    "micro_speech": micro_speech,
}


def calibration_data(model: Any, samples: int = 32, seed: int = 0) -> np.ndarray:
    """Random normal inputs shaped for the model (stand-in data for calibration and checks)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return rng.normal(size=(samples, *shape)).astype(np.float32)


def convert(model: Any, x_calib: np.ndarray, *, per_channel_dense: bool = True) -> bytes:
    """Full-int8 TFLite flatbuffer (int8 input/output), as the convert stage produces it.

    `per_channel_dense=False` asks the converter for per-tensor dense weights, the older
    layout still found in published models.
    """
    from toolchain.convert import convert_model

    if per_channel_dense:
        return convert_model(model, x_calib, samples=len(x_calib))
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x_calib[i : i + 1]] for i in range(len(x_calib)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter.convert()


def settle_batchnorm(model: Any, x: np.ndarray) -> Any:
    """Set every BatchNormalization's moving statistics from one pass over `x`.

    With random weights and the initial statistics (mean 0, variance 1), activations
    shrink layer after layer in deep nets (MobileNet's output collapses to ~1e-11) and int8
    scales degenerate. A trained network has normalised activations; this imitates that.
    """
    _, L = _layers()
    norms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    return model


def factored_autoencoder(seed: int = 0, rank: int = 16) -> Any:
    """The FC autoencoder with its 640-wide layers factored at rank `rank`, as compression makes it:
    each Dense(640 -> 128) and Dense(128 -> 640) becomes Dense(rank, no bias) -> Dense."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((640,))
    x = L.Dense(rank, use_bias=False, kernel_initializer=INIT)(inp)
    x = L.Dense(128, kernel_initializer=INIT)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    for units in (128, 128, 128, 8, 128, 128, 128, 128):
        x = L.Dense(units, kernel_initializer=INIT)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
    x = L.Dense(rank, use_bias=False, kernel_initializer=INIT)(x)
    out = L.Dense(640)(x)
    return keras.Model(inp, out, name="fc_autoencoder_factored")


MODELS["fc_autoencoder_factored"] = factored_autoencoder


def conv_block(seed: int = 0, rank: int | None = None, size: int = 24, channels: int = 32) -> Any:
    """Two 3x3 convolutions; with `rank`, each is a Tucker chain 1x1 (rank) -> 3x3 (rank) -> 1x1,
    the shape the compress stage gives a factored convolution."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, channels))
    x = inp
    for _ in range(2):
        if rank is None:
            x = L.Conv2D(channels, 3, padding="same", kernel_initializer=INIT)(x)
        else:
            x = L.Conv2D(rank, 1, use_bias=False, kernel_initializer=INIT)(x)
            x = L.Conv2D(rank, 3, padding="same", use_bias=False, kernel_initializer=INIT)(x)
            x = L.Conv2D(channels, 1, kernel_initializer=INIT)(x)
        x = L.ReLU()(x)
    return keras.Model(inp, x, name="conv_block" if rank is None else "conv_block_tucker")


MODELS["conv_block"] = conv_block


def build_tflite(name: str, seed: int = 0, samples: int = 32, **options: Any) -> tuple[bytes, np.ndarray]:
    """(flatbuffer, float calibration samples) of one architecture of MODELS (options go to its builder)."""
    model = MODELS[name](seed, **options)
    x = calibration_data(model, samples, seed)
    settle_batchnorm(model, x)
    return convert(model, x), x
