"""What a layer is worth factorizing, and the factorization that replaces it.

A `LayerInfo` is the read-only description of one layer of the input model; `factorize`
turns it, a method and ranks into a `Factorization`: the replacement layers (class name,
Keras config, weights) in call order, the kernel they compute, its error and its cost.

Naming: the last replacement layer keeps the original name (so model outputs and every
consumer keep theirs); the layers before it get derived names:

| method  | layers, in call order                                        |
|---------|--------------------------------------------------------------|
| svd     | `<name>_u` (Dense r, no bias), `<name>` (Dense n, bias, act)  |
| seminmf | the same as svd; the kernel of `<name>` is non-negative      |
| tucker  | `<name>_in` (1x1 C->r1), `<name>_core` (kxk r1->r2), `<name>` (1x1 r2->N) |
| cp      | `<name>_in` (1x1 C->R), [`<name>_pad`], `<name>_kh` (depthwise kh x 1),       |
|         | `<name>_kw` (depthwise 1 x kw), `<name>` (1x1 R->N)                            |

`<name>_pad` (ZeroPadding2D) is there for a strided 'same' convolution only.
| spatial | `<name>_kh` (kh x 1 C->r), `<name>` (1 x kw r->N)             |

A 1x1 Conv2D is treated as a matrix: svd/seminmf give two 1x1 convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolchain.compress import conv
from toolchain.compress.matrix import relative_error, seminmf_factors, svd_factors
from toolchain.compress.replacements import (
    LayerSpec,
    cp_specs,
    matrix_specs,
    pair,
    spatial_specs,
    tucker_specs,
)
from toolchain.errors import ModelError, UnsupportedError

MATRIX_METHODS = ("svd", "seminmf")
CONV_METHODS = ("tucker", "cp", "spatial")
METHODS = MATRIX_METHODS + CONV_METHODS


@dataclass
class LayerInfo:
    """One layer of the input model with weights: what it is and whether it can be factored.

    `kind` is "dense", "pointwise" (1x1 Conv2D) or "conv" (k x k Conv2D) when factorable;
    otherwise None and `reason` says why it stays as it is.
    """

    index: int
    name: str
    class_name: str
    config: dict
    weights: list[np.ndarray]
    in_shape: tuple
    out_shape: tuple
    kind: str | None = None
    reason: str | None = None

    @property
    def kernel(self) -> np.ndarray:
        return self.weights[0]

    @property
    def bias(self) -> np.ndarray | None:
        return self.weights[1] if len(self.weights) > 1 else None

    @property
    def matrix(self) -> np.ndarray:
        """The kernel as an (inputs x outputs) matrix, for dense and 1x1 layers."""
        return self.kernel if self.kind == "dense" else self.kernel[0, 0]

    @property
    def params(self) -> int:
        return int(sum(w.size for w in self.weights))

    @property
    def bias_params(self) -> int:
        return int(self.bias.size) if self.bias is not None else 0

    @property
    def positions(self) -> int:
        """How many times the kernel is applied per sample (output pixels, or leading dims of Dense)."""
        return int(np.prod([d for d in self.out_shape[:-1]], dtype=np.int64)) if self.out_shape else 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample; every kernel weight is used once per output position."""
        if self.class_name in ("Dense", "Conv2D", "DepthwiseConv2D"):
            return int(self.kernel.size) * self.positions
        return 0


@dataclass
class Factorization:
    layer: str
    method: str
    ranks: tuple[int, ...]
    specs: list[LayerSpec]
    approx_kernel: np.ndarray
    rel_error: float
    params: int
    macs: int
    extra: dict[str, Any] = field(default_factory=dict)


def describe_layer(index: int, layer: Any, calls: int = 1) -> LayerInfo:
    """Read a Keras layer into a `LayerInfo`, deciding whether it can be factored.

    `calls` is how many times the model calls the layer (see `graph.call_count`).
    """
    weights = [np.asarray(w) for w in layer.get_weights()]
    try:
        in_shape = tuple(layer.input.shape[1:])
        out_shape = tuple(layer.output.shape[1:])
    except (AttributeError, ValueError):
        in_shape, out_shape = (), ()
    info = LayerInfo(
        index, layer.name, type(layer).__name__, layer.get_config(), weights, in_shape, out_shape
    )
    for i, w in enumerate(weights):
        if np.issubdtype(w.dtype, np.floating) and not np.all(np.isfinite(w)):
            raise ModelError(f"layer '{layer.name}' (index {index}): weight {i} holds NaN or Inf values")
    info.kind, info.reason = _classify(info, calls)
    return info


def _classify(info: LayerInfo, calls: int) -> tuple[str | None, str | None]:
    cfg = info.config
    if calls > 1:
        return None, f"shared layer (called {calls} times); factoring would change every call"
    if info.class_name == "Dense":
        if len(info.kernel.shape) != 2:
            return None, "Dense kernel is not 2-D"
        return "dense", None
    if info.class_name == "Conv2D":
        if cfg.get("data_format", "channels_last") != "channels_last":
            return None, "channels_first Conv2D is not supported"
        if cfg.get("groups", 1) != 1:
            return None, f"grouped convolution (groups={cfg['groups']})"
        if None in info.out_shape or not info.out_shape:
            return None, "output shape unknown (dynamic spatial size)"
        kh, kw = info.kernel.shape[:2]
        return ("pointwise" if (kh, kw) == (1, 1) else "conv"), None
    if info.class_name == "DepthwiseConv2D":
        return None, "depthwise convolution: one filter per channel already, nothing to factor"
    if info.class_name == "BatchNormalization":
        return None, "batch normalization that could not be folded (not right after a linear Dense/Conv2D)"
    if info.weights:
        return None, f"{info.class_name} layers are not factored"
    return None, "no weights"


def method_for(info: LayerInfo, method: str) -> str | None:
    """The method actually used on this layer when the user asked for `method` (None: keep it)."""
    if info.kind in ("dense", "pointwise"):
        return method if method in MATRIX_METHODS else "svd"
    if info.kind == "conv":
        if method == "svd":
            return "spatial"  # the SVD of a k x k kernel is spatial SVD
        return method if method in CONV_METHODS else None
    return None


def rank_limits(info: LayerInfo, method: str) -> tuple[int, ...]:
    """The largest meaningful rank of each factor (rank 1 is the smallest)."""
    kh, kw = (1, 1) if info.kind == "dense" else info.kernel.shape[:2]
    c, n = info.kernel.shape[-2:]
    if method in MATRIX_METHODS:
        return (min(c, n),)
    if method == "tucker":
        return (c, n)
    if method == "spatial":
        return (min(kh * c, kw * n),)
    if method == "cp":
        dims = sorted((kh, kw, c, n))
        return (dims[0] * dims[1] * dims[2],)
    raise UnsupportedError(f"unknown method '{method}'")


def check_ranks(info: LayerInfo, method: str, ranks: tuple[int, ...]) -> None:
    limits = rank_limits(info, method)
    if len(ranks) != len(limits):
        want = "two ranks r1:r2" if len(limits) == 2 else "one rank"
        raise UnsupportedError(
            f"layer '{info.name}' (index {info.index}): method {method} takes {want}, got "
            f"{':'.join(map(str, ranks))}"
        )
    for r, top in zip(ranks, limits, strict=True):
        if not 1 <= r <= top:
            raise UnsupportedError(
                f"layer '{info.name}' (index {info.index}): rank {r} must be in 1..{top} for method {method}"
            )


def chain_cost(info: LayerInfo, method: str, ranks: tuple[int, ...]) -> tuple[int, int]:
    """Parameters and MACs of the replacement layers, without computing them."""
    nb = info.bias_params
    if info.kind == "dense":
        (r,) = ranks
        m, n = info.kernel.shape
        return m * r + r * n + nb, (m * r + r * n) * info.positions
    kh, kw, c, n = info.kernel.shape
    pix_out = info.positions
    h_in, w_in = info.in_shape[0] or 0, info.in_shape[1] or 0
    h_out = info.out_shape[0]
    if method in MATRIX_METHODS:
        (r,) = ranks
        return c * r + r * n + nb, (c * r + r * n) * pix_out
    if method == "tucker":
        r1, r2 = ranks
        macs = c * r1 * h_in * w_in + (kh * kw * r1 * r2 + r2 * n) * pix_out
        return c * r1 + kh * kw * r1 * r2 + r2 * n + nb, macs
    if method == "cp":
        (r,) = ranks
        strided = pair(info.config["strides"]) != (1, 1)
        depthwise = (kh + kw) * r * h_in * w_in if strided else kh * r * h_out * w_in + kw * r * pix_out
        macs = c * r * h_in * w_in + depthwise + r * n * pix_out
        return c * r + kh * r + kw * r + r * n + nb, macs
    if method == "spatial":
        (r,) = ranks
        return kh * c * r + kw * r * n + nb, kh * c * r * h_out * w_in + kw * r * n * pix_out
    raise UnsupportedError(f"unknown method '{method}'")


def saves_parameters(info: LayerInfo, method: str, ranks: tuple[int, ...]) -> bool:
    return chain_cost(info, method, ranks)[0] < info.params


SEARCH_ITERATIONS = {"tucker": 5, "cp": 25}  # enough to rank candidates; the chosen one gets the full count


def factorize(
    info: LayerInfo, method: str, ranks: tuple[int, ...], seed: int = 0, search: bool = False
) -> Factorization:
    """Decompose the layer's kernel and describe the layers that replace it.

    `search=True` runs the iterative decompositions (Tucker's HOOI, CP's ALS) briefly: the
    budget search only needs their error to compare candidates.
    """
    check_ranks(info, method, ranks)
    if method in MATRIX_METHODS:
        make = svd_factors if method == "svd" else (lambda w, r: seminmf_factors(w, r, seed=seed))
        a, b = make(info.matrix, ranks[0])
        approx = (a @ b).reshape(info.kernel.shape)
        specs = matrix_specs(info, a, b)
    elif method == "tucker":
        iterations = SEARCH_ITERATIONS["tucker"] if search else conv.TUCKER_ITERATIONS
        r_in, r_out = ranks
        kernels, approx = conv.tucker2(info.kernel, r_in, r_out, iterations=iterations)
        specs = tucker_specs(info, kernels)
    elif method == "cp":
        iterations = SEARCH_ITERATIONS["cp"] if search else conv.CP_ITERATIONS
        kernels, approx = conv.cp(info.kernel, ranks[0], seed=seed, iterations=iterations)
        specs = cp_specs(info, kernels)
    elif method == "spatial":
        kernels, approx = conv.spatial_svd(info.kernel, ranks[0])
        specs = spatial_specs(info, kernels)
    else:
        raise UnsupportedError(f"unknown method '{method}'")
    params, macs = chain_cost(info, method, ranks)
    return Factorization(
        layer=info.name,
        method=method,
        ranks=tuple(int(r) for r in ranks),
        specs=specs,
        approx_kernel=approx.astype(np.float32),
        rel_error=relative_error(info.kernel, approx),
        params=params,
        macs=macs,
    )
