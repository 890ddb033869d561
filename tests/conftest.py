"""Shared fixtures: small real data sets and models, made once per test session.

Converted models are cached per session because TensorFlow's converter takes about a
second each; tests that need their own variant build it themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# fixtures kept in a module of their own (`requant`: the FULLY_CONNECTED row-stream tests' two forms)
pytest_plugins = ["tests.helpers.requant_forms"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "No")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's bundled digits in the tinyrank .npz layout (real data, no download)."""
    from toolchain.deploy.demo import make_digits_dataset

    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    make_digits_dataset(path)
    return path


@pytest.fixture(scope="session")
def digits_mlp(tmp_path_factory: pytest.TempPathFactory, digits_npz: Path) -> Path:
    """A small trained digits MLP saved as .keras (a few seconds to train)."""
    from toolchain.data import load_dataset
    from toolchain.deploy.demo import build_mlp
    from toolchain.models import save_keras_model

    dataset = load_dataset(digits_npz)
    model = build_mlp(64, 10, hidden=(64, 32))
    model.fit(dataset.x_train, dataset.y_train, epochs=15, batch_size=32, verbose=0)
    return save_keras_model(model, tmp_path_factory.mktemp("mlp") / "mlp.keras")


@pytest.fixture(scope="module")
def mlp(digits_mlp: Path):
    """The digits MLP loaded, once per test module (tests that change it train a copy)."""
    from toolchain.models import load_keras_model

    return load_keras_model(digits_mlp)


@pytest.fixture(scope="module")
def digits(digits_npz: Path):
    """The digits data set loaded, once per test module."""
    from toolchain.data import load_dataset

    return load_dataset(digits_npz)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _register_hypothesis_profiles() -> None:
    """CI runs a fixed set of examples so a red build always reproduces; developers explore new ones."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None, print_blob=True)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


_register_hypothesis_profiles()


@pytest.fixture(scope="session", autouse=True)
def pio_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One PlatformIO object cache for every firmware build of the session.

    The benchmark app, the ports and the kernels the models share then compile once per
    board and flags (SCons keys the cache on sources and flags), which keeps the QEMU tests fast.
    """
    cache = tmp_path_factory.mktemp("pio_build_cache")
    previous = os.environ.get("PLATFORMIO_BUILD_CACHE_DIR")
    os.environ["PLATFORMIO_BUILD_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("PLATFORMIO_BUILD_CACHE_DIR", None)
    else:
        os.environ["PLATFORMIO_BUILD_CACHE_DIR"] = previous
