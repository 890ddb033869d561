"""Decompositions of a Conv2D kernel (kh, kw, C, N), the Keras layout.

Each function returns the kernels of the replacement layers in call order (shaped for
Keras) and the kernel they add up to, so the caller can measure the error and the
budget search can try a rank by swapping that kernel into the original layer.
"""

from __future__ import annotations

import numpy as np

from toolchain.compress.matrix import svd_factors

CP_ITERATIONS = 100  # ALS sweeps; each costs O(size * rank), so high ranks take seconds
TUCKER_ITERATIONS = 50  # HOOI sweeps after the HOSVD start


def tucker2(
    kernel: np.ndarray, r_in: int, r_out: int, iterations: int = TUCKER_ITERATIONS
) -> tuple[list[np.ndarray], np.ndarray]:
    """Tucker-2 on the channel modes: 1x1 C->r_in, kh x kw r_in->r_out, 1x1 r_out->N.

    Kernels returned: (1, 1, C, r_in), (kh, kw, r_in, r_out), (1, 1, r_out, N).
    """
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    tl.set_backend("numpy")
    w = kernel.astype(np.float64)
    full = r_in == w.shape[2] and r_out == w.shape[3]
    if full:  # HOOI cannot improve on an exact basis; the identity keeps full rank exact.
        u_in, u_out, core = np.eye(w.shape[2]), np.eye(w.shape[3]), w
    else:
        (core, (u_in, u_out)), _ = partial_tucker(
            w, rank=[r_in, r_out], modes=[2, 3], init="svd", n_iter_max=iterations
        )
    approx = np.einsum("hwab,ca,nb->hwcn", core, u_in, u_out)
    kernels = [u_in[None, None], core, u_out.T[None, None]]
    return [k.astype(np.float32) for k in kernels], approx.astype(np.float32)


def cp(
    kernel: np.ndarray, rank: int, seed: int = 0, iterations: int = CP_ITERATIONS
) -> tuple[list[np.ndarray], np.ndarray]:
    """CP (Lebedev et al. 2015): 1x1 C->R, depthwise kh x 1, depthwise 1 x kw, 1x1 R->N.

    Kernels returned: (1, 1, C, R), (kh, 1, R, 1), (1, kw, R, 1), (1, 1, R, N). The scale
    of each rank-one term is spread evenly over the four factors so no layer carries
    extreme values.
    """
    fh, fw, fc, fn = cp_als(kernel.astype(np.float64), rank, iterations=iterations, seed=seed)
    norms = [np.linalg.norm(f, axis=0) + 1e-30 for f in (fh, fw, fc, fn)]
    scale = np.prod(norms, axis=0) ** 0.25
    fh, fw, fc, fn = (f / n * scale for f, n in zip((fh, fw, fc, fn), norms, strict=True))
    approx = np.einsum("hr,wr,cr,nr->hwcn", fh, fw, fc, fn)
    kernels = [fc[None, None], fh[:, None, :, None], fw[None, :, :, None], fn.T[None, None]]
    return [k.astype(np.float32) for k in kernels], approx.astype(np.float32)


def cp_als(tensor: np.ndarray, rank: int, iterations: int = CP_ITERATIONS, seed: int = 0) -> list[np.ndarray]:
    """CP by alternating least squares on a 4-way tensor, started from the unfoldings' SVDs.

    Written out rather than TensorLy's `parafac`, which was 20-50x slower here on kernels
    of a few thousand weights (the budget search runs it for several ranks per layer).
    """
    rng = np.random.default_rng(seed)
    factors = []
    for mode in range(4):
        u = np.linalg.svd(mode_matrix(tensor, mode), full_matrices=False)[0][:, :rank]
        if u.shape[1] < rank:
            u = np.concatenate(
                [u, rng.normal(size=(u.shape[0], rank - u.shape[1])) / np.sqrt(u.shape[0])], axis=1
            )
        factors.append(u)
    norm = np.linalg.norm(tensor)
    previous = np.inf
    unfoldings = [mode_matrix(tensor, mode) for mode in range(4)]
    for _ in range(iterations):
        for mode in range(4):
            others = [f for i, f in enumerate(factors) if i != mode]
            khatri_rao = np.einsum("ar,br,cr->abcr", *others).reshape(-1, rank)
            mttkrp = unfoldings[mode] @ khatri_rao
            gram = np.ones((rank, rank))
            for f in others:
                gram *= f.T @ f
            factors[mode] = np.linalg.lstsq(gram, mttkrp.T, rcond=None)[0].T
        error = float(np.linalg.norm(tensor - np.einsum("hr,wr,cr,nr->hwcn", *factors)) / (norm or 1.0))
        if previous - error < 1e-7:
            break
        previous = error
    return factors


def spatial_matrix(kernel: np.ndarray) -> np.ndarray:
    """The (kh*C) x (kw*N) matrix whose rank is the spatial-SVD rank (Jaderberg et al. 2014)."""
    kh, kw, c, n = kernel.shape
    return kernel.transpose(0, 2, 1, 3).reshape(kh * c, kw * n)


def spatial_svd(kernel: np.ndarray, rank: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Spatial SVD: a kh x 1 conv C->r, then a 1 x kw conv r->N.

    Kernels returned: (kh, 1, C, r), (1, kw, r, N).
    """
    kh, kw, c, n = kernel.shape
    a, b = svd_factors(spatial_matrix(kernel), rank)  # (kh*C, r), (r, kw*N)
    vertical = a.reshape(kh, c, rank)[:, None]  # kh, 1, C, r
    horizontal = b.reshape(rank, kw, n).transpose(1, 0, 2)[None]  # 1, kw, r, N
    approx = (a @ b).reshape(kh, c, kw, n).transpose(0, 2, 1, 3)
    return [vertical, horizontal], approx.astype(np.float32)


def mode_matrix(kernel: np.ndarray, mode: int) -> np.ndarray:
    """Mode-`mode` unfolding (rows = that mode), used for energy and VBMF ranks of Tucker."""
    return np.moveaxis(kernel, mode, 0).reshape(kernel.shape[mode], -1)
