"""The `requant` fixture shared by the FULLY_CONNECTED row-stream tests: each test runs with the
requantization the generator proves (doubled) and again with the general form forced."""

from __future__ import annotations

import pytest

from toolchain.codegen.ops import fully_connected


@pytest.fixture(params=["doubled", "general"])
def requant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The requantization form of every layer: as the generator proves it, or the general one."""
    if request.param == "general":
        monkeypatch.setattr(fully_connected, "doubled_requant", lambda *args: None)
    return request.param
