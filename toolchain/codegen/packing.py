"""Weight layouts the kernels read faster than TFLite's row-major one.

`pack_rows_by_four` interleaves each group of four weight rows word by word, the order in
which `tr_dot_int8_x4` (tr_dot.h) consumes them: one pointer then walks four rows, and
each input word is loaded once for four outputs. Rows past the last whole group of four
stay row-major (the kernels run them one at a time).
"""

from __future__ import annotations

import numpy as np


def pack_rows_by_four(rows: np.ndarray) -> np.ndarray:
    """(R, n) int8 rows -> flat int8 array in the packed-by-four layout of tr_dot.h."""
    rows = np.ascontiguousarray(rows, dtype=np.int8).reshape(rows.shape[0], -1)
    count, n = rows.shape
    words = n // 4
    parts = []
    for start in range(0, count - count % 4, 4):
        group = rows[start : start + 4]
        body = group[:, : 4 * words].reshape(4, words, 4).transpose(1, 0, 2).reshape(-1)
        parts += [body, group[:, 4 * words :].reshape(-1)]
    parts.append(rows[count - count % 4 :].reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, np.int8)
