"""tinyrank: shrink a Keras model with low-rank factorization, compile it to C, measure it on a Cortex-M.

One subpackage per stage, in the order of the pipeline: `compress`, `convert`, `codegen`,
`firmware`, `bench`, and `deploy` for all of them (see ARCHITECTURE.md). This file only quiets
TensorFlow's start-up chatter before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's start-up notice bypasses TF_CPP_MIN_LOG_LEVEL; turning oneDNN off also keeps float results
# reproducible from run to run, which the accuracy reports rely on.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
