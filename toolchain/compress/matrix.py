"""Factorizations of one weight matrix, and the rank rules that go with them.

Everything here is plain numpy on a 2-D array W (m x n) and returns factors A (m x r) and
B (r x n) with W ~ A @ B, so the Keras side never has to know which method made them.
"""

from __future__ import annotations

import numpy as np


def relative_error(original: np.ndarray, approx: np.ndarray) -> float:
    """||W - W~||_F / ||W||_F: the number the report shows per layer (0 for an all-zero W)."""
    norm = float(np.linalg.norm(original))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(original - approx) / norm)


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD split evenly (sqrt of the singular values on each side).

    Balanced factors have similar value ranges, which helps int8 quantization and makes
    both layers learn at a similar pace during fine-tuning.
    """
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    a = u[:, :rank] * root
    b = root[:, None] * vt[:rank]
    return a.astype(np.float32), b.astype(np.float32)


def singular_values(w: np.ndarray) -> np.ndarray:
    return np.linalg.svd(w.astype(np.float64), compute_uv=False)


def energy_rank(s: np.ndarray, energy: float) -> int:
    """Smallest r keeping `energy` of the sum of squared singular values."""
    power = np.asarray(s, dtype=np.float64) ** 2
    total = power.sum()
    if total == 0.0:
        return 1
    kept = np.cumsum(power) / total
    return min(int(np.searchsorted(kept, energy - 1e-12)) + 1, len(s))


def seminmf_factors(
    w: np.ndarray, rank: int, iterations: int = 300, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-NMF (Ding, Li and Jordan 2010): W ~ A @ B with B >= 0 and A of any sign.

    The non-negative factor is the second layer's kernel, so the rank-r bottleneck mixes
    features only additively. Started from the SVD (absolute values) and refined with the
    multiplicative updates of the paper; A is the least-squares optimum for each B.
    """
    x = w.astype(np.float64)  # m x n, the paper's X ~ F G^T with G >= 0
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    rng = np.random.default_rng(seed)
    g = np.abs(vt[:rank].T * np.sqrt(s[:rank])) + 1e-3 * rng.random((x.shape[1], rank))  # n x r
    eps = 1e-12

    def pos(a: np.ndarray) -> np.ndarray:
        return (np.abs(a) + a) / 2

    def neg(a: np.ndarray) -> np.ndarray:
        return (np.abs(a) - a) / 2

    for _ in range(iterations):
        f = x @ g @ np.linalg.pinv(g.T @ g)  # m x r
        xtf = x.T @ f
        ftf = f.T @ f
        g *= np.sqrt((pos(xtf) + g @ neg(ftf)) / (neg(xtf) + g @ pos(ftf) + eps))
    f = x @ g @ np.linalg.pinv(g.T @ g)
    return f.astype(np.float32), g.T.astype(np.float32)


def vbmf_rank(w: np.ndarray) -> int:
    """Rank chosen by analytic empirical variational Bayesian matrix factorization.

    EVBMF (Nakajima et al. 2013) estimates the noise variance itself and keeps the singular
    values above the resulting threshold: a rank with no knob, which is what Kim et al.
    (2016) use to pick Tucker ranks of convolution kernels. At least 1 is returned.
    """
    y = w.astype(np.float64)
    if y.shape[0] > y.shape[1]:
        y = y.T
    rows, cols = y.shape  # rows <= cols
    s = np.linalg.svd(y, compute_uv=False)
    alpha = rows / cols
    tau_bar = 2.5129 * np.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    total = float(np.sum(y**2))
    if total == 0.0:
        return 1
    upper = total / (rows * cols)
    cut = max(int(np.ceil(rows / (1 + alpha))) - 1, 1)
    tail = s[cut:] if cut < len(s) else s[-1:]
    lower = max(tail[0] ** 2 / (cols * x_bar), float(np.mean(tail**2)) / cols, upper * 1e-12)
    sigma2 = _minimize_on_log_grid(lambda v: _evb_objective(v, rows, cols, s, x_bar), lower, upper)
    threshold = np.sqrt(cols * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(int(np.sum(s > threshold)), 1)


def _evb_objective(sigma2: float, rows: int, cols: int, s: np.ndarray, x_bar: float) -> float:
    """The free energy of EVBMF as a function of the noise variance (Nakajima et al., eq. 15)."""
    alpha = rows / cols
    x = s**2 / (cols * sigma2)
    big, small = x[x > x_bar], x[x <= x_bar]
    tau = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
    return float(
        np.sum(small - np.log(small))
        + np.sum(big - tau)
        + np.sum(np.log((tau + 1) / big))
        + alpha * np.sum(np.log(tau / alpha + 1))
    )


def _minimize_on_log_grid(objective, low: float, high: float, points: int = 200, rounds: int = 3) -> float:
    """A bracketing search on a log scale; the objective is cheap and one-dimensional."""
    if high <= low:
        return high
    lo, hi = np.log(low), np.log(high)
    best = high
    for _ in range(rounds):
        grid = np.linspace(lo, hi, points)
        values = [objective(float(np.exp(v))) for v in grid]
        i = int(np.argmin(values))
        best = float(np.exp(grid[i]))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
    return best
