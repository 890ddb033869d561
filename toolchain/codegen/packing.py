"""Weight layouts the kernels read faster than TFLite's row-major one.

`pack_rows_by_four` interleaves each group of four weight rows word by word, the order in
which `tr_dot_int8_x4` (tr_dot.h) consumes them: one pointer then walks four rows, and
each input word is loaded once for four outputs. Rows past the last whole group of four
stay row-major (the kernels run them one at a time).

`pack_matmul` is the layout of the matmul loops (tr_matmul.h): the same interleave after
padding the depth to whole words and the rows to whole groups with zeros, so every group is
one straight loop.
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


def pack_matmul(rows: np.ndarray) -> np.ndarray:
    """(R, n) int8 rows -> flat int8 array of the matmul layout: zero-padded to (4 * ceil(R / 4),
    4 * ceil(n / 4)), then packed by four (every group whole, no tails)."""
    rows = np.ascontiguousarray(rows, dtype=np.int8).reshape(rows.shape[0], -1)
    count, n = rows.shape
    padded = np.zeros((-(-count // 4) * 4, -(-n // 4) * 4), np.int8)
    padded[:count, :n] = rows
    return pack_rows_by_four(padded)


def _whole_groups(rows: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, n) rows zero-padded to whole groups of four rows and whole words of four inputs, and
    their (R, 4) table with its last row repeated for the padding rows, as int64."""
    rows = rows.reshape(rows.shape[0], -1)
    count, n = rows.shape
    groups, words = -(-count // 4), -(-n // 4)
    padded = np.zeros((4 * groups, 4 * words), np.int64)
    padded[:count, :n] = rows
    table = np.asarray(table, dtype=np.int64)
    return padded, np.concatenate([table, np.repeat(table[-1:], 4 * groups - count, axis=0)])


def pack_thin(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(R, r) int8 rows and their (R, 4) doubled channel table (bias, multiplier, shift, rounding)
    -> the int32 stream of a thin layer (tr_thin.h): per group of four rows (the last one padded,
    its table rows repeated) the four biases; per word of four inputs (x0 x1 x2 x3) the rows'
    doubled int16 pairs (2 w0, 2 w2), then (2 w1, 2 w3), as the widened input pairs them
    (tr_widen_row; doubled weights keep the accumulators doubled, as the table's bias is); then
    each row's multiplier, shift and rounding."""
    padded, table = _whole_groups(2 * np.asarray(rows, dtype=np.int64), table)
    groups, words = padded.shape[0] // 4, padded.shape[1] // 4
    quads = padded.reshape(groups, 4, words, 4)  # [group][row][word][value]
    low = quads[..., [0, 1]] & 0xFFFF  # (x0, x2) pair first, then (x1, x3)
    high = quads[..., [2, 3]] << 16
    pairs = (low | high).transpose(0, 2, 3, 1).reshape(groups, 8 * words)  # [group][word][pair][row]
    per_group = table.reshape(groups, 4, 4)
    stream = np.concatenate([per_group[:, :, 0], pairs, per_group[:, :, 1:].reshape(groups, 12)], axis=1)
    return ((stream.reshape(-1) + 2**31) % 2**32 - 2**31).astype(np.int32)


def pack_row_stream(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(R, n) int8 rows and their (R, 4) doubled channel table (bias, multiplier, shift, rounding)
    -> the int32 stream of one-row FULLY_CONNECTED (tr_fc_row in tr_fully_connected.c), int8
    weights read with one SXTB16 per word instead of two.

    Per group of four rows (the last one padded with zero rows, its table rows repeated): the four
    start values of the accumulators, -bias - 127 x (sum of the row's even-indexed weights); per
    word of four inputs (x0 x1 x2 x3) each row's weights (w0 w1 w2 w3) stored as the bytes
    (w1 ^ 0x80, w0, w3 ^ 0x80, w2); then each row's multiplier, shift and rounding.

    Read as two int16, such a word is (w1 + 128 + 256 w0, w3 + 128 + 256 w2), and SXTB16 ROR 8 of
    it is (w0, w2). The kernel pairs the first with (-x1, -x3) and the second with the input word
    XOR 0x007F007F, whose int16 halves are (256 x1 + 127 - x0, 256 x3 + 127 - x2): the 256 x w0
    terms cancel, and the two SMLAD leave -(x0 w0 + x1 w1 + x2 w2 + x3 w3) - 128 (x1 + x3)
    + 127 (w0 + w2). The first constant is the row's (a start value cancels it), the second the
    input row's (the kernel sums it once per row), so the accumulator ends at
    -(bias + dot) - 128 (x1 + x3 + ...): its doubled value comes back in one SUB per output."""
    padded, table = _whole_groups(np.asarray(rows, dtype=np.int64), table)
    groups, words = padded.shape[0] // 4, padded.shape[1] // 4
    starts = -(table[:, 0] // 2) - 127 * padded[:, 0::2].sum(axis=1)  # the table's bias is doubled
    quads = padded.reshape(groups, 4, words, 4)  # [group][row][word][value]
    stored = quads[..., [1, 0, 3, 2]] ^ np.array([0x80, 0, 0x80, 0])  # as signed bytes
    as_bytes = stored & 0xFF
    packed_words = as_bytes[..., 0] | as_bytes[..., 1] << 8 | as_bytes[..., 2] << 16 | as_bytes[..., 3] << 24
    weights = packed_words.transpose(0, 2, 1).reshape(groups, 4 * words)  # [group][word][row]
    per_group = table.reshape(groups, 4, 4)
    stream = np.concatenate(
        [starts.reshape(groups, 4), weights, per_group[:, :, 1:].reshape(groups, 12)], axis=1
    )
    return ((stream.reshape(-1) + 2**31) % 2**32 - 2**31).astype(np.int32)
