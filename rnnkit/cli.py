"""The `rnnkit` command line. Subcommands map to functions through one table.

Every error is one line on stderr and a non-zero exit: 2 for a setting (a flag, a
``--config`` value, a contradiction with a resumed run), 1 for the data or the run,
130 for an interrupt; ``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from rnnkit.commands import asr, classify, common, data, demo, forecast, lm, rundir, seq2seq, tag, toy
from rnnkit.data.errors import DataError
from rnnkit.settings import Rule, SettingError
from rnnkit.train import TrainingDiverged

COMMANDS = [demo.register, asr.register, classify.register, data.register, forecast.register, lm.register,
            seq2seq.register, tag.register, toy.register]  # each adds its subcommand(s)


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default, where it has one worth showing, and its range."""

    def _get_help_string(self, action: argparse.Action) -> str:
        notes = []
        shown = action.default is not None and action.default is not False and action.default != argparse.SUPPRESS
        if shown and action.option_strings and "(default" not in (action.help or "") and not action.required:
            notes.append("default: %(default)s")
        if isinstance(action.type, Rule):
            notes.append(action.type.describe())
        return (action.help or "") + (f" ({'; '.join(notes)})" if notes else "")


class Parser(argparse.ArgumentParser):
    """Errors in one line, with where to read more; no abbreviated flags (a new flag would
    change what an abbreviation means)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return version("rnnkit")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rnnkit", description="Recurrent networks for sequence learning.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (may also follow the subcommand)")
    parser.add_argument("--version", action="version", version=f"rnnkit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The innermost subcommand parser that ``argv`` names (for --config defaults)."""
    current = parser
    for word in argv:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            current = subs[0].choices[word]
    return current


def parse(argv: list[str]) -> argparse.Namespace:
    """The command's settings: its flags over a --config file's values over, with --resume, the
    resumed run's (``args.resumed`` is that checkpoint; ``args.settings`` what a new checkpoint
    records; ``args.given`` the settings named on the line or in the file)."""
    parser = build_parser()
    command = _subparser(parser, argv)
    resumed = rundir.apply_resume(command, argv)
    from_file = common.apply_config_file(command, argv)
    args = parser.parse_args(argv)
    args.given = rundir.given_settings(command, argv) | from_file
    args.resumed = resumed
    if resumed is not None:
        rundir.check_resumed(resumed, args, args.given)
    args.settings = rundir.settings_of(command, args)
    return args


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit fails no more."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = parse(argv)
        return args.run(args, argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped (| head): stop quietly, as other tools do
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports
    except SettingError as err:
        if debug:
            raise
        print(f"rnnkit: error: --{err.name.replace('_', '-')}: {err.reason}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError, DataError, TrainingDiverged) as err:
        if debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"rnnkit: error: {message}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug, not a user error: still one line, unless --debug
        if debug:
            raise
        print(f"rnnkit: error: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
