"""Command line: help, unknown commands, and the error handler: a user's error (bad value,
missing file, bad data, a diverged run) is one line and exit 1, a bug is one line naming
its type and pointing at --debug, and --debug shows the traceback."""

import argparse

import pytest

from rnnkit import cli
from rnnkit.cli import build_parser, main
from rnnkit.data.errors import DataError
from rnnkit.train import TrainingDiverged


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("demo", "data", "tag", "lm", "classify", "toy"))


def test_unknown_command_fails(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["no-such-command"])
    assert exit_.value.code == 2


@pytest.fixture
def raising(monkeypatch):
    """A command `boom KIND` that raises the exception KIND names."""
    errors = {"value": ValueError("--hidden must be >= 1; got 0"), "missing": FileNotFoundError("no such file x.txt"),
              "data": DataError("train.txt", 7, "no tag column"), "key": KeyError("'tokens' vocabulary missing"),
              "diverged": TrainingDiverged("11 updates in a row had a non-finite loss"),
              "bug": ZeroDivisionError("division by zero")}

    def register(sub):
        p = sub.add_parser("boom")
        p.add_argument("kind", choices=errors)

        def run(args, argv):
            raise errors[args.kind]

        p.set_defaults(run=run)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, register])
    return errors


@pytest.mark.parametrize("kind, message", [
    ("value", "rnnkit: error: --hidden must be >= 1; got 0"),
    ("missing", "rnnkit: error: no such file x.txt"),
    ("data", "rnnkit: error: train.txt:7: no tag column"),
    ("key", "rnnkit: error: 'tokens' vocabulary missing"),
    ("diverged", "rnnkit: error: 11 updates in a row had a non-finite loss"),
    ("bug", "rnnkit: error: ZeroDivisionError: division by zero (run with --debug for the traceback)"),
])
def test_errors_are_one_line_and_exit_1(raising, kind, message, capsys):
    assert cli.main(["boom", kind]) == 1
    captured = capsys.readouterr()
    assert captured.err == message + "\n" and captured.out == ""


def test_debug_shows_the_traceback(raising):
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "boom", "bug"])
    with pytest.raises(ValueError):
        cli.main(["--debug", "boom", "value"])


def _parsers(parser, path=("rnnkit",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))
    yield " ".join(path), parser


def test_every_flag_has_help_and_no_number_goes_unchecked():
    for where, parser in _parsers(build_parser()):
        for action in parser._actions:
            assert action.help or isinstance(action, argparse._SubParsersAction), (where, action.option_strings)
            assert action.type not in (int, float), (where, action.option_strings)


def test_version_and_debug_after_the_subcommand(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("rnnkit ")
    with pytest.raises(FileNotFoundError, match="not a model directory"):  # the traceback, not one line
        main(["toy", "eval", "--model", str(tmp_path), "--debug"])



def test_a_closed_pipe_stops_quietly(monkeypatch, capsys):
    def run(args, argv):
        raise BrokenPipeError(32, "Broken pipe")  # what print raises once `| head` has gone
    monkeypatch.setattr("rnnkit.cli.parse", lambda argv: argparse.Namespace(run=run))
    assert main(["data", "list"]) == 141
    assert capsys.readouterr().err == ""
