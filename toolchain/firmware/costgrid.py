"""The shapes the cost model is fitted on: small Keras models, each holding many layers.

One firmware per model runs dozens of kernel calls, each timed by the benchmark app's
per-op hooks, so a whole grid costs a few builds. Layers come as the compress stage writes
them: plain Dense/Conv2D/DepthwiseConv2D, and the factored forms (an SVD pair, a 1x1 pair,
a Tucker chain, a spatial-SVD pair, a CP chain) with their inner layers linear and bias-free.
Widths are drawn from a seeded generator; `held_out` models use other seeds and widths, so
a test can check the fit on shapes it never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

INIT = "he_normal"
FC_WIDTHS = (4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)
FC_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
ODD_FC_WIDTHS = (3, 5, 7, 9, 11, 13, 15, 21, 27, 37, 53, 96, 160, 211)
CONV_CHANNELS = (3, 4, 6, 7, 8, 9, 12, 15, 16, 24, 32, 48)
CONV_RANKS = (2, 3, 4, 6, 7, 8, 9, 12, 16)
CONV_BLOCKS = ("conv", "pw", "dw", "tucker", "spatial", "cp", "pwpair", "pool")
FACTORED_BLOCKS = ("tucker", "spatial", "cp", "pwpair", "dw")
DEPTHWISE_BLOCKS = ("dw", "pw", "dw", "conv")  # depthwise-separable stacks: the 3x3 depthwise kernel


def _keras():
    import keras

    return keras, keras.layers


def fc_model(
    seed: int,
    layers: int = 22,
    widths=FC_WIDTHS,
    ranks=FC_RANKS,
    pairs: float = 0.4,
    activation: str | None = "relu",
) -> Any:
    """A chain of Dense layers and factored Dense pairs of random widths, ending in softmax."""
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    width = int(rng.choice(widths))
    inp = keras.Input((width,))
    x = inp
    for _ in range(layers):
        out = int(rng.choice(widths))
        if rng.random() < pairs:  # a factored pair, as svd writes it
            rank = int(rng.choice([r for r in ranks if r < min(width, out)] or [1]))
            x = L.Dense(rank, use_bias=False, kernel_initializer=INIT)(x)
        x = L.Dense(out, activation=activation, kernel_initializer=INIT)(x)
        width = out
    out = L.Dense(int(rng.choice((2, 10, 12))), activation="softmax", kernel_initializer=INIT)(x)
    return keras.Model(inp, out, name=f"fc_grid_{seed}")


def _conv_block(L: Any, x: Any, kind: str, rng: np.random.Generator, channels, ranks) -> Any:
    out = int(rng.choice(channels))
    rank = int(rng.choice(ranks))
    size = int(x.shape[1])
    stride = 2 if size >= 8 and rng.random() < 0.25 else 1
    k = int(rng.choice((3, 3, 5))) if size >= 5 else 3
    act = dict(activation="relu", kernel_initializer=INIT)
    lin = dict(use_bias=False, kernel_initializer=INIT)
    if kind == "conv":
        return L.Conv2D(out, k, strides=stride, padding="same", **act)(x)
    if kind == "pw":
        return L.Conv2D(out, 1, **act)(x)
    if kind == "dw":
        return L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu")(x)
    if kind == "tucker":
        x = L.Conv2D(rank, 1, **lin)(x)
        x = L.Conv2D(int(rng.choice(ranks)), k, strides=stride, padding="same", **lin)(x)
        return L.Conv2D(out, 1, **act)(x)
    if kind == "spatial":
        x = L.Conv2D(rank, (k, 1), strides=(stride, 1), padding="same", **lin)(x)
        return L.Conv2D(out, (1, k), strides=(1, stride), padding="same", **act)(x)
    if kind == "cp":
        x = L.Conv2D(rank, 1, **lin)(x)
        x = L.DepthwiseConv2D((k, 1), padding="same", use_bias=False)(x)
        x = L.DepthwiseConv2D((1, k), padding="same", use_bias=False)(x)
        return L.Conv2D(out, 1, **act)(x)
    if kind == "pwpair":
        x = L.Conv2D(min(rank, int(x.shape[-1])), 1, **lin)(x)
        return L.Conv2D(out, 1, **act)(x)
    pool = L.MaxPooling2D if rng.random() < 0.5 else L.AveragePooling2D
    return pool(2)(x) if size >= 4 else x


def conv_model(
    seed: int,
    size: tuple[int, int, int],
    blocks: int = 12,
    channels=CONV_CHANNELS,
    ranks=CONV_RANKS,
    kinds=CONV_BLOCKS,
) -> Any:
    """Random convolution blocks (plain and factored) on a small image, ending in a classifier."""
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inp = keras.Input(size)
    x = inp
    for _ in range(blocks):
        x = _conv_block(L, x, str(rng.choice(kinds)), rng, channels, ranks)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax", kernel_initializer=INIT)(x)
    return keras.Model(inp, out, name=f"conv_grid_{seed}")


def first_layers_model(seed: int, size: tuple[int, int, int], layers: tuple[tuple, ...]) -> Any:
    """First convolutions over an image of few channels, side by side: each (filters, kernel,
    strides) reads the input, as a keyword model's 10x4 over its MFCCs does; their outputs are
    pooled and summed into a classifier."""
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input(size)
    pooled = [
        L.GlobalAveragePooling2D()(
            L.Conv2D(
                filters, kernel, strides=strides, padding="same", activation="relu", kernel_initializer=INIT
            )(inp)
        )
        for filters, kernel, strides in layers
    ]
    heads = [L.Dense(10, kernel_initializer=INIT)(x) for x in pooled]
    return keras.Model(inp, L.Add()(heads) if len(heads) > 1 else heads[0], name=f"first_layers_{seed}")


def first_tucker_model(seed: int, size: tuple[int, int, int], layers: tuple[tuple, ...]) -> Any:
    """First convolutions factored by Tucker-2, side by side: each (rank_in, rank_out, filters,
    kernel, strides) is the chain compress makes of a keyword model's 10x4 over one channel
    (rank_in 1: the 1x1 reduce step of a single channel), its k x k core over rank_in channels."""
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input(size)
    lin = dict(use_bias=False, kernel_initializer=INIT)
    heads = []
    for rank_in, rank_out, filters, kernel, strides in layers:
        x = L.Conv2D(rank_in, 1, **lin)(inp)
        x = L.Conv2D(rank_out, kernel, strides=strides, padding="same", **lin)(x)
        x = L.Conv2D(filters, 1, activation="relu", kernel_initializer=INIT)(x)
        heads.append(L.Dense(10, kernel_initializer=INIT)(L.GlobalAveragePooling2D()(x)))
    return keras.Model(inp, L.Add()(heads), name=f"first_tucker_{seed}")


FIRST_TUCKER = (
    (
        25,
        (40, 12, 1),
        ((1, 12, 32, (8, 4), (2, 2)), (1, 6, 16, (5, 5), (1, 1)), (1, 16, 24, (12, 3), (2, 1))),
    ),
    (
        26,
        (24, 10, 2),
        ((2, 10, 20, (6, 4), (2, 2)), (1, 8, 12, (3, 3), (1, 1)), (2, 20, 40, (10, 4), (2, 2))),
    ),
)

FIRST_LAYERS = (
    (
        22,
        (40, 12, 1),
        ((16, (8, 4), (2, 2)), (12, (5, 5), (1, 1)), (24, (3, 3), (2, 2)), (8, (12, 3), (2, 1))),
    ),
    (
        23,
        (24, 20, 3),
        ((16, (3, 3), (2, 2)), (8, (5, 5), (2, 2)), (12, (7, 7), (2, 2)), (20, (4, 2), (1, 1))),
    ),
    (24, (30, 16, 2), ((10, (6, 4), (2, 2)), (16, (3, 3), (1, 1)), (6, (9, 5), (2, 2)))),
    # the benchmark models' first layers (tr_conv_first_int8): 3x3 over RGB at stride 1 and 2 with
    # 8 to 32 outputs (ResNet-8, MobileNet), DS-CNN's 10x4 stride 2 over one channel with 64
    (27, (32, 28, 3), ((16, (3, 3), (1, 1)), (8, (3, 3), (2, 2)), (32, (3, 3), (2, 2)), (6, (2, 2), (1, 1)))),
    (28, (29, 10, 1), ((64, (10, 4), (2, 2)), (8, (3, 3), (1, 1)), (20, (4, 4), (2, 2)))),
)


def fitting_grid() -> list[Callable[[], Any]]:
    """Builders of the models the cost model is fitted on."""
    return [
        lambda: fc_model(1),
        lambda: fc_model(2),
        lambda: fc_model(3),
        lambda: conv_model(11, (16, 16, 8)),
        lambda: conv_model(12, (12, 20, 3)),
        lambda: conv_model(13, (20, 20, 4)),
        lambda: conv_model(14, (10, 10, 16)),
        lambda: conv_model(15, (24, 12, 6)),
        lambda: fc_model(4, pairs=0.9),
        lambda: fc_model(5, pairs=0.9),
        # output counts of 1 and 3 past a group of four (FC_WIDTHS leaves only 2), and layers without
        # an activation, as a factored layer codegen leaves unfused runs (a 160 -> 5 rank layer was
        # predicted 20% low when the grid had neither)
        lambda: fc_model(6, layers=16, widths=ODD_FC_WIDTHS, pairs=0.0, activation=None),
        lambda: fc_model(7, layers=16, widths=ODD_FC_WIDTHS, pairs=0.0),
        lambda: conv_model(16, (16, 16, 12), blocks=14, kinds=FACTORED_BLOCKS),
        lambda: conv_model(17, (12, 12, 16), blocks=14, kinds=FACTORED_BLOCKS),
        lambda: conv_model(18, (20, 14, 8), blocks=14, kinds=FACTORED_BLOCKS),
        lambda: conv_model(19, (8, 8, 24), blocks=14, kinds=FACTORED_BLOCKS),
        lambda: conv_model(20, (18, 18, 8), blocks=12, kinds=DEPTHWISE_BLOCKS),
        lambda: conv_model(21, (15, 11, 5), blocks=12, kinds=DEPTHWISE_BLOCKS),
        *((lambda spec=spec: first_layers_model(*spec)) for spec in FIRST_LAYERS),
        *((lambda spec=spec: first_tucker_model(*spec)) for spec in FIRST_TUCKER),
    ]


def held_out() -> list[Callable[[], Any]]:
    """Models with shapes outside the grid: other seeds, widths, ranks and image sizes."""
    return [
        lambda: fc_model(101, layers=8, widths=(10, 30, 56, 72, 100, 144, 200), ranks=(5, 7, 10, 20)),
        lambda: conv_model(102, (14, 14, 5), blocks=8, channels=(5, 10, 20, 28), ranks=(5, 10, 11)),
    ]
