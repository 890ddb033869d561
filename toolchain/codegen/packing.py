"""Weight layouts the kernels read faster than TFLite's row-major one.

`pack_rows_by_four` interleaves each group of four weight rows word by word, the order in
which `tr_dot_int8_x4` (tr_dot.h) consumes them: one pointer then walks four rows, and
each input word is loaded once for four outputs. Rows past the last whole group of four
stay row-major (the kernels run them one at a time).

`pack_matmul` is the layout of the matmul loops (tr_matmul.h): the same interleave after
padding the depth to whole words and the rows to whole groups with zeros, so every group is
one straight loop.

`pack_row_stream` is the matmul layout with each word's bytes permuted and two of them XORed,
for the one-row FULLY_CONNECTED kernel of DSP targets: the same bytes in flash.
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


def pack_row_stream(rows: np.ndarray) -> np.ndarray:
    """(R, n) int8 rows -> the matmul layout (`pack_matmul`, same size) with each weight word
    w0 w1 w2 w3 stored as the bytes (w1 ^ 0x80, w0, w3 ^ 0x80, w2): the one-row FULLY_CONNECTED
    kernel of DSP targets (tr_fully_connected_row_int8) then reads a word's int16 halves as
    256 w0 + (w1 + 128) and 256 w2 + (w3 + 128) and needs one SXTB16 per word instead of two."""
    words = pack_matmul(rows).view(np.uint8).reshape(-1, 4)
    stream = words[:, [1, 0, 3, 2]] ^ np.array([0x80, 0, 0x80, 0], np.uint8)
    return stream.reshape(-1).view(np.int8)


def pack_thin(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(R, r) int8 rows and their (R, 4) doubled channel table (bias, multiplier, shift, rounding)
    -> the int32 stream of a thin layer (tr_thin.h): per group of four rows (the last one padded,
    its table rows repeated) the four biases; per word of four inputs (x0 x1 x2 x3) the rows'
    doubled int16 pairs (2 w0, 2 w2), then (2 w1, 2 w3), as the widened input pairs them
    (tr_widen_row; doubled weights keep the accumulators doubled, as the table's bias is); then
    each row's multiplier, shift and rounding."""
    rows = 2 * np.asarray(rows, dtype=np.int64).reshape(rows.shape[0], -1)
    count, n = rows.shape
    groups, words = -(-count // 4), -(-n // 4)
    padded = np.zeros((4 * groups, 4 * words), np.int64)
    padded[:count, :n] = rows
    table = np.asarray(table, dtype=np.int64)
    table = np.concatenate([table, np.repeat(table[-1:], 4 * groups - count, axis=0)])
    quads = padded.reshape(groups, 4, words, 4)  # [group][row][word][value]
    low = quads[..., [0, 1]] & 0xFFFF  # (x0, x2) pair first, then (x1, x3)
    high = quads[..., [2, 3]] << 16
    pairs = (low | high).transpose(0, 2, 3, 1).reshape(groups, 8 * words)  # [group][word][pair][row]
    per_group = table.reshape(groups, 4, 4)
    stream = np.concatenate([per_group[:, :, 0], pairs, per_group[:, :, 1:].reshape(groups, 12)], axis=1)
    return ((stream.reshape(-1) + 2**31) % 2**32 - 2**31).astype(np.int32)
