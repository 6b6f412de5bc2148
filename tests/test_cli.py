"""The `imminence` dispatch table: every command module registers its own name, lazily."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imminence import cli
from imminence.configfile import ConfigError
from imminence.errors import CommandError


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


def _failing(monkeypatch: pytest.MonkeyPatch, module: str, func: str, exc: BaseException) -> None:
    """Make ``imminence.commands.MODULE.FUNC`` (a command's ``func``) raise ``exc``; logging left alone."""
    import importlib

    def fail(_args: object) -> int:
        raise exc

    monkeypatch.setattr(importlib.import_module(f"imminence.commands.{module}"), func, fail)
    monkeypatch.setattr(cli, "setup_logging", lambda *a, **k: None)


@pytest.mark.parametrize("argv,module,func,prefix", [
    (["broker"], "broker", "run", "imminence broker: "),
    (["scene", "stats", "d"], "scene", "_stats", "imminence scene stats: "),  # an action names itself too
])
def test_main_reports_a_command_error_with_its_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                    argv: list[str], module: str, func: str, prefix: str) -> None:
    _failing(monkeypatch, module, func, CommandError("the thing failed", code=3))
    assert cli.main(argv) == 3
    assert capsys.readouterr().err == f"{prefix}the thing failed\n"


@pytest.mark.parametrize("exc,code,err", [
    (ConfigError("x.yaml:3: bus -> port: not a number"), 2,
     "imminence broker: configuration error:\nx.yaml:3: bus -> port: not a number\n"),
    (KeyboardInterrupt(), 130, ""),
])
def test_main_maps_the_stage_errors_of_the_policy(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                  exc: BaseException, code: int, err: str) -> None:
    _failing(monkeypatch, "broker", "run", exc)
    assert cli.main(["broker"]) == code
    assert capsys.readouterr().err == err


def test_main_leaves_an_unlisted_error_to_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug is not dressed up as a command error: only CommandError and the policy's types are mapped."""
    _failing(monkeypatch, "broker", "run", RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["broker"])


def test_supervised_worker_process_reports_errors_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import threading

    from imminence.commands.worker import run_camera

    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras:\n  - id: plaza\n    source: gone.mp4\n")  # no position
    assert run_camera(threading.Event(), str(cfg), "plaza") == 2  # its child exits 2, as `imminence worker` does
    assert capsys.readouterr().err == ("imminence worker: configuration error:\n"
                                       f"{cfg}:2: cameras -> 0 -> position: Field required\n")
