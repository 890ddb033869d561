"""Board ids are names, never paths; a user's own boards come from the folder in $TINYRANK_BOARDS_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.errors import TinyrankError
from toolchain.firmware.boards import BOARDS_DIR, list_boards, load_board


def test_user_board_folder(tmp_path: Path, monkeypatch) -> None:
    text = (BOARDS_DIR / "qemu_m4.toml").read_text().replace('id = "qemu_m4"', 'id = "my_board"')
    (tmp_path / "my_board.toml").write_text(text)
    monkeypatch.setenv("TINYRANK_BOARDS_DIR", str(tmp_path))
    assert load_board("my_board").path == tmp_path / "my_board.toml"
    assert "my_board" in [b.id for b in list_boards()]
    assert load_board("qemu_m4").path == BOARDS_DIR / "qemu_m4.toml"


@pytest.mark.parametrize("board", ["../../../tmp/x", "/etc/passwd", "qemu_m4.toml", "QEMU", "a b", "x\n", ""])
def test_board_paths_are_refused(board: str) -> None:
    with pytest.raises(TinyrankError, match="is not a name"):
        load_board(board)


@pytest.mark.parametrize(
    ("line", "key"),
    [('name = "A\\nB"', "name"), ('pio_board = "x\\"; y"', "pio_board"), ('mcu = "', None)],
)
def test_board_strings_that_would_reach_commands_are_refused(tmp_path: Path, monkeypatch, line, key) -> None:
    text = (BOARDS_DIR / "nano33.toml").read_text().replace('id = "nano33"', 'id = "evil"')
    field = line.split(" = ")[0]
    lines = [row for row in text.splitlines() if not row.startswith(f"{field} =")]
    (tmp_path / "evil.toml").write_text("\n".join([line, *lines]) + "\n")
    monkeypatch.setenv("TINYRANK_BOARDS_DIR", str(tmp_path))
    with pytest.raises(TinyrankError, match=f"key '{key}'" if key else "cannot read it"):
        load_board("evil")
