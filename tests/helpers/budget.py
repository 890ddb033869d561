"""The budget's promise, checked wherever a test builds firmware: the flash and static RAM that
`firmware/budget.py` predicts are within 5% of the linked ELF."""

from __future__ import annotations

import os
from typing import Any

TOLERANCE = 0.05


def assert_prediction_close(report: dict[str, Any]) -> None:
    """`report` is what `toolchain.firmware.build` returns."""
    for kind in ("flash", "static_ram"):
        error = report[f"{kind}_prediction_error"]
        predicted, actual = report["predicted"][f"{kind}_bytes"], report[f"{kind}_bytes"]
        assert abs(error) <= TOLERANCE, (
            f"{report['board']}: {kind} predicted {predicted} B, ELF {actual} B ({error:+.2%}); "
            f"parts predicted: {report['predicted']['flash' if kind == 'flash' else 'ram']}"
        )


def build_checked(model_dir: str | os.PathLike, board: str, **options: Any) -> dict[str, Any]:
    """`toolchain.firmware.build`, then the prediction held to the ELF."""
    from toolchain.firmware import build

    report = build(model_dir, board, **options)
    assert_prediction_close(report)
    return report
