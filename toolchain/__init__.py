"""tinyrank: shrink a Keras model with low-rank factorization, compile it to C, measure it on a Cortex-M.

The stages live in their own modules (see ARCHITECTURE.md); this package only exposes the
Python entry point of the first one, `toolchain.compress`, and quiets TensorFlow's start-up
chatter before anything imports it.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's start-up notice bypasses TF_CPP_MIN_LOG_LEVEL; turning oneDNN off also keeps float results
# reproducible from run to run, which the accuracy reports rely on.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"


def compress(model: Any, data: Any, **options: Any) -> tuple[Any, dict]:
    """Factorize `model` (see `toolchain.lowrank.compress`); returns the new model and its report."""
    from toolchain.lowrank import compress as _compress

    return _compress(model, data, **options)
