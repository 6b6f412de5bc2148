"""The `imminence` dispatch table: every command module registers its own name, lazily."""
from __future__ import annotations

import subprocess
import sys

import pytest

from imminence import cli


def test_every_module_registers_the_command_of_its_name() -> None:
    parser = cli.build_parser("*")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == cli.command_names()
    for name in cli.command_names():
        with pytest.raises(SystemExit) as exc:  # `imminence NAME -h` works for every command
            cli.build_parser(name).parse_args([name, "-h"])
        assert exc.value.code == 0, name


@pytest.mark.parametrize("argv,expected", [
    (["--log-level", "DEBUG", "score", "--config", "x"], "score"),
    (["--metrics-port", "0", "map"], "map"),
    (["-h"], None),
])
def test_requested_command_skips_global_options(argv: list[str], expected: str | None) -> None:
    assert cli._requested(argv) == expected


def test_unknown_command_is_an_error_listing_the_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "replay" in err


def test_help_does_not_import_heavy_stages() -> None:
    code = ("import sys; from imminence import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'sklearn', 'ultralytics', 'cv2') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out, out
