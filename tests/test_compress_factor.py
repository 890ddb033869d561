"""Factorizations of single layers: exact at full rank, and the rank rules.

A factored layer must compute the same function as the original when the ranks are full
(or the kernel has the planted rank), whatever its strides, padding and dilation; this is
checked on real Keras models, original against rebuilt.
"""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.compress.layers import chain_cost, describe_layer, factorize, saves_parameters
from toolchain.compress.matrix import (
    energy_rank,
    relative_error,
    seminmf_factors,
    singular_values,
    svd_factors,
    vbmf_rank,
)
from toolchain.errors import UnsupportedError


def planted(rng, m, n, rank, noise=0.0):
    return rng.normal(size=(m, rank)) @ rng.normal(size=(rank, n)) + noise * rng.normal(size=(m, n))


def test_svd_full_rank_is_exact_and_truncation_error_matches_singular_values(rng):
    w = rng.normal(size=(24, 16))
    a, b = svd_factors(w, 16)
    assert relative_error(w, a @ b) < 1e-5
    a, b = svd_factors(w, 5)
    s = singular_values(w)
    assert relative_error(w, a @ b) == pytest.approx(np.sqrt(np.sum(s[5:] ** 2) / np.sum(s**2)), rel=1e-4)


def test_energy_rank_keeps_the_asked_fraction():
    s = np.array([3.0, 2.0, 1.0, 0.5])
    power = s**2 / np.sum(s**2)
    assert energy_rank(s, 1.0) == 4
    assert energy_rank(s, power[0]) == 1
    assert energy_rank(s, power[0] + 1e-6) == 2
    assert energy_rank(s, power[:3].sum()) == 3


def test_vbmf_finds_a_planted_rank_under_noise(rng):
    for rank in (3, 7):
        w = planted(rng, 64, 48, rank, noise=0.05)
        assert vbmf_rank(w) == rank


def test_seminmf_keeps_the_second_factor_non_negative_and_is_no_better_than_svd(rng):
    w = rng.normal(size=(30, 20))
    a, b = seminmf_factors(w, 6)
    assert a.shape == (30, 6) and b.shape == (6, 20)
    assert b.min() >= 0
    sa, sb = svd_factors(w, 6)
    err, svd_err = relative_error(w, a @ b), relative_error(w, sa @ sb)
    assert svd_err <= err < 1.0


def _conv_model(kernel_size, strides, padding, dilation, filters=6, channels=4, size=11):
    import keras

    inp = keras.Input((size, size, channels), name="image")
    out = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        activation="relu",
        name="conv",
    )(inp)
    return keras.Model(inp, out)


def _check_same_function(model, method, ranks, kernel=None, tol=1e-4):
    from toolchain.compress.graph import rebuild

    rng = np.random.default_rng(0)
    layer = model.get_layer("conv")
    if kernel is not None:
        layer.set_weights([kernel.astype(np.float32), rng.normal(size=layer.get_weights()[1].shape)])
    info = describe_layer(1, layer)
    result = factorize(info, method, ranks)
    factored = rebuild(model, {"conv": result.specs})
    x = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype(np.float32)
    want = np.asarray(model(x))
    got = np.asarray(factored(x))
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol * max(1.0, np.max(np.abs(want)))
    assert [layer.name for layer in factored.layers][-1] == "conv"
    return result, factored


# kernel, strides, padding, dilation, input size (even and odd sizes pad differently when strided)
GEOMETRIES = [
    ((3, 3), (1, 1), "same", (1, 1), 11),
    ((3, 3), (2, 2), "same", (1, 1), 11),
    ((3, 3), (2, 2), "same", (1, 1), 10),
    ((3, 3), (2, 1), "valid", (1, 1), 10),
    ((3, 3), (1, 1), "same", (2, 2), 9),
    ((5, 3), (1, 1), "valid", (1, 2), 11),
    ((3, 2), (2, 2), "same", (1, 1), 8),
]


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,size", GEOMETRIES)
def test_tucker2_at_full_rank_computes_the_same_convolution(kernel_size, strides, padding, dilation, size):
    model = _conv_model(kernel_size, strides, padding, dilation, size=size)
    result, factored = _check_same_function(model, "tucker", (4, 6))
    assert [spec.class_name for spec in result.specs] == ["Conv2D"] * 3
    assert [layer.name for layer in factored.layers[1:]] == ["conv_in", "conv_core", "conv"]


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,size", GEOMETRIES)
def test_spatial_svd_at_full_rank_computes_the_same_convolution(
    kernel_size, strides, padding, dilation, size
):
    model = _conv_model(kernel_size, strides, padding, dilation, size=size)
    kh, kw = kernel_size
    _check_same_function(model, "spatial", (min(kh * 4, kw * 6),))


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,size", GEOMETRIES)
def test_cp_of_a_rank_r_kernel_computes_the_same_convolution(kernel_size, strides, padding, dilation, size):
    rng = np.random.default_rng(3)
    kh, kw = kernel_size
    r = 3
    factors = [rng.normal(size=(d, r)) for d in (kh, kw, 4, 6)]
    kernel = np.einsum("hr,wr,cr,nr->hwcn", *factors)
    model = _conv_model(kernel_size, strides, padding, dilation, size=size)
    result, factored = _check_same_function(model, "cp", (r,), kernel=kernel, tol=1e-3)
    kinds = [spec.class_name for spec in result.specs if spec.class_name != "ZeroPadding2D"]
    assert kinds == ["Conv2D", "DepthwiseConv2D", "DepthwiseConv2D", "Conv2D"]
    assert result.rel_error < 1e-4


def test_pointwise_conv_svd_keeps_stride(rng):
    model = _conv_model((1, 1), (2, 2), "same", (1, 1))
    result, _ = _check_same_function(model, "svd", (4,))
    assert result.ranks == (4,)


def test_dense_factored_pair_is_two_plain_dense_layers():
    import keras

    from toolchain.compress.graph import rebuild

    model = keras.Sequential(
        [keras.Input((20,), name="x"), keras.layers.Dense(12, activation="tanh", name="dense_1")]
    )
    info = describe_layer(0, model.get_layer("dense_1"))
    result = factorize(info, "svd", (12,))
    factored = rebuild(model, {"dense_1": result.specs})
    first, second = factored.layers
    assert (first.name, second.name) == ("dense_1_u", "dense_1")
    assert first.units == 12 and not first.use_bias and first.get_config()["activation"] == "linear"
    assert second.get_config()["activation"] == "tanh" and second.use_bias
    x = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(factored(x)), np.asarray(model(x)), atol=1e-5)


def test_textbook_dense_parameter_count():
    import keras

    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(512, use_bias=False, name="big")])
    info = describe_layer(0, model.get_layer("big"))
    assert chain_cost(info, "svd", (64,))[0] == (1024 + 512) * 64
    assert saves_parameters(info, "svd", (64,))
    assert not saves_parameters(info, "svd", (1024 * 512 // (1024 + 512) + 1,))


def test_rank_out_of_range_names_the_layer_and_the_limit():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense_7")])
    info = describe_layer(3, model.get_layer("dense_7"))
    with pytest.raises(UnsupportedError, match=r"layer 'dense_7' \(index 3\): rank 5 must be in 1\.\.4"):
        factorize(info, "svd", (5,))
    with pytest.raises(UnsupportedError, match="rank 0 must be in 1..4"):
        factorize(info, "svd", (0,))
