"""argparse types: every numeric option and every name is checked while the command line is read.

A value out of range is refused by argparse itself, with one line naming the option and the
range, before any file is read or written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(
    kind: type, low: float | None, high: float | None, *, open_low: bool = False
) -> Callable[[str], float]:
    """A parser for `kind` values in [low, high] (or (low, high] when `open_low`)."""
    below = "above" if open_low else "at least"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if open_low else value < low):
            raise argparse.ArgumentTypeError(f"{text} must be {below} {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} must be at most {high:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, None)
count = _number(int, 0, None)  # 0 allowed (e.g. epochs, "all samples")
seed = _number(int, 0, 2**32 - 1)
fraction = _number(float, 0.0, 1.0, open_low=True)  # (0, 1]
seconds = _number(float, 0.0, 24 * 3600.0, open_low=True)
milliseconds = _number(float, 0.0, 24 * 3600e3, open_low=True)
runs = _number(int, 1, 65535)
learning_rate = _number(float, 0.0, 10.0, open_low=True)


def board_id(text: str) -> str:
    """A board name from boards/ (or $TINYRANK_BOARDS_DIR), never a path; unknown names fail here."""
    from toolchain.errors import TinyrankError
    from toolchain.firmware.boards import load_board

    try:
        load_board(text)
    except TinyrankError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def prefix(text: str) -> str:
    """A C name prefix: lower-case identifier of 1..16 characters, checked before any work."""
    from toolchain.codegen import check_prefix
    from toolchain.errors import TinyrankError

    try:
        return check_prefix(text)
    except TinyrankError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


PREFIX_HELP = (
    "C name prefix: a lower-case C identifier of 1..16 characters, so several models fit one firmware"
)
