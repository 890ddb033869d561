"""The command line against a new user's mistakes and an attacker's inputs.

Every case must end with exit status 2 and one error line (no traceback), and must leave
the workspace exactly as it was: no input modified, no partial output. Cases are grouped by
the kind of mistake: outputs over inputs, unwritable outputs, bad numbers, bad data, edited
model_info.json, hostile board ids and files, bad names, and options deploy must check first.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.bad_inputs import CASES, make_workspace, snapshot
from toolchain.cli import build_parser, main


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("cli_bad"))


@pytest.fixture
def workspace(template: Path, tmp_path: Path) -> Path:
    """A fresh copy per case, so a command that does damage cannot hide the next one's."""
    return Path(shutil.copytree(template, tmp_path / "ws"))


@pytest.mark.parametrize(("argv", "expected"), list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_clean_line_and_changes_nothing(workspace, argv, expected, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("TINYRANK_BOARDS_DIR", str(workspace / "boards"))
    before = snapshot(workspace)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse refuses the option itself
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tinyrank") and "error:" in last, err
    assert re.search(expected, last), err
    if last.startswith("tinyrank: error:"):
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(workspace) == before, "the failed command changed the workspace"


def test_deploy_bad_option_creates_no_folder(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    with pytest.raises(SystemExit):
        main(["deploy", "m.keras", "--data", "d.npz", "--out", "fresh", "--method", "magic"])
    assert not (workspace / "fresh").exists()


def test_every_command_and_option_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description, f"`tinyrank {name}` has no description"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"`tinyrank {name} {action.option_strings[0]}` has no help"
    deploy_help = commands["deploy"].format_help()
    assert "default qemu_m4" in deploy_help and "{svd,tucker,cp,spatial,seminmf,auto,narrow}" in deploy_help
    assert "1..16 characters" in " ".join(commands["codegen"].format_help().split())


def test_version(capsys):
    from toolchain import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinyrank {__version__}"
